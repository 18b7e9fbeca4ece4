"""Clone, change, push back (issue 16), with the real datalad and git-annex.

git-annex refuses to send content or pushes anywhere while a special remote it autoenabled in a
clone is unverified. `dss clone` verifies the store's remote when it points at the store the user
cloned from; `dss verify-remote` does it for an existing clone; anything else stays unverified.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from cloud_servers import MirrorFixture
from conftest import SAMPLE, annex_keys, require_tool, run, write_files
from leftover_processes import TEST_VAR, carrying, wait_for_detached, wait_gone

from dss_remote.admin.clone import same_store
from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.store_replicas import open_replicas
from ria_store.layout import dataset_relpath, object_relpath
from ria_store.urls import parse_store_url

CHANGED = {"results/new.bin": os.urandom(50_000), "results/notes.txt": b"pushed back from a clone\n"}


def dss(*args: str | Path, cwd: Path | None = None) -> tuple[int, str, str]:
    res = run(require_tool("dss"), *args, cwd=cwd, check=False)
    return res.returncode, res.stdout, res.stderr


def git_config(repo: Path, key: str) -> str:
    return run("git", "config", key, cwd=repo, check=False).stdout.strip()


def change_and_save(clone: Path) -> None:
    write_files(clone, CHANGED)
    run("datalad", "-l", "error", "save", "-m", "results from the clone", cwd=clone)


def store_head(sib: Sibling) -> str:
    return run("git", f"--git-dir={sib.dataset_dir}", "rev-parse", "main").stdout.strip()


def assert_round_trip(clone: Path, second: Path) -> None:
    for rel, data in {**SAMPLE, **CHANGED}.items():
        assert (second / rel).read_bytes() == data, rel
    assert run("git", "rev-parse", "HEAD", cwd=second).stdout == run("git", "rev-parse", "HEAD",
                                                                      cwd=clone).stdout


def wait_for_mirroring() -> None:
    """The post-update hook mirrors the git side in a detached `dss sync --git-only`; let it end
    before the test takes the store away under it."""
    mine = [p for p in carrying(TEST_VAR, os.environ[TEST_VAR]) if _is_git_sync(p)]
    assert wait_gone(mine, timeout=120) == []


def _is_git_sync(proc: psutil.Process) -> bool:
    try:
        return "--git-only" in proc.cmdline()
    except psutil.Error:  # ended meanwhile
        return False


# -- the round trip ------------------------------------------------------------------------------

def test_dss_clone_change_push_and_a_second_clone_sees_it(published: Sibling, store: Path,
                                                          tmp_path: Path) -> None:
    clone, second = tmp_path / "clone", tmp_path / "second"
    code, out, err = dss("clone", f"ria+file://{store}#{published.dataset_id}", clone)
    assert code == 0, err
    assert f"verified store-storage: it points at ria+file://{store}#{published.dataset_id}" in out
    assert git_config(clone, "remote.store-storage.annex-verified") == "verified"
    assert git_config(clone, "remote.origin.datalad-publish-depends") == "store-storage"

    change_and_save(clone)
    run("datalad", "-l", "error", "push", "--to", "origin", cwd=clone)
    assert store_head(published) == run("git", "rev-parse", "HEAD", cwd=clone).stdout.strip()
    for rel, key in annex_keys(clone).items():  # every key, old and new, is in the store
        assert (published.dataset_dir / object_relpath(key, "2")).is_file(), rel

    run("datalad", "-l", "error", "clone", f"ria+file://{store}#~sample", second)
    run("datalad", "-l", "error", "get", ".", cwd=second)
    assert_round_trip(clone, second)


def test_dss_clone_by_alias_and_default_path(published: Sibling, store: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = dss("clone", f"ria+file://{store}#~sample", cwd=work)
    assert code == 0, err
    clones = [p for p in work.iterdir() if p.is_dir()]
    assert len(clones) == 1 and f"into {clones[0]}" in out
    assert git_config(clones[0], "remote.store-storage.annex-verified") == "verified"
    change_and_save(clones[0])
    run("datalad", "-l", "error", "push", "--to", "origin", cwd=clones[0])
    assert store_head(published) == run("git", "rev-parse", "HEAD", cwd=clones[0]).stdout.strip()


def test_round_trip_with_an_s3_mirror_second_clone_reads_s3_without_the_store(
        store: Path, dataset: Path, s3_mirror: MirrorFixture, tmp_path: Path) -> None:
    require_tool("git-annex-remote-dss")
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    clone, second = tmp_path / "clone", tmp_path / "second"

    code, _, err = dss("clone", f"ria+file://{store}#~sample", clone)
    assert code == 0, err
    change_and_save(clone)
    run("datalad", "-l", "error", "push", "--to", "origin", cwd=clone)
    s3 = dict(open_replicas(f"ria+file://{store}", read_config(store)).backends)["s3"]
    for rel in CHANGED:  # the push wrote the new content to the mirror too
        key = annex_keys(clone)[rel]
        assert s3.info(f"{dataset_relpath(sib.dataset_id)}/{object_relpath(key, '2')}") is not None, rel

    run("datalad", "-l", "error", "clone", f"ria+file://{store}#~sample", second)
    run("datalad", "-l", "error", "get", *SAMPLE, cwd=second)  # also caches the store's config
    wait_for_mirroring()
    wait_for_detached()  # a push's detached `dss sync` would recreate the store's dss/
    os.rename(store, tmp_path / "unmounted")  # a node without the POSIX store
    try:
        run("datalad", "-l", "error", "get", *CHANGED, cwd=second)
    finally:
        os.rename(tmp_path / "unmounted", store)
    assert_round_trip(clone, second)


def test_dss_clone_of_a_store_datalad_wrote_pushes_back_through_ora(dataset: Path,
                                                                     tmp_path: Path) -> None:
    require_tool("7z")  # DataLad's ora remote
    store = tmp_path / "ora-store"
    run("datalad", "-l", "error", "create-sibling-ria", "-s", "ora", "--new-store-ok",
        f"ria+file://{store}", cwd=dataset)
    run("datalad", "-l", "error", "push", "--to", "ora", cwd=dataset)
    dsid = run("git", "config", "-f", ".datalad/config", "datalad.dataset.id", cwd=dataset).stdout.strip()
    clone, second = tmp_path / "clone", tmp_path / "second"
    code, out, err = dss("clone", f"ria+file://{store}#{dsid}", clone)
    assert code == 0, err
    assert f"verified ora-storage: it points at ria+file://{store}#{dsid}" in out
    assert git_config(clone, "remote.ora-storage.annex-externaltype") == "ora"
    change_and_save(clone)
    run("datalad", "-l", "error", "push", "--to", "origin", cwd=clone)
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{dsid}", second)
    run("datalad", "-l", "error", "get", ".", cwd=second)
    assert_round_trip(clone, second)


# -- why `dss clone` exists, and a plain clone made able to push --------------------------------

def test_plain_datalad_clone_cannot_push_back(published: Sibling, store: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{published.dataset_id}", clone)
    assert git_config(clone, "remote.store-storage.annex-verified") == "automatic"
    head = store_head(published)
    change_and_save(clone)
    datalad_push = run("datalad", "push", "--to", "origin", cwd=clone, check=False)
    copy = run("git", "annex", "copy", "--to", "store-storage", *CHANGED, cwd=clone, check=False)
    push = run("git", "push", "origin", "main", cwd=clone, check=False)
    assert datalad_push.returncode != 0 and copy.returncode != 0 and push.returncode != 0
    assert ("Push prevented due to an unverified special remote. Run this command to verify it: "
            "git-annex verifyremote store-storage") in datalad_push.stdout + datalad_push.stderr
    assert ("Write prevented due to an unverified special remote. Run this command to verify it: "
            "git-annex verifyremote store-storage") in copy.stdout + copy.stderr
    assert ("Push prevented due to an unverified special remote. Run this command to verify it: "
            "git-annex verifyremote store-storage") in push.stdout + push.stderr
    assert store_head(published) == head  # nothing reached the store
    for rel in CHANGED:
        assert not (published.dataset_dir / object_relpath(annex_keys(clone)[rel], "2")).exists()


def test_verify_remote_lets_a_plain_clone_push_back(published: Sibling, store: Path,
                                                    tmp_path: Path) -> None:
    clone, second = tmp_path / "clone", tmp_path / "second"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{published.dataset_id}", clone)
    code, out, err = dss("verify-remote", "-d", clone)
    assert code == 0, err
    assert f"verified store-storage: it points at ria+file://{store}#{published.dataset_id}" in out
    code, out, err = dss("verify-remote", "-d", clone)  # again: nothing left to do
    assert code == 0 and out == "store-storage: verified before, unchanged since\n", err
    change_and_save(clone)
    run("datalad", "-l", "error", "push", "--to", "origin", cwd=clone)
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#~sample", second)
    run("datalad", "-l", "error", "get", ".", cwd=second)
    assert_round_trip(clone, second)


# -- a remote pointing at another store is never verified ----------------------------------------

@pytest.fixture
def two_stores(published: Sibling, store: Path, dataset: Path, tmp_path: Path) -> tuple[Path, Path]:
    """`dataset` published to `store` (remote store-storage) and to a second store (other-storage)."""
    other = tmp_path / "other-store"
    run(require_tool("dss"), "init", other)
    create_sibling(dataset, "other", f"ria+file://{other}")
    run("datalad", "-l", "error", "push", "--to", "other", cwd=dataset)
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)  # the first store learns of it
    return store, other


def verified_log(clone: Path) -> str:
    log = clone / ".git" / "annex" / "verified-remote.log"
    return log.read_text() if log.exists() else ""


def test_verify_remote_refuses_a_remote_pointing_at_another_store(
        two_stores: tuple[Path, Path], published: Sibling, tmp_path: Path) -> None:
    store, other = two_stores
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{published.dataset_id}", clone)
    code, out, err = dss("verify-remote", "-d", clone, "--remote", "other-storage")
    assert code == 1 and out == ""
    assert err == (f"dss: error: remote 'other-storage' in {clone} points at ria+file://{other}, not at "
                   f"ria+file://{store}#{published.dataset_id}; nothing verified (if you expect that "
                   "location, name its store with --store, or check it yourself: git annex "
                   "verifyremote other-storage)\n")
    for name in ("store-storage", "other-storage"):
        assert git_config(clone, f"remote.{name}.annex-verified") == "automatic"
    assert verified_log(clone) == ""


def test_verify_remote_with_the_other_store_named_verifies_it(
        two_stores: tuple[Path, Path], published: Sibling, tmp_path: Path) -> None:
    store, other = two_stores
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{published.dataset_id}", clone)
    code, out, err = dss("verify-remote", "-d", clone, "--remote", "other-storage",
                         "--store", f"ria+file://{other}")
    assert code == 0, err
    assert out == f"verified other-storage: it points at ria+file://{other}#{published.dataset_id}\n"
    assert git_config(clone, "remote.other-storage.annex-verified") == "verified"
    assert git_config(clone, "remote.store-storage.annex-verified") == "automatic"
    # origin is the first store: its publish dependency is not pointed at the other one
    assert "other-storage" not in git_config(clone, "remote.origin.datalad-publish-depends")


def test_dss_clone_verifies_only_the_store_it_cloned_from(
        two_stores: tuple[Path, Path], published: Sibling, tmp_path: Path) -> None:
    store, other = two_stores
    clone = tmp_path / "clone"
    code, out, err = dss("clone", f"ria+file://{store}#{published.dataset_id}", clone)
    assert code == 1
    assert f"verified store-storage: it points at ria+file://{store}#{published.dataset_id}" in out
    assert err == (f"dss: error: git-annex still refuses pushes from {clone}: other-storage points at "
                   f"ria+file://{other}, not at ria+file://{store}#{published.dataset_id} (if you "
                   f"expect that location: dss verify-remote -d {clone} --remote other-storage --store "
                   "<its store URL>)\n")
    assert git_config(clone, "remote.store-storage.annex-verified") == "verified"
    assert git_config(clone, "remote.other-storage.annex-verified") == "automatic"


# -- bad input ------------------------------------------------------------------------------------

def test_dss_clone_refuses_a_source_naming_no_dataset(store: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = dss("clone", f"ria+file://{store}", "c", cwd=work)
    assert (code, out) == (1, "")
    assert err == (f"dss: error: dss clone: RIA dataset URL 'ria+file://{store}' names no dataset: "
                   "append '#<dataset-id>' or '#~<alias>'\n")
    assert list(work.iterdir()) == []


def test_dss_clone_refuses_a_source_that_is_no_ria_url(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = dss("clone", "https://example.invalid/ds#~x", "c", cwd=work)
    assert (code, out) == (1, "")
    assert err == ("dss: error: dss clone: not a RIA store URL: 'https://example.invalid/ds' (use "
                   "ria+file:///abs/path, ria+ssh://[user@]host[:port]/abs/path or "
                   "ria+http(s)://host/path)\n")
    assert list(work.iterdir()) == []


def test_dss_clone_of_a_dataset_the_store_lacks_names_it(store: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    dsid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    code, out, err = dss("clone", f"ria+file://{store}#{dsid}", "c", cwd=work)
    assert (code, out) == (1, "")
    assert err.startswith(f"dss: error: `datalad clone ria+file://{store}#{dsid}` failed: ")
    assert err.count("\n") == 1
    assert list(work.iterdir()) == []


def test_verify_remote_outside_a_store_clone_names_the_fix(dataset: Path) -> None:
    code, out, err = dss("verify-remote", "-d", dataset)
    assert (code, out) == (1, "")
    assert err == (f"dss: error: {dataset} has no remote origin, so the store it came from is unknown; "
                   "name the store: dss verify-remote --store ria+file:///path/to/store\n")


def test_verify_remote_outside_a_dataset_names_the_fix(tmp_path: Path) -> None:
    code, out, err = dss("verify-remote", "-d", tmp_path)
    assert (code, out) == (1, "")
    assert err == (f"dss: error: {tmp_path} is no clone of a DataLad dataset (no datalad.dataset.id in "
                   ".datalad/config); run dss verify-remote in the clone or pass -d CLONE\n")


def test_verify_remote_refuses_a_bad_store_url(published: Sibling, store: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{published.dataset_id}", clone)
    code, out, err = dss("verify-remote", "-d", clone, "--store", f"ria+file://{store}#~sample")
    assert (code, out) == (1, "")
    assert err == (f"dss: error: --store: store URL 'ria+file://{store}#~sample' has a fragment "
                   "('#~sample'): a store URL names the store only; drop '#...' (dataset URLs are "
                   "for `datalad clone`)\n")
    assert git_config(clone, "remote.store-storage.annex-verified") == "automatic"
    assert verified_log(clone) == ""


# -- which store URLs name the same store ----------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "same"), [
    ("ria+file:///data/store", "ria+file:///data/store/", True),
    ("ria+file:///data/store", "ria+file://localhost/data/store", True),
    ("ria+file:///data/store", "ria+file:///data/other", False),
    ("ria+ssh://alice@host/data/store", "ria+ssh://host:22/data/store", True),
    ("ria+ssh://host/data/store", "ria+ssh://HOST/data/store", True),
    ("ria+ssh://host/data/store", "ria+ssh://other/data/store", False),
    ("ria+http://host/store", "ria+https://host/store", False),
    ("ria+https://host/store", "ria+https://host:443/store", True),
    ("ria+file:///data/store", "ria+ssh://localhost/data/store", False),
])
def test_same_store(a: str, b: str, same: bool) -> None:
    assert same_store(parse_store_url(a), parse_store_url(b)) is same


def test_same_store_resolves_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert same_store(parse_store_url(f"ria+file://{tmp_path}/link"),
                      parse_store_url(f"ria+file://{tmp_path}/real"))

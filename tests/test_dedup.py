"""`dss dedup`: identical keys of different datasets of one store become hard links to one verified
copy; dry runs change nothing, corrupt copies are never linked, WORM keys and temp links are left
alone. The last test does it for real with DataLad and git-annex, then clones, gets and fscks."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PLAIN_DSID, SAMPLE, annex_keys, dss, run, write_files

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import init_store
from dss_remote.backends.posix import PosixBackend
from dss_remote.cli import main
from dss_remote.replication import leftovers
from dss_remote.replication.dataset_objects import DatasetObjects
from dss_remote.replication.dedup import DEDUP_LOCK, TEMP_PREFIX, dedup
from dss_remote.replication.store_replicas import open_store_replicas
from ria_store import sharing
from ria_store import store as ria
from ria_store.atomic import TMP_PREFIX
from ria_store.keys import parse_key
from ria_store.layout import object_relpath
from ria_store.locks import FileLock

# sorted as the store lists them: the first is where a "keep the first copy" dedup would look first
DSIDS = (PLAIN_DSID, "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e", "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
DATA = b"the same bytes in every dataset\n"
OTHER = os.urandom(3000)


def md5_key(data: bytes, ext: str = ".bin") -> str:
    return f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}{ext}"


def put(store: Path, dsid: str, key: str, data: bytes) -> Path:
    """Store `data` as `key` in dataset `dsid` the way the dss remote does; its object's path."""
    ria.create_dataset(ria.open_store(store), dsid)
    src = store.parent / f"src-{hashlib.md5(data).hexdigest()}"
    src.write_bytes(data)
    DatasetObjects(PosixBackend(store), dsid).store(parse_key(key), src)
    return store / ria.dataset_relpath(dsid) / object_relpath(key, "2")


def objects(store: Path) -> dict[str, tuple[int, int, int]]:
    """{path: (inode, mtime_ns, link count)} of every file in the store but dss's own (its lock)."""
    return {str(p.relative_to(store)): (p.lstat().st_ino, p.lstat().st_mtime_ns, p.lstat().st_nlink)
            for p in store.rglob("*") if p.is_file() and p.relative_to(store).parts[0] != "dss"}


def dedup_json(store: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    rc = main(["dedup", str(store), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


@pytest.fixture
def twins(store: Path) -> tuple[Path, Path, Path]:
    """Two datasets holding the key of DATA (separate inodes); the first also holds another key."""
    key = md5_key(DATA)
    return put(store, DSIDS[0], key, DATA), put(store, DSIDS[1], key, DATA), \
        put(store, DSIDS[0], md5_key(OTHER), OTHER)


def test_links_identical_keys_across_datasets(store: Path, twins: tuple[Path, Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    a, b, other = twins
    assert a.stat().st_ino != b.stat().st_ino
    rc, report = dedup_json(store, capsys)
    assert rc == 0
    assert {k: report[k] for k in ("datasets", "objects", "keys", "groups", "links", "bytes_saved",
                                   "inodes_saved", "already_linked", "no_checksum")} == {
        "datasets": 2, "objects": 3, "keys": 2, "groups": 1, "links": 1, "bytes_saved": len(DATA),
        "inodes_saved": 1, "already_linked": 0, "no_checksum": 0}
    assert report["corrupt"] == report["skipped"] == report["failed"] == []
    assert a.stat().st_ino == b.stat().st_ino and a.stat().st_nlink == 2
    assert other.stat().st_nlink == 1
    assert a.read_bytes() == b.read_bytes() == DATA
    assert stat.S_IMODE(b.stat().st_mode) == 0o444
    # nothing left beside the objects but the lock file
    assert not [p for p in store.rglob(f"{TMP_PREFIX}*")]
    assert (store / DEDUP_LOCK).is_file()


def test_dry_run_changes_nothing(store: Path, twins: tuple[Path, Path, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = objects(store)
    rc, report = dedup_json(store, capsys, "--dry-run")
    assert rc == 0 and report["dry_run"] is True
    assert (report["links"], report["bytes_saved"], report["inodes_saved"]) == (1, len(DATA), 1)
    assert objects(store) == before  # same inodes, mtimes and link counts
    assert not (store / DEDUP_LOCK).exists()  # no lock taken either
    # the text form says the same in one line on stdout, nothing on stderr
    assert main(["dedup", str(store), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1
    assert out.startswith("dedup (dry run, nothing changed): 2 dataset(s), 3 loose object(s)")
    assert f"; would make 1 link(s), saving {len(DATA)} bytes ({len(DATA)} B) and 1 inode(s); " in out
    assert objects(store) == before


def test_second_run_has_nothing_to_do(store: Path, twins: tuple[Path, Path, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    put(store, DSIDS[2], md5_key(DATA), DATA)
    assert dedup_json(store, capsys)[1]["links"] == 2
    after_first = objects(store)
    rc, report = dedup_json(store, capsys)
    assert rc == 0
    assert (report["groups"], report["links"], report["bytes_saved"], report["inodes_saved"]) == (1, 0, 0, 0)
    assert report["already_linked"] == 2
    assert objects(store) == after_first


def test_corrupt_copy_is_reported_never_linked_nor_overwriting(store: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    key = md5_key(DATA)
    bad, good1, good2 = (put(store, d, key, DATA) for d in DSIDS)  # the bad one is listed first
    os.chmod(bad, 0o644)
    bad.write_bytes(b"X" * len(DATA))  # same size: only the checksum tells
    os.chmod(bad, 0o444)
    bad_ino = bad.stat().st_ino
    assert main(["dedup", str(store)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith(f"dss: warning: corrupt copy {bad} of key {key} in dataset {DSIDS[0]}: "
                               "its md5 is ")
    assert "not linked" in lines[0] and "`dss fsck --deep`" in lines[0]
    assert lines[-1].startswith("dss: error: 1 corrupt copy found, not linked; `dss fsck --deep ")
    assert "; made 1 link(s), saved " in out and ", 1 corrupt, " in out
    # the good copies share one inode; the bad one is untouched and linked to nothing
    assert good1.stat().st_ino == good2.stat().st_ino != bad_ino
    assert bad.stat().st_ino == bad_ino and bad.stat().st_nlink == 1
    assert bad.read_bytes() == b"X" * len(DATA)
    assert good1.read_bytes() == good2.read_bytes() == DATA


def test_only_bad_copies_leave_everything_alone(store: Path, twins: tuple[Path, Path, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    a, b, _ = twins
    for p in (a, b):
        os.chmod(p, 0o644)
        p.write_bytes(b"?" * len(DATA))
        os.chmod(p, 0o444)
    before = objects(store)
    rc, report = dedup_json(store, capsys)
    assert rc == 1 and report["links"] == 0
    assert sorted(c["path"] for c in report["corrupt"]) == sorted([str(a), str(b)])
    assert objects(store) == before


def test_an_unreadable_dataset_fails_after_the_rest_is_done(store: Path, twins: tuple[Path, Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b, _ = twins
    broken = store / ria.dataset_relpath(DSIDS[2])
    broken.mkdir(parents=True)  # a dataset directory without its ria-layout-version
    assert main(["dedup", str(store)]) == 1
    out, err = capsys.readouterr()
    assert a.stat().st_ino == b.stat().st_ino and "made 1 link(s)" in out and ", 1 failed, " in out
    warning, error = err.splitlines()
    assert warning.startswith(f"dss: warning: {ria.dataset_relpath(DSIDS[2])}: not searched: dataset ")
    assert "has no ria-layout-version file" in warning
    assert error.startswith("dss: error: 1 dataset(s) or cop(ies) could not be read or linked (see above)")


def test_keys_without_checksum_are_skipped(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worm = "WORM-s5-m1700000000--notes.txt"
    url = "URL-s5--https://example.com/notes.txt"
    paths = [put(store, d, k, b"notes") for d in DSIDS[:2] for k in (worm, url)]
    assert parse_key(worm).checksum is None and parse_key(url).checksum is None
    rc, report = dedup_json(store, capsys)
    assert rc == 0
    assert (report["objects"], report["no_checksum"], report["keys"], report["groups"], report["links"]) == (
        4, 4, 0, 0, 0)
    assert len({p.stat().st_ino for p in paths}) == 4


@pytest.mark.parametrize("make", ["missing", "plain directory"])
def test_not_a_store_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         make: str) -> None:
    target = tmp_path / "somewhere"
    if make == "plain directory":
        target.mkdir()
    assert main(["dedup", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    if make == "missing":
        assert err.startswith(f"dss: error: store {target} not found") and "dss init" in err
    else:
        assert err == (f"dss: error: store {target} has no ria-layout-version file, so it is not a RIA "
                       "store (create it with `dss init` or fix the URL)\n")
    assert not (target / "dss").exists()


def test_a_running_dedup_holds_the_store(store: Path, twins: tuple[Path, Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = objects(store)
    with FileLock(store / DEDUP_LOCK):
        assert main(["dedup", str(store)]) == 1
        err = capsys.readouterr().err
        assert err == (f"dss: error: store {store}: another `dss dedup` is running (it holds {DEDUP_LOCK}); "
                       "wait for it to end, then run it again\n")
        assert objects(store) == before
        assert main(["dedup", str(store), "--dry-run"]) == 0  # a dry run changes nothing: no lock
    capsys.readouterr()


def test_temp_link_of_a_killed_run_is_ignored_then_cleaned(store: Path, twins: tuple[Path, Path, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    a, b, _ = twins
    assert TEMP_PREFIX.startswith(TMP_PREFIX)  # the prefix leftovers.py and every listing know
    # killed between the link and the rename: the kept copy's link under a temp name beside b
    stale = b.with_name(f"{TEMP_PREFIX}4242-0123456789ab")
    os.link(a, stale)
    rc, report = dedup_json(store, capsys)
    assert rc == 0
    assert report["objects"] == 3 and report["links"] == 1  # the temp link is no object
    assert report["inodes_saved"] == 1 and report["bytes_saved"] == len(DATA)
    assert a.stat().st_ino == b.stat().st_ino == stale.stat().st_ino
    # the leftovers logic of `dss sync` and `dss repair` knows it (its mtime is the object's: old)
    with open_store_replicas(store) as sr:
        cleaned = leftovers.clean(sr, DSIDS[:2], timedelta(hours=0))
    assert [line.split(" ", 2)[1] for line in cleaned.removed] == [str(stale.relative_to(store))]
    assert not stale.exists()
    assert a.read_bytes() == b.read_bytes() == DATA and a.stat().st_nlink == 2


def test_cross_device_pair_is_skipped_with_a_note(store: Path, twins: tuple[Path, Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    b = twins[1]
    before = objects(store)

    def exdev(src: object, dst: object, **_: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dst))

    monkeypatch.setattr(os, "link", exdev)
    report = dedup(store)
    assert report.ok and report.links == 0 and report.inodes_saved == 0
    assert [(p.kind, p.path) for p in report.skipped] == [("skipped", str(b))]
    assert "another file system" in report.skipped[0].line()
    assert objects(store) == before


def test_a_temp_link_removed_by_a_concurrent_sync_is_a_skip(store: Path, twins: tuple[Path, Path, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The temp link has the object's (old) mtime, so `dss sync` may remove it as a leftover at
    once: the rename then finds nothing, which is no failure and loses nothing."""
    a, b, _ = twins
    b_ino = b.stat().st_ino
    rename = os.rename

    def sync_first(src: str, dst: str) -> None:
        os.unlink(src)
        rename(src, dst)

    monkeypatch.setattr(os, "rename", sync_first)
    report = dedup(store)
    assert report.ok and report.links == 0 and [p.path for p in report.skipped] == [str(b)]
    assert b.stat().st_ino == b_ino and b.read_bytes() == a.read_bytes() == DATA
    assert not list(b.parent.glob(f"{TEMP_PREFIX}*"))


def test_a_link_never_widens_who_may_read_or_write(store: Path, twins: tuple[Path, Path, Path]) -> None:
    b = twins[1]
    os.chmod(b, 0o400)  # a link to the 0444 copy would let everyone read it
    report = dedup(store, dry_run=True)
    assert report.links == 0 and [p.path for p in report.skipped] == [str(b)]
    detail = report.skipped[0].detail
    assert detail.startswith("mode 0400, group ") and "a link would change who may read or write it" in detail
    os.chmod(b, 0o644)  # writable by its owner: the read-only copy is kept, and makes it read-only too
    report = dedup(store)
    assert (report.links, report.skipped) == (1, [])
    assert b.stat().st_ino == twins[0].stat().st_ino and stat.S_IMODE(b.stat().st_mode) == 0o444


def test_group_shared_store_keeps_its_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "shared-store"
    init_store(root, group=sharing.group_name(os.getegid()))
    gid = root.stat().st_gid
    a, b = (put(root, d, md5_key(DATA), DATA) for d in DSIDS[:2])
    rc, report = dedup_json(root, capsys)
    assert rc == 0 and report["links"] == 1
    assert a.stat().st_ino == b.stat().st_ino
    for p in (a, b, root / DEDUP_LOCK):
        assert p.stat().st_gid == gid
    assert stat.S_IMODE(b.stat().st_mode) == 0o444
    assert stat.S_IMODE((root / DEDUP_LOCK).stat().st_mode) == 0o664
    assert stat.S_IMODE((root / DEDUP_LOCK).parent.stat().st_mode) == 0o2775


def test_e2e_datalad_datasets_share_inodes_then_clone_get_and_fsck(
        published: Sibling, dataset: Path, store: Path, tmp_path: Path) -> None:
    """Two DataLad datasets with the same files, pushed through the dss remote; dedup links every
    key; fresh clones still get the right bytes and `git annex fsck --from` passes."""
    second = tmp_path / "ds2"
    run("datalad", "-l", "error", "create", second)
    write_files(second, SAMPLE)
    run("datalad", "-l", "error", "save", "-m", "same files", cwd=second)
    sib2 = create_sibling(second, "store", f"ria+file://{store}", alias="second")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=second)
    keys = annex_keys(dataset)
    assert annex_keys(second) == keys and len(keys) == len(SAMPLE)
    pairs = [(published.dataset_dir / object_relpath(k, "2"), sib2.dataset_dir / object_relpath(k, "2"))
             for k in keys.values()]
    before = objects(store)

    _, out, err = dss("dedup", store, "--dry-run", "--json")
    dry = json.loads(out)
    print(out)  # the measured numbers (pytest -s)
    assert err == "" and objects(store) == before
    sizes = sum(len(data) for data in SAMPLE.values())
    assert (dry["groups"], dry["links"], dry["inodes_saved"], dry["bytes_saved"]) == (
        len(SAMPLE), len(SAMPLE), len(SAMPLE), sizes)

    _, out, err = dss("dedup", store, "--dry-run")
    print(out)
    assert err == "" and objects(store) == before
    assert f"; would make {len(SAMPLE)} link(s), saving {sizes} bytes (" in out

    _, out, err = dss("dedup", store)
    assert err == ""
    assert f"; made {len(SAMPLE)} link(s), saved {sizes} bytes (" in out
    for one, two in pairs:
        assert one.stat().st_ino == two.stat().st_ino and one.stat().st_nlink == 2
    assert dss("dedup", store, "--json")[1].count('"links": 0') == 1  # nothing left to do

    for ds in (published.dataset_id, sib2.dataset_id):
        clone = tmp_path / f"clone-{ds[:8]}"
        run("datalad", "-l", "error", "clone", f"ria+file://{store}#{ds}", clone)
        run("datalad", "-l", "error", "get", ".", cwd=clone)
        for rel, data in SAMPLE.items():
            assert (clone / rel).read_bytes() == data
        fsck = run("git", "annex", "fsck", "--from", "store-storage", "--json", cwd=clone).stdout
        assert fsck.count('"success":true') == len(SAMPLE) and '"success":false' not in fsck
    # the store itself: no problem and no leftover of the links
    assert dss("fsck", store, "--deep")[0] == 0

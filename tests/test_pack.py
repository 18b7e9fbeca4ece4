"""`dss pack`: loose keys into `archives/archive.7z` as DataLad's ORA reads it, end to end with the
real DataLad, git-annex, ORA and 7-Zip; incremental, --min-age, --dry-run, --remove-loose, and
the bad inputs (damaged archive, full disk, bad age, unknown dataset, a pack already running)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cloud_servers import MirrorFixture
from conftest import SAMPLE, annex_keys, dss, require_tool, run, write_files
from leftover_processes import wait_for_detached

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.config import paths
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.store_replicas import open_replicas
from ria_store import archive_sidecar, archive_write
from ria_store.archive_index import load_index
from ria_store.keys import parse_key
from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, archive_members, dataset_relpath, object_relpath
from ria_store.locks import FileLock

IS_ROOT = os.geteuid() == 0
UNVERIFIED_OK = ("-c", "annex.security.allow-unverified-downloads=ACKTHPPT")


def loose(sib: Sibling) -> list[Path]:
    return sorted(p for p in (sib.dataset_dir / OBJECTS_DIR).rglob("*") if p.is_file())


def tree(root: Path) -> dict[str, tuple[int, int, float] | None]:
    """(size, inode, mtime) of every file under `root`, and its directories (a temp file made
    and removed again changes a directory's mtime, not what it holds)."""
    return {str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size, p.stat().st_ino,
                                                               p.stat().st_mtime)
            for p in root.rglob("*")}


def archive(sib: Sibling) -> Path:
    return sib.dataset_dir / ARCHIVE_PATH


def members(sib: Sibling) -> dict[str, bytes]:
    """{member name: bytes} of the dataset's archive, read by offset (stored, not compressed)."""
    index = load_index(archive(sib))
    data = archive(sib).read_bytes()
    out = {}
    for m in index.members.values():
        assert m.offset is not None, f"{m.name} is compressed: not as DataLad packs"
        out[m.name] = data[m.offset:m.offset + m.size]
    return out


def pack(store: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    return dss("pack", store, *args, check=check)


def add_and_push(dataset: Path, files: dict[str, bytes]) -> None:
    write_files(dataset, files)
    run("datalad", "-l", "error", "save", "-m", "more", cwd=dataset)
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)


def test_after_pack_remove_loose_ora_and_dss_get_every_key_and_fsck_passes(
        published: Sibling, store: Path, dataset: Path, tmp_path: Path) -> None:
    require_tool("7z")
    keys = annex_keys(dataset)
    _rc, out, err = pack(store, "--dataset", "~sample", "--min-age", "0s", "--remove-loose")
    assert f"packed {len(set(keys.values()))} key(s)" in out, out + err
    assert loose(published) == [], "every loose object must be gone"
    held = members(published)
    for path, key in keys.items():  # every key at ORA's member name, with the file's bytes
        assert held[archive_members(key)[0]] == (dataset / path).read_bytes()
    sevenzip = run(require_tool("7z"), "l", "-slt", archive(published)).stdout
    assert "Solid = -" in sevenzip and "Method = Copy" in sevenzip
    assert oct(archive(published).stat().st_mode & 0o777) == "0o444"

    # DataLad's clone + the dss remote
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#~sample", clone)
    run("datalad", "-l", "error", "get", ".", cwd=clone)
    assert {p: (clone / p).read_bytes() for p in keys} == {p: (dataset / p).read_bytes() for p in keys}
    run("git", "annex", "fsck", "--from", "store-storage", cwd=clone)
    # DataLad's ORA, which reads archives with the 7z program
    run("git", "annex", "drop", ".", cwd=clone)
    run("git", "annex", "initremote", "ora", "--sameas=store-storage", "type=external",
        "externaltype=ora", f"url=ria+file://{store}", f"archive-id={published.dataset_id}",
        "encryption=none", cwd=clone)
    got = run("git", *UNVERIFIED_OK, "annex", "get", "--from", "ora", "--json", ".", cwd=clone).stdout
    assert got.count('"success":true') == len(keys)
    assert {p: (clone / p).read_bytes() for p in keys} == {p: (dataset / p).read_bytes() for p in keys}
    run("git", *UNVERIFIED_OK, "annex", "fsck", "--from", "ora", cwd=clone)


def test_a_second_pack_adds_only_new_keys_and_nothing_new_changes_nothing(
        published: Sibling, store: Path, dataset: Path) -> None:
    pack(store, "--min-age", "0s")
    first = members(published)
    loose_before = loose(published)
    assert len(first) >= len(set(annex_keys(dataset).values()))
    assert loose_before, "without --remove-loose the loose objects stay"
    before = tree(published.dataset_dir)
    _, out, _ = pack(store, "--min-age", "0s")
    assert "packed 0 key(s)" in out and "already packed" in out
    assert tree(published.dataset_dir) == before, "a run with nothing new must change nothing"

    add_and_push(dataset, {"new.bin": os.urandom(5000)})
    new_key = annex_keys(dataset)["new.bin"]
    _rc, out, _ = pack(store, "--min-age", "0s")
    assert "packed 1 key(s), 5000 bytes" in out
    second = members(published)
    assert set(second) - set(first) == {archive_members(new_key)[0]}
    assert {n: second[n] for n in first} == first, "old members keep their bytes"
    assert second[archive_members(new_key)[0]] == (dataset / "new.bin").read_bytes()


def test_the_temp_files_a_killed_pack_left_are_removed_by_the_next_pack(
        published: Sibling, store: Path) -> None:
    """A kill between the member table's temp file and its rename left `.dss-tmp-<random>` in
    `archives/` (seen in a kill -9 run); the next pack removes it with the archive's own temps."""
    pack(store, "--min-age", "0s")
    archives = published.dataset_dir / "archives"
    left = [archives / ".dss-tmp-aqv8zxlq", archives / ".dss-tmp-pack-4242-0123456789ab.7z"]
    for p in left:
        p.write_bytes(b"half written")
    _, out, _ = pack(store, "--min-age", "0s")
    assert "packed 0 key(s)" in out
    assert sorted(p.name for p in archives.iterdir()) == sorted(["archive.7z", archive_sidecar.NAME])


def test_min_age_leaves_recent_keys_loose_and_a_dry_run_changes_nothing(
        published: Sibling, store: Path, dataset: Path) -> None:
    objs = loose(published)
    old = objs[:2]
    for p in old:  # written "two hours ago"
        os.utime(p, (p.stat().st_atime, p.stat().st_mtime - 7200), follow_symlinks=False)
    before = tree(store)
    _, out, _ = pack(store, "--min-age", "1h", "--remove-loose", "--dry-run", "--json")
    (row,) = json.loads(out)
    assert row["dry_run"] and row["packed"] == 2 and row["young"] == len(objs) - 2
    assert row["removed"] == 2 and row["inodes_freed"] >= 4  # each: the file and its key directory
    assert tree(store) == before, "a dry run changes nothing"

    _rc, out, _ = pack(store, "--min-age", "1h", "--remove-loose")
    assert "packed 2 key(s)" in out and f"{len(objs) - 2} younger than --min-age" in out
    assert loose(published) == objs[2:]
    assert len(members(published)) >= 2


def test_a_damaged_archive_is_never_packed_onto_and_names_dss_repair(
        published: Sibling, store: Path, dataset: Path) -> None:
    pack(store, "--min-age", "0s")
    add_and_push(dataset, {"later.bin": os.urandom(3000)})
    target = archive(published)
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    first = min((m for m in load_index(target).members.values() if m.size), key=lambda m: m.offset or 0)
    assert first.offset is not None
    data[first.offset] ^= 0xFF  # a member's bytes, under an intact header: only its CRC tells
    target.write_bytes(bytes(data))
    before, objs = tree(published.dataset_dir), loose(published)
    rc, _, err = pack(store, "--min-age", "0s", "--remove-loose", check=False)
    assert rc == 1
    assert "failed verification" in err and "CRC32" in err and "dss repair" in err, err
    assert len(err.strip().splitlines()) == 1
    assert tree(published.dataset_dir) == before and loose(published) == objs

    target.write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(40))  # a header that does not parse
    rc, _out, err = pack(store, "--min-age", "0s", check=False)
    assert rc == 1 and "corrupt" in err and "dss repair" in err, err
    assert loose(published) == objs


def test_pack_into_a_full_disk_keeps_the_old_archive_and_every_loose_object(
        published: Sibling, store: Path, dataset: Path) -> None:
    if not IS_ROOT:
        pytest.fail("this test fills a private tmpfs and needs root (run the suite as root, as CI does)")
    unshare = require_tool("unshare", "apt-get install util-linux")
    pack(store, "--min-age", "0s")
    add_and_push(dataset, {"big.bin": os.urandom(2 << 20)})
    archives = published.dataset_dir / "archives"
    old = archive(published).read_bytes()
    objs = loose(published)
    keep = shlex.quote(str(archives) + ".keep")
    q = shlex.quote(str(archives))
    script = (f"set -e; cp -a {q} {keep}; mount -t tmpfs -o size=256k tmpfs {q}; cp -a {keep}/. {q}/; "
              f"set +e; {shlex.quote(require_tool('dss'))} pack {shlex.quote(str(store))} --min-age 0s "
              f"--remove-loose; echo rc=$?; ls -a {q}; umount {q}; rm -r {keep}")
    res = run(unshare, "-m", "--propagation", "private", "sh", "-c", script, check=False)
    outs = res.stdout + res.stderr
    if "rc=" not in outs:
        pytest.fail(f"cannot set up a private mount namespace (needs root with CAP_SYS_ADMIN): {outs[-500:]}")
    assert "rc=1" in outs, outs
    assert "no space left" in outs.lower() and "free space" in outs, outs
    listing = outs.split("rc=1", 1)[1].split()
    assert [n for n in listing if n.startswith(".dss-tmp")] == [], f"temp archive left: {listing}"
    assert archive(published).read_bytes() == old
    assert loose(published) == objs, "every loose object stays"


def test_bad_min_age_and_unknown_dataset_are_refused(published: Sibling, store: Path) -> None:
    before = tree(store)
    rc, _, err = pack(store, "--min-age", "7 days", check=False)
    assert rc == 1 and "--min-age '7 days' is not an age" in err and "7d" in err
    rc, _, err = pack(store, "--dataset", "~nosuch", check=False)
    assert rc == 1 and "nosuch" in err and len(err.strip().splitlines()) == 1
    rc, _, err = pack(store, "--dataset", "0a1b2c3d-4e5f-4a6b-8c7d-000000000000", check=False)
    assert rc == 1 and "0a1b2c3d-4e5f-4a6b-8c7d-000000000000" in err
    assert tree(store) == before


def test_a_second_pack_of_one_dataset_waits_its_turn(published: Sibling, store: Path) -> None:
    with FileLock(store / paths.PACK_LOCKS / f"{published.dataset_id}.lock"):
        rc, _, err = pack(store, "--min-age", "0s", check=False)
    assert rc == 1 and "another `dss pack` or `dss gc` is rewriting dataset" in err
    assert not archive(published).exists()


def test_keys_copied_during_packs_are_never_lost(published: Sibling, store: Path, dataset: Path) -> None:
    files = {f"batch/{i}.bin": os.urandom(2000 + i) for i in range(40)}
    write_files(dataset, files)
    run("datalad", "-l", "error", "save", "-m", "batch", cwd=dataset)
    done = threading.Event()
    errors: list[str] = []

    def packer() -> None:
        while not done.is_set():
            rc, _out, err = pack(store, "--min-age", "0s", "--remove-loose", check=False)
            if rc != 0 and "another `dss pack`" not in err:
                errors.append(err)

    t = threading.Thread(target=packer)
    t.start()
    try:
        for i in range(0, 40, 8):
            names = [f"batch/{j}.bin" for j in range(i, i + 8)]
            run("git", "annex", "copy", "--to", "store-storage", *names, cwd=dataset)
    finally:
        done.set()
        t.join()
    assert errors == []
    pack(store, "--min-age", "0s")  # whatever the last loop missed
    keys = {annex_keys(dataset)[p] for p in files}
    held = members(published)
    stays = {p.name for p in loose(published)}
    missing = [k for k in keys if archive_members(parse_key(k))[0] not in held and k not in stays]
    assert missing == []
    run("git", "annex", "fsck", "--from", "store-storage", "--fast", *files, *SAMPLE, cwd=dataset)


def test_pack_uploads_the_archive_and_removes_loose_objects_on_mirrors(
        store: Path, dataset: Path, s3_mirror: MirrorFixture, gcs_mirror: MirrorFixture,
        tmp_path: Path) -> None:
    require_tool("git-annex-remote-dss")
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    add_mirror(store, Mirror(url=gcs_mirror.url, name="gcs", endpoint_url=gcs_mirror.endpoint_url))
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    ds_rel = dataset_relpath(sib.dataset_id)
    backends = dict(open_replicas(f"ria+file://{store}", read_config(store)).backends)
    for name in ("s3", "gcs"):  # the push wrote every key to both mirrors, loose
        assert len(list(backends[name].iter_objects(f"{ds_rel}/{OBJECTS_DIR}"))) == len(loose(sib))

    _rc, out, _err = pack(store, "--min-age", "0s", "--remove-loose", "--json")
    (row,) = json.loads(out)
    assert row["mirrors"]["s3"].startswith("archive up to date;") and row["problems"] == [], row
    assert row["mirrors"]["gcs"].startswith("archive up to date;"), row
    local = archive(sib).read_bytes()
    for name in ("s3", "gcs"):
        assert backends[name].read_bytes(f"{ds_rel}/{ARCHIVE_PATH}") == local
        assert list(backends[name].iter_objects(f"{ds_rel}/{OBJECTS_DIR}")) == []
    assert loose(sib) == []

    # the keys now come from a mirror's archive while the POSIX store is away
    run("git", "annex", "fsck", "--fast", "--from", "store-storage", "small.txt", cwd=dataset)
    run("git", "annex", "drop", "--force", ".", cwd=dataset)
    wait_for_detached()  # the push's detached `dss sync` would recreate the store's dss/
    os.rename(store, tmp_path / "unmounted")
    try:
        run("git", "annex", "get", ".", cwd=dataset)
    finally:
        os.rename(tmp_path / "unmounted", store)
    assert {p: (dataset / p).read_bytes() for p in SAMPLE} == SAMPLE


def _writable_rmtree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def _nothing_lost(sib: Sibling, contents: dict[str, bytes]) -> list[str]:
    """Keys neither loose with their bytes nor in a published archive that verifies."""
    held: dict[str, bytes] = {}
    if archive(sib).exists():  # never a partial archive: it must read and verify in full
        index, problems = archive_write.verify(archive(sib), [parse_key(k) for k in contents])
        assert problems == [] or all(p.problem == "missing from the archive" for p in problems), problems
        data = archive(sib).read_bytes()
        held = {m.name: data[m.offset:m.offset + m.size] for m in index.members.values()
                if m.offset is not None}
    lost = []
    for key, data in contents.items():
        obj = sib.dataset_dir / object_relpath(key, "2")
        if obj.is_file() and obj.read_bytes() == data:
            continue
        if held.get(archive_members(key)[0]) == data:
            continue
        lost.append(key)
    return lost


@pytest.mark.slow(85)
def test_a_kill_9_at_any_point_of_a_pack_loses_nothing(published: Sibling, store: Path,
                                                       dataset: Path, tmp_path: Path) -> None:
    add_and_push(dataset, {f"many/{i}.bin": os.urandom(20_000 + i) for i in range(60)})
    contents = {key: (dataset / path).read_bytes() for path, key in annex_keys(dataset).items()}
    objects = published.dataset_dir / OBJECTS_DIR
    backup = tmp_path / "objects.bak"
    shutil.copytree(objects, backup)
    cmd = [require_tool("dss"), "pack", str(store), "--min-age", "0s", "--remove-loose"]
    started = time.monotonic()
    run(*cmd)
    full = time.monotonic() - started
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    for i in range(50):
        if archive(published).exists():
            archive(published).unlink()
        _writable_rmtree(objects)
        shutil.copytree(backup, objects)
        if i % 2:  # half the runs pack onto an archive that holds part of the keys already
            for n, key in enumerate(sorted(contents)):
                age = 7200 if n % 2 else 0
                os.utime(published.dataset_dir / object_relpath(key, "2"), (0, time.time() - age))
            _, out, _ = pack(store, "--min-age", "1h")  # without --remove-loose: all stay loose
            assert f"packed {len(contents) // 2} key(s)" in out
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            time.sleep(rng.uniform(0, full * 1.1))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        lost = _nothing_lost(published, contents)
        assert lost == [], f"seed {seed}, kill {i} after {full:.2f}s-run: lost {lost}"
    rc, out, err = pack(store, "--min-age", "0s", "--remove-loose")  # the next run cleans up
    assert loose(published) == [] and _nothing_lost(published, contents) == []
    leftovers = [p.name for p in (published.dataset_dir / "archives").iterdir()
                 if p.name not in ("archive.7z", archive_sidecar.NAME)]
    assert leftovers == [] and not (store / paths.PACK_STAGING / published.dataset_id).exists()
    rc, out, err = dss("fsck", store, "--deep", check=False)
    assert rc == 0, out + err


def test_readers_take_the_saved_member_table_and_only_when_it_matches(
        published: Sibling, store: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pack(store, "--min-age", "0s")
    target = archive(published)
    parsed = load_index(target, saved=False)
    assert archive_sidecar.sidecar_path(target).is_file()

    import py7zr

    def no_parsing(*_a: object, **_k: object) -> None:
        raise AssertionError("py7zr parsed the header although a matching table was saved")

    with monkeypatch.context() as m:
        m.setattr(py7zr, "SevenZipFile", no_parsing)
        assert load_index(target).members == parsed.members

    # a table that does not match the archive (another archive was put in place) is not used
    add_and_push(dataset, {"later.bin": os.urandom(3000)})
    saved = archive_sidecar.sidecar_path(target).read_bytes()
    pack(store, "--min-age", "0s")
    sidecar = archive_sidecar.sidecar_path(target)
    sidecar.chmod(0o644)
    sidecar.write_bytes(saved)  # the first archive's table beside the second archive
    again = load_index(target)
    assert again.members == load_index(target, saved=False).members
    assert len(again.members) == len(parsed.members) + 1

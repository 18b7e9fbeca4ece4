"""ReplicaSet over a store and file:// mirrors: parallel quorum writes, repair queue, verified reads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import PLAIN_DSID

from dss_remote.admin.store import add_mirror, set_quorum
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication import repair_queue
from dss_remote.replication.store_replicas import StoreReplicas, open_replicas
from ria_store.errors import CorruptError, NotFoundError, UnavailableError, WriteError
from ria_store.keys import parse_key
from ria_store.layout import dataset_relpath, object_relpath

DATA = os.urandom(2 * 1024 * 1024 + 3)
KEY = parse_key(f"SHA256E-s{len(DATA)}--{hashlib.sha256(DATA).hexdigest()}.dat")
REL = f"{dataset_relpath(PLAIN_DSID)}/{object_relpath(KEY, '2')}"


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    p = tmp_path / "payload"
    p.write_bytes(DATA)
    return p


@pytest.fixture
def mirrors(store: Path, dsdir: Path, tmp_path: Path) -> list[Path]:
    """Two file:// mirrors added with `dss mirror add`'s library call."""
    roots = [tmp_path / "m1", tmp_path / "m2"]
    for i, root in enumerate(roots):
        add_mirror(store, Mirror(url=f"file://{root}", name=f"m{i + 1}"))
    return roots


def replicas(store: Path) -> StoreReplicas:
    return open_replicas(f"ria+file://{store}", read_config(store))


def test_store_writes_every_replica_and_makes_mirror_datasets(
        store: Path, mirrors: list[Path], payload: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    seen: list[int] = []
    rs.store(KEY, payload, seen.append)
    for root in (store, *mirrors):
        assert (root / REL).read_bytes() == DATA
    for root in mirrors:
        assert (root / "ria-layout-version").read_text() == "1\n"
        assert (root / dataset_relpath(PLAIN_DSID) / "ria-layout-version").read_text() == "2\n"
        assert (root / "dss" / "config.json").read_text() == (store / "dss" / "config.json").read_text()
    assert seen and seen[-1] == len(DATA) and seen == sorted(seen)


def _break(root: Path) -> None:
    """Make every write under `root` fail (ENOTDIR), even for root: a file where the dataset dir goes."""
    top = root / PLAIN_DSID[:3]
    if top.is_dir():
        os.rename(top, root / "moved-away")
    top.write_text("blocker")


def test_quorum_all_fails_naming_the_replica_and_queues_repair(
        store: Path, mirrors: list[Path], payload: Path) -> None:
    _break(mirrors[1])
    rs = replicas(store).for_dataset(PLAIN_DSID)
    with pytest.raises(WriteError) as err:
        rs.store(KEY, payload)
    msg = str(err.value)
    assert "\n" not in msg and f"file://{mirrors[1]}" in msg and "2 of 3 replicas" in msg
    assert "write_quorum needs 3" in msg
    assert not list((mirrors[1]).glob("**/.dss-tmp-*")), "nothing partial on the failed mirror"
    entries, problems = repair_queue.load([replicas(store).primary])
    assert not problems
    assert [(e.replica, e.key) for e in entries] == [("m2", KEY.text)]


def test_quorum_one_succeeds_then_sync_drains_the_queue(
        store: Path, mirrors: list[Path], payload: Path) -> None:
    set_quorum(store, "2")
    _break(mirrors[1])
    rs = replicas(store).for_dataset(PLAIN_DSID)
    rs.store(KEY, payload)  # 2 of 3 took it
    assert not (mirrors[1] / REL).exists()
    (mirrors[1] / PLAIN_DSID[:3]).unlink()  # the mirror comes back
    from dss_remote.replication.sync import sync
    report = sync(replicas(store), [PLAIN_DSID])
    assert report.ok, report.failed
    assert (mirrors[1] / REL).read_bytes() == DATA
    entries, _ = repair_queue.load([b for _, b in replicas(store).backends])
    assert entries == []


def test_read_skips_a_corrupt_copy_and_falls_back(store: Path, mirrors: list[Path], payload: Path,
                                                  tmp_path: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    rs.store(KEY, payload)
    obj = store / REL
    obj.chmod(0o644)
    obj.write_bytes(bytes([DATA[0] ^ 1]) + DATA[1:])  # same size: only the checksum tells
    out = tmp_path / "out"
    rs.retrieve(KEY, out)
    assert out.read_bytes() == DATA


def test_read_error_names_every_replica(store: Path, mirrors: list[Path], payload: Path,
                                        tmp_path: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    rs.store(KEY, payload)
    for root in (store, mirrors[0]):
        p = root / REL
        p.chmod(0o644)
        p.write_bytes(bytes([DATA[0] ^ 1]) + DATA[1:])
    # the last replica's checksum is git-annex's to verify (it tails the file); its size is ours
    p = mirrors[1] / REL
    p.chmod(0o644)
    p.write_bytes(DATA[:-1])
    with pytest.raises(UnavailableError) as err:
        rs.retrieve(KEY, tmp_path / "out")
    msg = str(err.value)
    assert "\n" not in msg and "[store]" in msg and "[m1]" in msg and "[m2]" in msg
    assert msg.count("does not match its key") == 2 and "bytes but key" in msg
    assert not list(tmp_path.glob(".dss-tmp-*")), "no temp file left beside the destination"


def test_present_means_the_write_quorum_holds(store: Path, mirrors: list[Path], payload: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    rs.store(KEY, payload)
    assert rs.present(KEY) is True
    (mirrors[1] / REL).unlink()
    assert rs.present(KEY) is False, "on 2 of 3 with write_quorum all: copy must write it again"
    rs.store(KEY, payload)
    assert (mirrors[1] / REL).read_bytes() == DATA
    rs.quorum = 2
    (mirrors[0] / REL).unlink()
    assert rs.present(KEY) is True


def test_absent_everywhere_is_not_found(store: Path, mirrors: list[Path], tmp_path: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    assert rs.present(KEY) is False
    with pytest.raises(NotFoundError):
        rs.retrieve(KEY, tmp_path / "out")


def test_present_from_mirror_when_store_is_unmounted(store: Path, mirrors: list[Path],
                                                     payload: Path, tmp_path: Path) -> None:
    replicas(store).for_dataset(PLAIN_DSID).store(KEY, payload)
    set_quorum(store, "2")
    sr = replicas(store)
    os.rename(store, tmp_path / "unmounted")
    rs = sr.for_dataset(PLAIN_DSID)
    assert rs.present(KEY) is True  # 2 of 3 hold it: write_quorum 2 is met without the store
    rs.quorum = 3
    assert rs.present(KEY) is False  # "all" is not known to hold: the safe answer
    out = tmp_path / "out"
    rs.retrieve(KEY, out)
    assert out.read_bytes() == DATA


def test_remove_fails_if_a_replica_may_still_hold_the_key(store: Path, mirrors: list[Path],
                                                          payload: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    rs.store(KEY, payload)
    rs.remove(KEY)
    assert not any((root / REL).exists() for root in (store, *mirrors))


def test_corrupt_mirror_copy_is_reported_by_the_read(store: Path, mirrors: list[Path], payload: Path,
                                                     tmp_path: Path) -> None:
    sr = replicas(store)
    sr.for_dataset(PLAIN_DSID).store(KEY, payload)
    p = mirrors[0] / REL
    p.chmod(0o644)
    p.write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))  # a flipped bit always differs
    m1 = sr.for_dataset(PLAIN_DSID).replicas[1]
    with pytest.raises(CorruptError, match="does not match its key"):
        m1.retrieve(KEY, tmp_path / "out")


@pytest.fixture
def read_only_copy(store: Path, dsdir: Path, mirrors: list[Path], tmp_path: Path) -> Path:
    """A third mirror, read-only: a directory something else fills (here: the test)."""
    root = tmp_path / "ro"
    root.mkdir()
    (root / "ria-layout-version").write_text("1\n")
    add_mirror(store, Mirror(url=f"file://{root}", name="ro", read_only=True))
    return root


def test_read_only_mirror_is_never_written_nor_counted(
        store: Path, read_only_copy: Path, payload: Path) -> None:
    sr = replicas(store)
    rs = sr.for_dataset(PLAIN_DSID)
    assert ([r.name for r in rs.replicas], [r.name for r in rs.writers], rs.quorum) == (
        ["store", "m1", "m2", "ro"], ["store", "m1", "m2"], 3)
    rs.store(KEY, payload)
    assert not (read_only_copy / REL).exists()
    assert rs.present(KEY), "present: every writable replica has it"
    assert not (store / "dss" / "repair-queue").exists(), "a read-only mirror never misses a write"
    rs.remove(KEY)
    assert not rs.present(KEY)


def test_read_only_mirror_is_read_last_in_cost_order(
        store: Path, mirrors: list[Path], read_only_copy: Path, tmp_path: Path) -> None:
    (read_only_copy / REL).parent.mkdir(parents=True)
    (read_only_copy / REL).write_bytes(DATA)
    rs = replicas(store).for_dataset(PLAIN_DSID)
    assert not rs.present(KEY), "a copy only on a read-only mirror does not count"
    dst = tmp_path / "got"
    rs.retrieve(KEY, dst)
    assert dst.read_bytes() == DATA
    rs.remove(KEY)
    assert (read_only_copy / REL).read_bytes() == DATA, "REMOVE leaves a read-only mirror alone"


def test_presence_cannot_be_told_when_only_a_read_only_mirror_answers(
        store: Path, dsdir: Path, tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    (root / "ria-layout-version").write_text("1\n")
    add_mirror(store, Mirror(url=f"file://{root}", name="ro", read_only=True))
    sr = replicas(store)
    os.rename(store, tmp_path / "unmounted")
    try:
        with pytest.raises(UnavailableError):
            sr.for_dataset(PLAIN_DSID).present(KEY)
    finally:
        os.rename(tmp_path / "unmounted", store)


def test_store_reached_over_http_is_read_only(store: Path, dsdir: Path, payload: Path,
                                              tmp_path: Path) -> None:
    from file_servers import serve_http

    from dss_remote.replication.store_replicas import load_served_config

    open_replicas(f"ria+file://{store}", read_config(store)).for_dataset(PLAIN_DSID).store(KEY, payload)
    with serve_http(store) as server:
        url = f"ria+{server.url}"
        from dss_remote.backends import backend_for

        cfg = load_served_config(backend_for(url), url, tmp_path / "cache")
        rs = open_replicas(url, cfg).for_dataset(PLAIN_DSID)
        assert rs.read_only and rs.present(KEY)
        rs.retrieve(KEY, tmp_path / "got")
        assert (tmp_path / "got").read_bytes() == payload.read_bytes()
        with pytest.raises(WriteError, match=r"^cannot store .*: this remote reaches the store read-only "
                                             r"\(.*\); push with a writable url"):
            rs.store(KEY, payload)
        with pytest.raises(WriteError, match=r"^cannot remove"):
            rs.remove(KEY)
    assert (store / dataset_relpath(PLAIN_DSID) / object_relpath(KEY, "2")).is_file(), "nothing removed"

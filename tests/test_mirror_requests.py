"""What key operations cost a mirror reached over the network, in requests.

On S3 and GCS every HEAD and PUT is latency and money, so `git annex copy --to` must ask as little
as it can without ever skipping a copy. The mirrors here are fsspec memory:// (in-process); the
same DatasetObjects code runs against S3 and GCS, where test_e2e_mirrors counts moto's requests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import PLAIN_DSID
from test_archive import pack_7z, stage
from test_archive_mirrors import ARCHIVE_REL, count_calls, fetch, md5_key, write

from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication import remembered
from dss_remote.replication.replica_set import ReplicaSet
from dss_remote.replication.store_replicas import StoreReplicas, open_replicas
from ria_store.errors import WriteError
from ria_store.layout import archive_members, dataset_relpath, object_relpath

DS = dataset_relpath(PLAIN_DSID)


@pytest.fixture
def sr(store: Path, dsdir: Path) -> StoreReplicas:
    for name in ("m1", "m2"):
        add_mirror(store, Mirror(url=f"memory://{os.urandom(6).hex()}-{name}/store", name=name))
    return open_replicas(f"ria+file://{store}", read_config(store))


def keys(n: int) -> dict[str, bytes]:
    return {f".{i}": os.urandom(100 + i) for i in range(n)}


def test_copy_of_new_keys_costs_each_mirror_one_head_and_one_put_per_key(
        sr: StoreReplicas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CHECKPRESENT of a key the store lacks is answered by the store alone (write_quorum `all`
    cannot hold); STORE then asks each mirror once whether it has the key, and writes it."""
    rs = sr.for_dataset(PLAIN_DSID)
    heads = {n: count_calls(monkeypatch, sr.named(n), "info") for n in ("m1", "m2")}
    puts = {n: count_calls(monkeypatch, sr.named(n), "put_file") for n in ("m1", "m2")}
    data = keys(5)
    for ext, content in data.items():
        key = md5_key(content, ext)
        before = len(heads["m1"]) + len(heads["m2"])
        assert rs.present(key) is False
        assert len(heads["m1"]) + len(heads["m2"]) == before, "the store alone answered"
        rs.store(key, write(tmp_path, content))
        assert rs.present(key) is True
    for n in ("m1", "m2"):
        # per key: one HEAD in STORE, one PUT, one HEAD in the CHECKPRESENT after it
        assert len(puts[n]) == 5 and len(heads[n]) == 10, (n, heads[n])
        for ext, content in data.items():
            rel = f"{DS}/{object_relpath(md5_key(content, ext), '2')}"
            assert sr.named(n).read_bytes(rel) == content


def test_a_mirror_that_missed_keys_is_asked_once_per_key_then_written(
        sr: StoreReplicas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys on the store but not on m1 (a write_quorum 1 copy while m1 was down): CHECKPRESENT
    finds m1 lacking the key, and the STORE after it writes m1 without asking again. Its root
    `ria-layout-version` and "no archive" are asked once per process, not per key."""
    full = ReplicaSet([r for r in sr.for_dataset(PLAIN_DSID).replicas if r.name != "m1"])
    data = {md5_key(c, e): c for e, c in keys(4).items()}
    for key, content in data.items():
        full.store(key, write(tmp_path, content))
    rs = sr.for_dataset(PLAIN_DSID)
    heads = count_calls(monkeypatch, sr.named("m1"), "info")
    puts = count_calls(monkeypatch, sr.named("m1"), "put_file")
    for key, content in data.items():
        assert rs.present(key) is False
        rs.store(key, write(tmp_path, content))
    asked = [args[0].rsplit("/", 1)[-1] for args in heads]
    # the first key: its object, the archive, the root version file; later keys: the object only
    assert len(heads) == len(data) + 2, asked
    assert asked.count("archive.7z") == 1 and asked.count("ria-layout-version") == 1
    assert len(puts) == len(data)
    assert all(rs.present(k) for k in data)


def test_an_archive_appearing_on_a_mirror_is_read_at_once_and_counted_after_the_recheck(
        sr: StoreReplicas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """"No archive" is remembered by CHECKPRESENT only, and only for ARCHIVE_RECHECK_S: a read
    and a removal always look again (so a packed key is served, and never removed behind the
    archive's back), and a look that finds the archive ends the memo."""
    m1 = sr.for_dataset(PLAIN_DSID).named("m1")
    content = os.urandom(300)
    key = md5_key(content, ".p")
    assert m1.present(key) is False
    staging = stage(tmp_path / "staging", {archive_members(key)[0]: content})
    archive = pack_7z(staging, tmp_path / "a.7z", "-mx0")
    sr.named("m1").put_file(archive, ARCHIVE_REL)
    assert m1.present(key) is False, "within the recheck time the earlier answer stands"
    with pytest.raises(WriteError, match="also packed"):
        m1.remove(key)
    assert m1.present(key) is True, "the removal saw the archive"
    assert fetch(m1, key, tmp_path) == content

    monkeypatch.setattr(remembered, "ARCHIVE_RECHECK_S", 0.0)
    sr.named("m2").write_bytes(f"{DS}/ria-layout-version", b"2\n")
    m2 = sr.for_dataset(PLAIN_DSID).named("m2")
    assert m2.present(key) is False
    sr.named("m2").put_file(archive, ARCHIVE_REL)
    assert m2.present(key) is True, "with a recheck time of 0, present looks every time"


def test_the_store_on_this_machine_is_looked_at_every_time(
        sr: StoreReplicas, dsdir: Path, tmp_path: Path) -> None:
    """No memo for a directory here (a look is a stat): an object that appears is seen at once."""
    store = sr.for_dataset(PLAIN_DSID).replicas[0]
    content = os.urandom(64)
    key = md5_key(content, ".s")
    assert store.present(key) is False
    obj = dsdir / object_relpath(key, "2")
    obj.parent.mkdir(parents=True)
    obj.write_bytes(content)
    assert store.present(key) is True

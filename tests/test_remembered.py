"""The request memos of a replica reached over the network (`replication.remembered`), one rule each.

The mirror is fsspec memory:// (in-process); every request is counted on its backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import PLAIN_DSID
from test_archive import pack_7z, stage
from test_archive_mirrors import ARCHIVE_REL, count_calls, fetch, md5_key, write

from dss_remote.admin.store import add_mirror
from dss_remote.backends.base import Backend
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication import remembered
from dss_remote.replication.dataset_objects import DatasetObjects
from dss_remote.replication.remembered import RememberingObjects, remembering
from dss_remote.replication.store_replicas import StoreReplicas, open_replicas
from ria_store.errors import NotFoundError, UnavailableError, WriteError
from ria_store.keys import AnnexKey
from ria_store.layout import VERSION_FILE, archive_members, dataset_relpath, object_relpath

DS = dataset_relpath(PLAIN_DSID)


@pytest.fixture
def sr(store: Path, dsdir: Path) -> StoreReplicas:
    add_mirror(store, Mirror(url=f"memory://{os.urandom(6).hex()}-m1/store", name="m1"))
    return open_replicas(f"ria+file://{store}", read_config(store))


@pytest.fixture
def m1(sr: StoreReplicas) -> RememberingObjects:
    replica = sr.for_dataset(PLAIN_DSID).named("m1")
    assert isinstance(replica, RememberingObjects)
    return replica


@pytest.fixture
def mirror(sr: StoreReplicas) -> Backend:
    return sr.named("m1")


def asked(calls: list[Any], name: str) -> int:
    """How many of the counted `info` calls asked for a path ending in `name`."""
    return sum(args[0].rsplit("/", 1)[-1] == name for args in calls)


def obj_rel(key: AnnexKey) -> str:
    return f"{DS}/{object_relpath(key, '2')}"


def pack(tmp_path: Path, key: AnnexKey, content: bytes) -> Path:
    staging = stage(tmp_path / "staging", {archive_members(key)[0]: content})
    return pack_7z(staging, tmp_path / "a.7z", "-mx0")


# -- which replicas get the memos -------------------------------------------------------------------
def test_a_directory_on_this_machine_gets_no_memo(sr: StoreReplicas) -> None:
    store = DatasetObjects(sr.primary, PLAIN_DSID, name="store")
    assert remembering(store) is store
    assert sr.for_dataset(PLAIN_DSID).named("store").__class__ is DatasetObjects


def test_a_replica_over_the_network_gets_the_memos(sr: StoreReplicas, mirror: Backend) -> None:
    objects = DatasetObjects(mirror, PLAIN_DSID, name="m1", mirror_version="2")
    wrapped = remembering(objects)
    assert isinstance(wrapped, RememberingObjects) and wrapped.objects is objects
    assert (wrapped.name, wrapped.url) == ("m1", mirror.url)


# -- the root ria-layout-version ---------------------------------------------------------------------
def test_the_root_version_file_once_seen_is_not_asked_again(
        m1: RememberingObjects, mirror: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    heads = count_calls(monkeypatch, mirror, "info")
    for i in range(3):
        assert m1.present(md5_key(os.urandom(10), f".{i}")) is False
    assert asked(heads, VERSION_FILE) == 1


def test_a_missing_root_version_file_is_cannot_tell_and_not_remembered(
        m1: RememberingObjects, mirror: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror.remove(VERSION_FILE)
    heads = count_calls(monkeypatch, mirror, "info")
    key = md5_key(b"k", ".r")
    for _ in range(2):
        with pytest.raises(UnavailableError, match="no ria-layout-version at the mirror's root"):
            m1.present(key)
    assert asked(heads, VERSION_FILE) == 2
    mirror.write_bytes(VERSION_FILE, b"1\n")
    assert m1.present(key) is False


def test_retrieve_confirms_the_root_afresh(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = md5_key(b"k", ".r")
    assert m1.present(key) is False
    mirror.remove(VERSION_FILE)  # the bucket was emptied, or the url now points elsewhere
    with pytest.raises(UnavailableError, match="no ria-layout-version at the mirror's root"):
        fetch(m1, key, tmp_path)


# -- "no archive", in present only --------------------------------------------------------------------
def test_no_archive_is_remembered_by_present_for_the_recheck_time(
        m1: RememberingObjects, mirror: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    heads = count_calls(monkeypatch, mirror, "info")
    for i in range(3):
        assert m1.present(md5_key(os.urandom(10), f".{i}")) is False
    assert asked(heads, "archive.7z") == 1


def test_no_archive_is_looked_at_again_after_the_recheck_time(
        m1: RememberingObjects, mirror: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remembered, "ARCHIVE_RECHECK_S", 0.0)
    heads = count_calls(monkeypatch, mirror, "info")
    for i in range(3):
        assert m1.present(md5_key(os.urandom(10), f".{i}")) is False
    assert asked(heads, "archive.7z") == 3


def test_a_stale_no_archive_never_makes_retrieve_say_absent(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path) -> None:
    content = os.urandom(200)
    key = md5_key(content, ".a")
    assert m1.present(key) is False
    mirror.put_file(pack(tmp_path, key, content), ARCHIVE_REL)
    assert m1.present(key) is False, "within the recheck time the earlier answer stands"
    assert fetch(m1, key, tmp_path) == content
    assert m1.present(key) is True, "the read looked afresh, and so does the present after it"


def test_a_stale_no_archive_never_lets_remove_succeed(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path) -> None:
    content = os.urandom(200)
    key = md5_key(content, ".a")
    m1.store(key, write(tmp_path, content))  # loose too: the archive must still stop the removal
    assert m1.present(key) is True
    other = md5_key(b"other", ".o")
    assert m1.present(other) is False  # "no archive" is remembered from here
    mirror.put_file(pack(tmp_path, key, content), ARCHIVE_REL)
    with pytest.raises(WriteError, match=f"{key} is also packed in {DS}/archives/archive.7z"):
        m1.remove(key)
    assert mirror.read_bytes(obj_rel(key)) == content, "nothing was removed"


def test_a_key_absent_before_is_not_found_by_retrieve_and_nothing_is_written(
        m1: RememberingObjects, tmp_path: Path) -> None:
    key = md5_key(b"nowhere", ".n")
    assert m1.present(key) is False
    with pytest.raises(NotFoundError, match=f"{key} is not in dataset {PLAIN_DSID}"):
        fetch(m1, key, tmp_path)
    assert (tmp_path / "annex-tmp" / key.text).read_bytes() == b""


# -- keys present just saw missing ----------------------------------------------------------------------
def test_store_after_present_found_the_key_missing_does_not_ask_again(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = os.urandom(100)
    key = md5_key(content, ".s")
    assert m1.present(key) is False
    heads = count_calls(monkeypatch, mirror, "info")
    puts = count_calls(monkeypatch, mirror, "put_file")
    m1.store(key, write(tmp_path, content))
    assert heads == [] and len(puts) == 1
    assert mirror.read_bytes(obj_rel(key)) == content


def test_store_without_a_present_before_asks_and_skips_a_right_sized_copy(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = os.urandom(100)
    key = md5_key(content, ".s")
    m1.store(key, write(tmp_path, content))
    heads = count_calls(monkeypatch, mirror, "info")
    puts = count_calls(monkeypatch, mirror, "put_file")
    m1.store(key, write(tmp_path, content))
    assert [args[0] for args in heads] == [obj_rel(key)] and puts == []


def test_the_missing_key_memo_serves_one_store_only(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = os.urandom(100)
    key = md5_key(content, ".s")
    assert m1.present(key) is False
    m1.store(key, write(tmp_path, content))
    puts = count_calls(monkeypatch, mirror, "put_file")
    m1.store(key, write(tmp_path, content))
    assert puts == [], "the second store asked, and found the copy"


def test_present_always_asks_for_the_key_itself(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo of missing keys is for `store` only: another clone may store the key meanwhile."""
    content = os.urandom(100)
    key = md5_key(content, ".s")
    assert m1.present(key) is False
    mirror.put_file(write(tmp_path, content), obj_rel(key))
    assert m1.present(key) is True


def test_a_refused_store_after_present_writes_nothing(
        m1: RememberingObjects, mirror: Backend, tmp_path: Path) -> None:
    key = md5_key(os.urandom(100), ".s")
    assert m1.present(key) is False
    with pytest.raises(WriteError, match=f"refusing to store {key}: local file .* has 3 bytes"):
        m1.store(key, write(tmp_path, b"bad"))
    assert mirror.info(obj_rel(key)) is None


def test_the_missing_key_memo_is_bounded(
        m1: RememberingObjects, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remembered, "ABSENT_MEMO_MAX", 3)
    keys = [md5_key(os.urandom(10), f".{i}") for i in range(4)]
    for key in keys:
        assert m1.present(key) is False
    assert m1._absent == {keys[3].text}

"""Replicas by name, and "try each replica in order" with one error naming every replica tried."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from conftest import PLAIN_DSID

from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.dataset_objects import DatasetObjects
from dss_remote.replication.repair import copy_archive, copy_key, source_for
from dss_remote.replication.replica import Failures, Replica, first_success, named
from dss_remote.replication.store_replicas import StoreReplicas, open_replicas
from ria_store.errors import DssError, NotFoundError, UnavailableError
from ria_store.keys import parse_key
from ria_store.layout import ARCHIVE_PATH, dataset_relpath, object_relpath

DATA = os.urandom(3000)
KEY = parse_key(f"MD5E-s{len(DATA)}--{hashlib.md5(DATA).hexdigest()}.dat")
REL = f"{dataset_relpath(PLAIN_DSID)}/{object_relpath(KEY, '2')}"


@pytest.fixture
def sr(store: Path, dsdir: Path, tmp_path: Path) -> StoreReplicas:
    for name in ("m1", "m2"):
        add_mirror(store, Mirror(url=f"file://{tmp_path / name}", name=name))
    return open_replicas(f"ria+file://{store}", read_config(store))


# -- names ------------------------------------------------------------------------------------------
def test_dataset_objects_name_is_the_replica_name_and_url_its_url(sr: StoreReplicas) -> None:
    mirror = sr.named("m1")
    objects = DatasetObjects(mirror, PLAIN_DSID, name="m1")
    assert (objects.name, objects.url) == ("m1", mirror.url)
    assert mirror.url.startswith("file://") and mirror.url != "m1"


def test_dataset_objects_without_a_name_is_called_by_its_url(sr: StoreReplicas) -> None:
    objects = DatasetObjects(sr.named("m1"), PLAIN_DSID)
    assert objects.name == objects.url == sr.named("m1").url


def test_every_replica_of_a_dataset_is_found_by_its_name(sr: StoreReplicas) -> None:
    rs = sr.for_dataset(PLAIN_DSID)
    assert [rs.named(n).name for n in ("store", "m1", "m2")] == ["store", "m1", "m2"]
    assert rs.named("m2").url == sr.named("m2").url


def test_an_unknown_replica_name_names_the_known_ones(sr: StoreReplicas) -> None:
    with pytest.raises(DssError, match=r"^no replica named 'm3' \(this store has: store, m1, m2\)$"):
        sr.for_dataset(PLAIN_DSID).named("m3")
    with pytest.raises(DssError, match=r"^no replica named 'm3' \(this store has: store, m1, m2\)$"):
        sr.named("m3")


def test_named_takes_the_first_of_equal_names() -> None:
    assert named([("a", 1), ("b", 2), ("a", 3)], "a") == 1


# -- one line of failures -----------------------------------------------------------------------------
def test_failures_line_names_each_replica_unless_there_is_one() -> None:
    failures = Failures()
    failures.add("m1", NotFoundError("gone\nsecond line"))
    failures.add("m2", UnavailableError("down"))
    assert failures.line() == "[m1] gone second line; [m2] down"
    assert failures.line(named=False) == "gone second line; down"
    assert not failures.all_absent()


def test_no_failures_count_as_absent_and_make_an_empty_line() -> None:
    assert Failures().all_absent() and Failures().line() == "" and not Failures()


def test_first_success_skips_failing_replicas_in_order(sr: StoreReplicas) -> None:
    tried: list[str] = []

    def attempt(r: Replica) -> str:
        tried.append(r.name)
        if r.name != "m2":
            raise UnavailableError(f"{r.name} is down")
        return "ok"

    def error(failures: Failures) -> DssError:
        raise AssertionError(f"not expected: {failures.line()}")

    chosen, result = first_success(sr.for_dataset(PLAIN_DSID).replicas, attempt, error, "test")
    assert (chosen.name, result, tried) == ("m2", "ok", ["store", "m1", "m2"])


def test_first_success_raises_one_error_naming_every_replica(sr: StoreReplicas) -> None:
    def attempt(r: Replica) -> None:
        raise UnavailableError(f"{r.name} is down")

    with pytest.raises(DssError, match=r"^all failed: \[store\] store is down; \[m1\] m1 is down; "
                                       r"\[m2\] m2 is down$"):
        first_success(sr.for_dataset(PLAIN_DSID).replicas, attempt,
                      lambda f: DssError(f"all failed: {f.line()}"), "test")


# -- repair's use of them -----------------------------------------------------------------------------------
def test_source_for_a_key_on_no_other_replica_is_not_found(sr: StoreReplicas, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    with pytest.raises(NotFoundError) as caught:
        source_for(sr, PLAIN_DSID, KEY, "store", str(dst))
    message = str(caught.value)
    assert message.startswith(f"{KEY} is on no other replica ([m1] ")
    assert "; [m2] " in message and "[store]" not in message


def test_source_for_takes_the_first_other_replica_with_a_good_copy(
        sr: StoreReplicas, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(DATA)
    sr.for_dataset(PLAIN_DSID).named("m2").store(KEY, src)
    dst = tmp_path / "dst"
    assert source_for(sr, PLAIN_DSID, KEY, "store", str(dst)) == "m2"
    assert dst.read_bytes() == DATA


def test_copy_key_to_an_unknown_replica_names_the_known_ones_and_writes_nothing(
        sr: StoreReplicas, store: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(DATA)
    sr.for_dataset(PLAIN_DSID).named("store").store(KEY, src)
    with pytest.raises(DssError, match=r"^no replica named 'm3' \(this store has: store, m1, m2\)$"):
        copy_key(sr, PLAIN_DSID, KEY, "m3")
    assert not (tmp_path / "m1" / REL).exists() and not (tmp_path / "m2" / REL).exists()


def test_copy_archive_without_any_archive_names_every_replica_tried(
        sr: StoreReplicas, store: Path) -> None:
    rel = f"{dataset_relpath(PLAIN_DSID)}/{ARCHIVE_PATH}"
    with pytest.raises(DssError) as caught:
        copy_archive(sr, PLAIN_DSID, "m1")
    message = str(caught.value)
    assert message.startswith(f"no good copy of {rel} on any other replica: [store] ")
    assert "; [m2] " in message and "[m1]" not in message
    assert not (store / rel).exists()


def test_a_read_that_falls_back_logs_where_from_and_why(
        sr: StoreReplicas, store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "src"
    src.write_bytes(DATA)
    rs = sr.for_dataset(PLAIN_DSID)
    rs.named("m1").store(KEY, src)
    caplog.set_level(logging.INFO, logger="dss_remote")
    dst = tmp_path / "dst"
    rs.retrieve(KEY, dst)
    assert dst.read_bytes() == DATA and not (store / REL).exists()
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert line.startswith(f"{KEY}: read from m1 after [store] ")

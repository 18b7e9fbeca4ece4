"""The dss remote driven line by line through annexremote with an in-memory git-annex double."""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
from pathlib import Path

import pytest
from annex_double import AnnexDouble
from conftest import PLAIN_DSID, run

from ria_store import store as ria
from ria_store.layout import object_relpath

DSID = PLAIN_DSID  # the id of the `dsdir` fixture
DATA = os.urandom(3 * 1024 * 1024 + 17)
KEY = f"SHA256E-s{len(DATA)}--{hashlib.sha256(DATA).hexdigest()}.bin"


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    p = tmp_path / "payload"
    p.write_bytes(DATA)
    return p


def test_initremote_records_archive_id_from_uuid_when_not_a_datalad_dataset(store: Path) -> None:
    annex = AnnexDouble({"url": f"ria+file://{store}"})
    assert annex.converse(["INITREMOTE"]) == ["INITREMOTE-SUCCESS"]
    assert annex.config["archive-id"] == annex.uuid


def test_initremote_without_url_fails_with_the_fix() -> None:
    (reply,) = AnnexDouble({}).converse(["INITREMOTE"])
    assert reply.startswith("INITREMOTE-FAILURE url= is required")
    assert "externaltype=dss" in reply


def test_initremote_refuses_transport_it_cannot_use() -> None:
    (reply,) = AnnexDouble({"url": "ria+ssh://host/store"}).converse(["INITREMOTE"])
    assert reply.startswith("INITREMOTE-FAILURE url ria+ssh://host/store:")
    assert "ria+file" in reply


def test_store_checkpresent_retrieve_remove_round_trip(annex: AnnexDouble, dsdir: Path,
                                                       payload: Path, tmp_path: Path) -> None:
    back = tmp_path / "back"
    replies = annex.converse([
        "PREPARE", f"CHECKPRESENT {KEY}", f"TRANSFER STORE {KEY} {payload}",
        f"CHECKPRESENT {KEY}", f"TRANSFER RETRIEVE {KEY} {back}",
    ])
    assert replies == ["PREPARE-SUCCESS", f"CHECKPRESENT-FAILURE {KEY}",
                       f"TRANSFER-SUCCESS STORE {KEY}", f"CHECKPRESENT-SUCCESS {KEY}",
                       f"TRANSFER-SUCCESS RETRIEVE {KEY}"]
    obj = dsdir / object_relpath(KEY, "2")
    assert obj.read_bytes() == DATA == back.read_bytes()
    assert not stat.S_IMODE(obj.stat().st_mode) & 0o222, "stored objects are read-only"
    # PROGRESS in both directions, often (more than every 1 % of a 3 MiB file is not needed,
    # but at least once per MiB), ending at the size
    prog = annex.progress()
    assert prog.count(len(DATA)) == 2 and len(prog) >= 8
    assert annex.converse(["PREPARE", f"REMOVE {KEY}", f"CHECKPRESENT {KEY}", f"REMOVE {KEY}"]) == [
        "PREPARE-SUCCESS", f"REMOVE-SUCCESS {KEY}", f"CHECKPRESENT-FAILURE {KEY}",
        f"REMOVE-SUCCESS {KEY}"]
    assert not obj.parent.exists() and not obj.parent.parent.exists(), "empty dirs pruned"
    assert (dsdir / "annex" / "objects").is_dir()


def test_store_of_present_key_is_success_without_rewrite(annex: AnnexDouble, dsdir: Path,
                                                         payload: Path) -> None:
    annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"])
    obj = dsdir / object_relpath(KEY, "2")
    inode = obj.stat().st_ino
    replies = annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"])
    assert replies[-1] == f"TRANSFER-SUCCESS STORE {KEY}"
    assert obj.stat().st_ino == inode


def test_wrong_size_object_is_absent_and_gets_replaced(annex: AnnexDouble, dsdir: Path,
                                                      payload: Path, tmp_path: Path) -> None:
    obj = dsdir / object_relpath(KEY, "2")
    obj.parent.mkdir(parents=True)
    obj.write_bytes(DATA[:100])  # a truncated copy someone left
    replies = annex.converse(["PREPARE", f"CHECKPRESENT {KEY}", f"TRANSFER RETRIEVE {KEY} {tmp_path / 'x'}",
                              f"TRANSFER STORE {KEY} {payload}", f"CHECKPRESENT {KEY}"])
    assert replies[1] == f"CHECKPRESENT-FAILURE {KEY}"
    assert replies[2].startswith(f"TRANSFER-FAILURE RETRIEVE {KEY} ")
    assert "corrupt object" in replies[2] and "says" in replies[2]
    assert replies[3:] == [f"TRANSFER-SUCCESS STORE {KEY}", f"CHECKPRESENT-SUCCESS {KEY}"]
    assert obj.read_bytes() == DATA


def test_store_refuses_local_file_that_does_not_match_key(annex: AnnexDouble, dsdir: Path,
                                                         tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"x")
    reply = annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {short}"])[-1]
    assert reply.startswith(f"TRANSFER-FAILURE STORE {KEY} refusing to store")
    assert not (dsdir / object_relpath(KEY, "2")).exists()


def test_cheap_queries(annex: AnnexDouble, dsdir: Path, payload: Path) -> None:
    replies = annex.converse(["GETCOST", "GETAVAILABILITY", "LISTCONFIGS", "PREPARE",
                              f"TRANSFER STORE {KEY} {payload}", f"WHEREIS {KEY}",
                              "WHEREIS MD5E-s1--0cc175b9c0f1b6a831c399e269772661", "GETINFO",
                              "NO-SUCH-REQUEST"])
    assert replies[:2] == ["COST 100", "AVAILABILITY GLOBAL"]
    assert [r.split()[1] for r in replies if r.startswith("CONFIG ")] == ["archive-id", "url"]
    assert f"WHEREIS-SUCCESS {dsdir / object_relpath(KEY, '2')}" in replies
    assert "WHEREIS-FAILURE" in replies
    info = {field.removeprefix("INFOFIELD "): value.removeprefix("INFOVALUE ")
            for field, value in itertools.pairwise(replies) if field.startswith("INFOFIELD ")}
    assert info["dataset id"] == DSID
    assert info["object tree"] == "v2 (hashdirmixed)"
    assert info["archive"] == "none"
    assert replies[-1] == "UNSUPPORTED-REQUEST"


def test_object_tree_version_1_uses_lowercase_hash(store: Path, payload: Path) -> None:
    dsdir = ria.create_dataset(ria.open_store(store), DSID, object_tree_version="1")
    annex = AnnexDouble({"url": f"ria+file://{store}", "archive-id": DSID})
    annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"])
    assert (dsdir / object_relpath(KEY, "1")).read_bytes() == DATA


def test_git_config_dss_url_overrides_annex_url(store: Path, dsdir: Path, payload: Path,
                                               tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run("git", "init", "-q", repo)
    run("git", "config", "remote.store-storage.dss-url", f"ria+file://{store}", cwd=repo)
    annex = AnnexDouble({"url": "ria+file:///nonexistent/old-mount", "archive-id": DSID},
                        git_dir=str(repo / ".git"))
    replies = annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"])
    assert replies[-1] == f"TRANSFER-SUCCESS STORE {KEY}"
    assert (dsdir / object_relpath(KEY, "2")).exists()


def test_ora_url_over_http_is_read_only_but_a_mounted_store_wins(store: Path, dsdir: Path, payload: Path,
                                                                 tmp_path: Path) -> None:
    """`datalad clone ria+http://…` sets ora-url to the web copy. Where the remote's own store is
    mounted, dss keeps using it (writes work); where it is not, it reads the web copy read-only."""
    from file_servers import serve_http

    repo = tmp_path / "repo"
    run("git", "init", "-q", repo)
    with serve_http(store) as server:
        run("git", "config", "remote.store-storage.ora-url", f"ria+{server.url}", cwd=repo)
        mounted = AnnexDouble({"url": f"ria+file://{store}", "archive-id": DSID}, git_dir=str(repo / ".git"))
        assert mounted.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"])[-1] == \
            f"TRANSFER-SUCCESS STORE {KEY}"
        elsewhere = AnnexDouble({"url": "ria+file:///nonexistent/store", "archive-id": DSID},
                                git_dir=str(repo / ".git"))
        got = tmp_path / "got"
        replies = elsewhere.converse(["PREPARE", f"TRANSFER RETRIEVE {KEY} {got}",
                                      f"TRANSFER STORE {KEY} {payload}"])
        assert replies[-2] == f"TRANSFER-SUCCESS RETRIEVE {KEY}"
        assert got.read_bytes() == DATA
        assert replies[-1].startswith(f"TRANSFER-FAILURE STORE {KEY} cannot store")
        assert "reaches the store read-only" in replies[-1]

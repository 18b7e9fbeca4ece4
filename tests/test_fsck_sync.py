"""`dss fsck`, `dss repair` and `dss sync` on a store with file:// mirrors (cloud ones: test_e2e_mirrors)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import PLAIN_DSID

from dss_remote.cli import main
from dss_remote.mirrors import Mirror
from dss_remote.store_admin import add_mirror
from dss_remote.store_config import read_config
from dss_remote.store_replicas import open_replicas
from ria_store.keys import parse_key
from ria_store.layout import dataset_relpath, object_relpath

DS = dataset_relpath(PLAIN_DSID)


def _key(data: bytes) -> str:
    return f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin"


BLOBS = [os.urandom(n) for n in (10, 5000, 70_000)]
KEYS = [_key(b) for b in BLOBS]


def rel(key: str) -> str:
    return f"{DS}/{object_relpath(key, '2')}"


@pytest.fixture
def mirrored(store: Path, dsdir: Path, tmp_path: Path) -> Path:
    """A store with one file:// mirror, holding three keys on both."""
    mirror = tmp_path / "mirror"
    add_mirror(store, Mirror(url=f"file://{mirror}", name="backup"))
    rs = open_replicas(f"ria+file://{store}", read_config(store)).for_dataset(PLAIN_DSID)
    for data, key in zip(BLOBS, KEYS, strict=True):
        src = tmp_path / "src"
        src.write_bytes(data)
        rs.store(parse_key(key), src)
    return mirror


def fsck_json(store: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc = main(["fsck", str(store), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_fsck_clean_store_exits_0(store: Path, mirrored: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = fsck_json(store, capsys=capsys)
    assert rc == 0 and doc["findings"] == [] and doc["replicas"] == ["store", "backup"]


def test_fsck_reports_missing_extra_and_corrupt(store: Path, mirrored: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (mirrored / rel(KEYS[0])).unlink()
    stray = store / DS / "annex" / "objects" / "zz" / "yy" / "junk" / "junk"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"?")
    bad = store / rel(KEYS[1])
    bad.chmod(0o644)
    bad.write_bytes(b"!" + BLOBS[1][1:])  # same size: only --deep sees it
    rc, doc = fsck_json(store, capsys=capsys)
    kinds = sorted((f["kind"], f["replica"], f["key"]) for f in doc["findings"])
    assert rc == 1
    assert kinds == [("extra", "store", None), ("missing", "backup", KEYS[0])]
    rc, doc = fsck_json(store, "--deep", capsys=capsys)
    kinds = sorted((f["kind"], f["replica"], f["key"]) for f in doc["findings"])
    assert ("corrupt", "store", KEYS[1]) in kinds


def test_repair_fixes_missing_and_corrupt_and_leaves_extra(store: Path, mirrored: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (mirrored / rel(KEYS[0])).unlink()
    bad = store / rel(KEYS[1])
    bad.chmod(0o644)
    bad.write_bytes(b"!" + BLOBS[1][1:])
    assert main(["repair", str(store), "--deep"]) == 0
    out = capsys.readouterr().out
    assert f"backup: {KEYS[0]} (missing) copied from store" in out
    assert f"store: {KEYS[1]} (corrupt) copied from backup" in out
    assert (mirrored / rel(KEYS[0])).read_bytes() == BLOBS[0]
    assert bad.read_bytes() == BLOBS[1]
    assert fsck_json(store, "--deep", capsys=capsys)[1]["findings"] == []


def test_sync_copies_missing_keys_and_the_bare_repo_files(store: Path, mirrored: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (mirrored / rel(KEYS[2])).unlink()
    (store / DS / "HEAD").write_text("ref: refs/heads/main\n")
    (store / DS / "hooks").mkdir()
    (store / DS / "hooks" / "post-update").write_text("#!/bin/sh\n")
    (store / DS / "config").write_text('[core]\n\tbare = true\n[remote "x"]\n\turl = https://user:pw@h/\n'
                                       '[datalad "ora-remote"]\n\tuuid = u-1\n')
    assert main(["sync", str(store)]) == 0
    assert (mirrored / rel(KEYS[2])).read_bytes() == BLOBS[2]
    assert (mirrored / DS / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (mirrored / DS / "hooks").exists(), "hooks never leave the store"
    assert (mirrored / DS / "config").read_text() == (
        '[core]\n\tbare = true\n[datalad "ora-remote"]\n\tuuid = u-1\n'), "only what a clone needs"
    capsys.readouterr()
    assert main(["sync", str(store)]) == 0
    assert capsys.readouterr().out == "", "a second run has nothing to do"


def test_fsck_unknown_replica_is_an_error(store: Path, mirrored: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fsck", str(store), "--replica", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dss: error: no replica named 'nope'") and "backup" in err


def test_mirror_list_add_remove(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mirror", "add", str(store), f"file://{tmp_path}/m", "--name", "m"]) == 0
    assert main(["mirror", "list", str(store), "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{"):])
    assert doc == {"write_quorum": "all", "mirrors": [{"name": "m", "url": f"file://{tmp_path}/m"}]}
    assert main(["mirror", "quorum", str(store), "1"]) == 0
    assert json.loads((store / "dss/config.json").read_text())["write_quorum"] == 1
    assert main(["mirror", "remove", str(store), "m"]) == 0
    assert json.loads((store / "dss/config.json").read_text()) == {"mirrors": [], "version": 1,
                                                                   "write_quorum": 1}

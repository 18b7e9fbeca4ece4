"""Leftovers of interrupted writes on a store with an S3 mirror: `dss fsck` reports each with its
age, `dss sync` and `dss repair` remove those older than the safe age and leave fresher ones alone.
(The kill -9 loop that makes them for real: test_kill_leftovers.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from cloud_servers import MirrorFixture, s3_admin_client
from conftest import PLAIN_DSID

from dss_remote.admin.store import add_mirror
from dss_remote.cli import main
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.store_replicas import open_replicas
from ria_store.atomic import TMP_PREFIX
from ria_store.keys import parse_key
from ria_store.layout import dataset_relpath, object_relpath

DS = dataset_relpath(PLAIN_DSID)
HOUR = 3600
DATA = b"a key's content\n"
KEY = f"MD5E-s{len(DATA)}--{hashlib.md5(DATA).hexdigest()}.txt"


def key_dir(label: str) -> str:
    """The directory of the key of content `label` in the dataset's object tree."""
    key = f"MD5E-s{len(label)}--{hashlib.md5(label.encode()).hexdigest()}.bin"
    return f"{DS}/{object_relpath(key, '2')}".rpartition("/")[0]


def age(path: Path, hours: float) -> None:
    """Make `path` look last written `hours` ago."""
    then = time.time() - hours * HOUR
    os.utime(path, (then, then), follow_symlinks=False)


@pytest.fixture
def mirrored(store: Path, dsdir: Path, tmp_path: Path, s3_mirror: MirrorFixture) -> MirrorFixture:
    """A store with an S3 mirror, both holding one key."""
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    src = tmp_path / "src"
    src.write_bytes(DATA)
    with open_replicas(f"ria+file://{store}", read_config(store)) as sr:
        sr.for_dataset(PLAIN_DSID).store(parse_key(KEY), src)
    return s3_mirror


@pytest.fixture
def leftovers(store: Path, mirrored: MirrorFixture) -> dict[str, str]:
    """One of each leftover: {label: path}: an old and a fresh temp file, an old empty key
    directory (and the hash directories above it) in the store, an unfinished multipart upload
    on S3 (moto says every upload began in 2010)."""
    made: dict[str, str] = {}
    for label, hours in (("old temp", 7), ("fresh temp", 0.1)):
        directory = store / key_dir(label)
        directory.mkdir(parents=True)
        temp = directory / f"{TMP_PREFIX}{label.replace(' ', '-')}"
        temp.write_bytes(b"half of ")
        age(temp, hours)
        made[label] = str(temp.relative_to(store))
    empty = store / key_dir("empty")
    empty.mkdir(parents=True)
    for d in (empty, empty.parent, empty.parent.parent):
        age(d, 8)
    made["empty dir"] = str(empty.parent.parent.relative_to(store))  # the topmost empty one
    name = f"lab/store/{key_dir('upload')}/upload.bin"
    client = s3_admin_client(mirrored.endpoint_url)
    client.create_multipart_upload(Bucket=mirrored.bucket, Key=name)
    made["upload"] = name.removeprefix("lab/store/")
    return made


def fsck_json(store: Path, *extra: str,
              capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    rc = main(["fsck", str(store), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)["findings"]


def kinds(findings: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((f["kind"], f["replica"], f["path"]) for f in findings)


def uploads(mirror: MirrorFixture) -> list[str]:
    answer = s3_admin_client(mirror.endpoint_url).list_multipart_uploads(Bucket=mirror.bucket)
    return [u["Key"] for u in answer.get("Uploads", [])]


def test_fsck_reports_each_leftover_with_its_age(store: Path, leftovers: dict[str, str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc, findings = fsck_json(store, capsys=capsys)
    assert rc == 1
    assert kinds(findings) == sorted([
        ("leftover", "store", leftovers["old temp"]), ("leftover", "store", leftovers["empty dir"]),
        ("leftover", "s3", leftovers["upload"]), ("in-progress", "store", leftovers["fresh temp"])])
    detail = {f["path"]: f["detail"] for f in findings}
    assert detail[leftovers["old temp"]] == ("temp file of an interrupted write, last written 7.0 h ago; "
                                            "`dss sync` or `dss repair` removes it")
    assert detail[leftovers["empty dir"]] == ("empty directory of an interrupted write, last written "
                                             "8.0 h ago; `dss sync` or `dss repair` removes it")
    assert detail[leftovers["upload"]].startswith("unfinished upload (its parts are billed until it is "
                                                  "aborted), started ")
    assert re.fullmatch(r"temp file of an interrupted write, last written \d+ min ago: maybe a write in "
                        r"progress, left alone \(removed once older than 6\.0 h\)",
                        detail[leftovers["fresh temp"]]), detail
    main(["fsck", str(store)])
    out, err = capsys.readouterr()
    assert f"leftover\tstore\t{PLAIN_DSID}\t{leftovers['old temp']}\ttemp file" in out
    assert err.splitlines()[-1] == "fsck: 1 dataset(s), 3 problem(s), 0 unverified, 1 maybe in progress"


def test_sync_removes_old_leftovers_and_leaves_fresh_ones(store: Path, leftovers: dict[str, str],
                                                          mirrored: MirrorFixture,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", str(store)]) == 0
    out, err = capsys.readouterr()
    removed = [line for line in out.splitlines() if line.startswith("removed leftover ")]
    assert len(removed) == 3, out
    assert f"removed leftover store: {leftovers['old temp']} (temp file, 7.0 h old)" in removed
    assert f"removed leftover store: {leftovers['empty dir']} (empty directory, 8.0 h old)" in removed
    assert [line for line in removed if line.startswith(
        f"removed leftover s3: {leftovers['upload']} (unfinished upload, ")], out
    assert "3 leftover(s) removed, 1 fresh leftover(s) left alone, 0 failed" in err
    assert uploads(mirrored) == []
    assert not (store / leftovers["old temp"]).parent.exists(), "its key directory went with it"
    assert not (store / leftovers["empty dir"]).exists()
    assert (store / leftovers["fresh temp"]).read_bytes() == b"half of "
    assert (store / f"{DS}/{object_relpath(KEY, '2')}").read_bytes() == DATA
    rc, findings = fsck_json(store, capsys=capsys)
    assert (rc, kinds(findings)) == (0, [("in-progress", "store", leftovers["fresh temp"])])


def test_sync_with_leftover_age_0_removes_every_leftover(store: Path, leftovers: dict[str, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", str(store), "--leftover-age", "0"]) == 0
    assert "4 leftover(s) removed, 0 failed" in capsys.readouterr().err
    assert fsck_json(store, "--deep", capsys=capsys) == (0, [])
    assert [p for p in (store / DS).rglob(f"{TMP_PREFIX}*")] == []


def test_repair_removes_old_leftovers_too(store: Path, leftovers: dict[str, str], mirrored: MirrorFixture,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repair", str(store)]) == 0
    out, err = capsys.readouterr()
    assert f"removed leftover store: {leftovers['old temp']} (temp file, 7.0 h old)" in out
    assert err.splitlines()[-1] == "repair: 0 fixed, 3 leftover(s) removed, 0 failed"
    assert uploads(mirrored) == []
    assert (store / leftovers["fresh temp"]).exists()


def test_the_store_config_sets_the_safe_age(store: Path, leftovers: dict[str, str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = store / "dss" / "config.json"
    doc = json.loads(config.read_text())
    config.write_text(json.dumps({**doc, "leftover_age_hours": 7.5}))
    _, findings = fsck_json(store, capsys=capsys)
    assert ("in-progress", "store", leftovers["old temp"]) in kinds(findings), "7 h is fresh now"
    assert ("leftover", "store", leftovers["empty dir"]) in kinds(findings)
    _, findings = fsck_json(store, "--leftover-age", "0.05", capsys=capsys)  # the option wins
    assert ("leftover", "store", leftovers["fresh temp"]) in kinds(findings)
    assert read_config(store).leftover_age_hours == 7.5


def test_a_negative_leftover_age_is_a_usage_error(store: Path, leftovers: dict[str, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["sync", str(store), "--leftover-age", "-1"])
    assert e.value.code == 2
    assert ("argument --leftover-age: '-1' is not a number of hours, 0 or more (e.g. 6 or 0.5)"
            in capsys.readouterr().err)
    assert (store / leftovers["old temp"]).exists(), "nothing removed"


def test_a_bad_leftover_age_hours_in_the_config_is_refused(store: Path, leftovers: dict[str, str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = store / "dss" / "config.json"
    doc = json.loads(config.read_text())
    config.write_text(json.dumps({**doc, "leftover_age_hours": "six"}))
    assert main(["sync", str(store)]) == 1
    assert capsys.readouterr().err == (
        f"dss: error: {config}: leftover_age_hours 'six' must be a number of hours, 0 or more "
        "(default 6)\n")
    assert (store / leftovers["old temp"]).exists(), "nothing removed"

"""The pure DSS mapping and the checksums derived for now: file uuids, indexed, rows left out."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from dss_remote.server import dss_mapping
from dss_remote.server.file_checksums import checksums_for

DS = "4dc8313d-2567-4475-a4a0-17cdebad9c1d"


def test_a_file_uuid_is_stable_per_dataset_and_path() -> None:
    fuuid = dss_mapping.file_uuid(DS, "dir/a.txt")
    assert fuuid == str(uuid.uuid5(dss_mapping.FILE_NAMESPACE, f"{DS}/dir/a.txt"))
    # pinned: clients keep file uuids, so the namespace must never change
    assert fuuid == "c5926d18-5db7-540b-bcbb-30a2d8251c63"
    assert fuuid != dss_mapping.file_uuid(DS, "dir/b.txt")
    assert fuuid != dss_mapping.file_uuid("5dc8313d-2567-4475-a4a0-17cdebad9c1d", "dir/a.txt")


@pytest.mark.parametrize(("path", "size", "indexed"), [
    ("a.json", 10, True), ("deep/A.JSON", 1 << 20, True), ("a.json", (1 << 20) + 1, False),
    ("a.jsonl", 10, False), ("json", 10, False), ("a.json", None, False)])
def test_indexed_is_small_json(path: str, size: int | None, indexed: bool) -> None:
    assert dss_mapping.is_indexed(path, size) is indexed


@pytest.mark.parametrize(("row", "served"), [
    ({"type": "annex", "key": "MD5E-s1--x"}, True), ({"type": "git", "git_blob": "ab"}, True),
    ({"type": "subdataset", "commit": "ab"}, False), ({"type": "symlink", "git_blob": "ab"}, False)])
def test_subdatasets_and_plain_symlinks_are_left_out(row: dict[str, str], served: bool) -> None:
    assert dss_mapping.is_served(row) is served


def test_a_file_version_doc_has_the_dss_keys() -> None:
    doc = dss_mapping.file_version_doc("a.json", "u", "v", size=2, content_type="application/json",
                                       checksums={"sha256": "s"})
    assert doc == {"name": "a.json", "uuid": "u", "version": "v", "size": 2,
                   "content-type": "application/json", "indexed": True, "creator_uid": 0,
                   "sha256": "s", "sha1": "", "crc32c": "", "s3_etag": ""}


def test_checksums_come_from_the_key_where_it_names_them(tmp_path: Path) -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    md5 = hashlib.md5(b"x").hexdigest()
    sha1 = hashlib.sha1(b"x").hexdigest()
    assert checksums_for(tmp_path, DS, {"type": "annex", "key": f"SHA256E-s1--{sha}.txt"}) == {
        "sha256": sha, "sha1": "", "crc32c": "", "s3_etag": ""}
    assert checksums_for(tmp_path, DS, {"type": "annex", "key": f"MD5E-s1--{md5}.txt"}) == {
        "sha256": "", "sha1": "", "crc32c": "", "s3_etag": md5}
    assert checksums_for(tmp_path, DS, {"type": "annex", "key": f"SHA1-s1--{sha1}"})["sha1"] == sha1
    # past one S3 part an ETag is not the MD5 of the bytes
    big = checksums_for(tmp_path, DS, {"type": "annex", "key": f"MD5E-s{100 << 20}--{md5}"})
    assert big["s3_etag"] == ""
    assert checksums_for(tmp_path, DS, {"type": "annex", "key": "URL--http&c%%example.org"}) == {
        "sha256": "", "sha1": "", "crc32c": "", "s3_etag": ""}


def test_a_missing_git_blob_leaves_the_checksums_empty(tmp_path: Path) -> None:
    row = {"type": "git", "git_blob": "0" * 40, "size": 3}
    assert checksums_for(tmp_path, DS, row) == {"sha256": "", "sha1": "", "crc32c": "", "s3_etag": ""}

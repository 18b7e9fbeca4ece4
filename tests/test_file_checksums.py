"""The API's checksums of an annexed file: the record kept beside the key when there is one, else
what the key names (and a damaged record never breaks the answer)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dss_remote.backends.checksums import DssDigests
from dss_remote.replication import key_checksums
from dss_remote.server.file_checksums import checksums_for

DS = "8a2b3c4d-0000-4000-8000-0000000000c5"
DATA = b"checksums of a file the API serves\n"
SHA = hashlib.sha256(DATA).hexdigest()
KEY = f"SHA256E-s{len(DATA)}--{SHA}.txt"
ROW = {"type": "annex", "key": KEY, "size": len(DATA), "path": "a.txt"}


def _expected() -> dict[str, str]:
    d = DssDigests(len(DATA))
    d.update(DATA)
    return d.hexdigests()


def test_a_recorded_key_answers_all_four(tmp_path: Path) -> None:
    want = _expected()
    key_checksums.record(tmp_path, DS, KEY, key_checksums.KeyChecksums.from_hex(len(DATA), want))
    assert checksums_for(tmp_path, DS, ROW) == {n: want[n] for n in ("sha256", "sha1", "crc32c", "s3_etag")}


def test_without_a_record_the_key_names_sha256_only(tmp_path: Path) -> None:
    assert checksums_for(tmp_path, DS, ROW) == {"sha256": SHA, "sha1": "", "crc32c": "", "s3_etag": ""}


def test_a_damaged_record_falls_back_to_the_key_and_is_left_alone(tmp_path: Path) -> None:
    path = key_checksums.record_path(tmp_path, DS, KEY)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert checksums_for(tmp_path, DS, ROW)["sha256"] == SHA
    assert path.read_text() == "{not json"

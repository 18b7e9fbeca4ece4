"""The four DSS checksums: computed in one pass (known vectors, the S3 ETag rule), kept as immutable
records in the store (round trip, corrupt records, a key whose checksum the content contradicts),
and recorded by the special remote's writes without ever failing one."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from pathlib import Path

import google_crc32c
import pytest
from conftest import PLAIN_DSID

from dss_remote.backends.checksums import DssDigests, S3Etag, s3_etag_part_size
from dss_remote.config import paths
from dss_remote.replication import key_checksums
from dss_remote.replication.key_checksums import KeyChecksums, compute, read, record, record_path
from dss_remote.replication.store_replicas import open_store_replicas
from ria_store.errors import CorruptError
from ria_store.keys import parse_key

MiB = 1 << 20


def sums_of(data: bytes, part: int = 64 * MiB) -> dict[str, str]:
    return DssDigests(len(data), part=part).read_from(io.BytesIO(data)).hexdigests()


def independent(data: bytes) -> KeyChecksums:
    """The checksums by hashlib and google-crc32c directly (one part: the ETag is the MD5)."""
    return KeyChecksums(len(data), hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                        f"{google_crc32c.value(data):08x}", hashlib.md5(data).hexdigest())


def md5e(data: bytes, ext: str = ".bin") -> str:
    return f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}{ext}"


def sha256e(data: bytes, ext: str = ".bin") -> str:
    return f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}{ext}"


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- computation ---------------------------------------------------------------------------
def test_known_vectors_of_the_check_string() -> None:
    # "123456789": the CRC-32C check value of RFC 3720 (iSCSI) B.4 and the digests of FIPS/RFC tools
    assert sums_of(b"123456789") == {
        "sha256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
        "sha1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
        "crc32c": "e3069283",
        "s3_etag": "25f9e794323b453885f5181f1b624d0b",
    }


def test_known_vectors_of_the_empty_file() -> None:
    assert sums_of(b"") == {
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "crc32c": "00000000",
        "s3_etag": "d41d8cd98f00b204e9800998ecf8427e",
    }


def test_crc32c_keeps_its_leading_zeros() -> None:
    data = next(d for i in range(10_000) if google_crc32c.value(d := i.to_bytes(4, "big")) < 1 << 28)
    got = sums_of(data)["crc32c"]
    assert len(got) == 8 and got.startswith("0") and int(got, 16) == google_crc32c.value(data)


def test_multipart_s3_etag_with_a_small_part_size() -> None:
    data = bytes(range(256)) * 40 + b"tail"  # 10244 bytes: parts of 4096, 4096, 2052
    parts = [hashlib.md5(data[i:i + 4096]).digest() for i in (0, 4096, 8192)]
    want = f"{hashlib.md5(b''.join(parts)).hexdigest()}-3"
    assert sums_of(data, part=4096)["s3_etag"] == want
    # fed in chunks that straddle several parts at once, the result is the same
    etag = S3Etag(4096)
    etag.update(data[:9000])
    etag.update(data[9000:])
    assert etag.hexdigest() == want


def test_s3_etag_of_exactly_one_part_is_the_plain_md5() -> None:
    data = os.urandom(4096)
    assert sums_of(data, part=4096)["s3_etag"] == hashlib.md5(data).hexdigest()
    two = data + b"x"
    assert sums_of(two, part=4096)["s3_etag"].endswith("-2")


@pytest.mark.parametrize(("size", "part"), [
    (0, 64 * MiB),
    (64 * MiB, 64 * MiB),
    (10_000 * 64 * MiB, 64 * MiB),  # 625 GiB: still 10,000 parts of 64 MiB
    (10_000 * 64 * MiB + 1, 65 * MiB),  # one byte more: size / 10,000 rounded up to whole MiB
    (1 << 40, 105 * MiB),  # 1 TiB
], ids=["empty", "64MiB", "625GiB", "625GiB+1", "1TiB"])
def test_s3_etag_part_size_grows_past_ten_thousand_parts(size: int, part: int) -> None:
    assert s3_etag_part_size(size) == part
    assert -(-size // part) <= 10_000


def test_s3_etag_matches_what_s3_reports_for_a_multipart_upload(s3_server: object) -> None:
    """moto computes a multipart upload's ETag as S3 does: parts of 5 MiB (S3's minimum) here."""
    from boto3.s3.transfer import TransferConfig
    from cloud_servers import LoopbackServer, s3_admin_client

    assert isinstance(s3_server, LoopbackServer)
    client = s3_admin_client(s3_server.alive().endpoint)
    bucket = f"dss-etag-{os.urandom(6).hex()}"
    client.create_bucket(Bucket=bucket)
    data = os.urandom(11 * MiB + 17)
    client.upload_fileobj(io.BytesIO(data), bucket, "k", Config=TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, use_threads=False))
    etag = client.head_object(Bucket=bucket, Key="k")["ETag"].strip('"')
    assert etag.endswith("-3")
    assert sums_of(data, part=5 * MiB)["s3_etag"] == etag


# -- records ---------------------------------------------------------------------------------
def test_record_round_trip(store: Path) -> None:
    data = b"hello checksums\n"
    key = md5e(data)
    assert read(store, PLAIN_DSID, key) is None
    sums = compute(io.BytesIO(data), len(data), parse_key(key))
    assert sums == independent(data)
    record(store, PLAIN_DSID, key, sums)
    assert read(store, PLAIN_DSID, key) == sums
    path = record_path(store, PLAIN_DSID, key)
    # dss/checksums/<dataset id>/<lower dirhash, two levels>/<KEY>.json, read-only
    rel = path.relative_to(store / paths.CHECKSUMS / PLAIN_DSID)
    assert len(rel.parts) == 3 and all(len(p) == 3 for p in rel.parts[:2])
    assert rel.parts[2] == f"{key}.json"
    assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0
    # recording the same values again is fine, and changes nothing
    before = path.read_bytes()
    record(store, PLAIN_DSID, key, sums)
    assert path.read_bytes() == before


def test_record_of_a_key_that_needs_escaping(store: Path) -> None:
    key = "WORM-s3-m1700000000--odd&name:100%.txt"
    sums = compute(io.BytesIO(b"odd"), 3, parse_key(key))
    record(store, PLAIN_DSID, key, sums)
    assert read(store, PLAIN_DSID, key) == sums
    assert record_path(store, PLAIN_DSID, key).name == "WORM-s3-m1700000000--odd&aname&c100&s.txt.json"


def test_a_record_is_immutable(store: Path) -> None:
    data = b"first"
    key = "WORM-s5-m1--f"
    record(store, PLAIN_DSID, key, independent(data))
    path = record_path(store, PLAIN_DSID, key)
    before = path.read_bytes()
    with pytest.raises(CorruptError) as err:
        record(store, PLAIN_DSID, key, independent(b"other"))
    assert str(err.value) == (f"checksum record {path}: sha256, sha1, crc32c, s3_etag differ from the "
                              f"content's; delete it and run `dss checksums STORE --dataset {PLAIN_DSID}`")
    assert path.read_bytes() == before


def write_record(store: Path, key: str, text: str) -> Path:
    path = record_path(store, PLAIN_DSID, key)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def assert_corrupt(store: Path, key: str, path: Path, cause: str) -> None:
    before = path.read_bytes()
    with pytest.raises(CorruptError) as err:
        read(store, PLAIN_DSID, key)
    assert str(err.value) == (f"checksum record {path} is corrupt ({cause}); delete it and run "
                              f"`dss checksums STORE --dataset {PLAIN_DSID}`")
    assert path.read_bytes() == before


def test_corrupt_record_not_json(store: Path) -> None:
    key = md5e(b"x")
    path = write_record(store, key, '{"key": ')
    assert_corrupt(store, key, path, "Expecting value: line 1 column 9 (char 8)")


def test_corrupt_record_missing_fields(store: Path) -> None:
    key = md5e(b"x")
    path = write_record(store, key, f'{{"key": "{key}", "size": 1, "sha256": "{"0" * 64}"}}')
    assert_corrupt(store, key, path, "no sha1, crc32c, s3_etag")


def test_corrupt_record_of_another_key(store: Path) -> None:
    key = md5e(b"x")
    sums = independent(b"x")
    path = write_record(store, key, key_checksums._dumps("WORM-s1--other", sums).decode())
    assert_corrupt(store, key, path, "it names key 'WORM-s1--other'")


def test_corrupt_record_upper_case_hex(store: Path) -> None:
    key = md5e(b"x")
    sums = independent(b"x")
    text = key_checksums._dumps(key, sums).decode().replace(sums.crc32c, sums.crc32c.upper())
    path = write_record(store, key, text)
    assert_corrupt(store, key, path, f"crc32c {sums.crc32c.upper()!r} is not lower-case hex of its length")


def test_corrupt_record_negative_size(store: Path) -> None:
    key = md5e(b"x")
    text = key_checksums._dumps(key, independent(b"x")).decode().replace('"size": 1', '"size": -1')
    path = write_record(store, key, text)
    assert_corrupt(store, key, path, "size -1 is not a byte count")


def test_content_contradicting_a_sha256_key_is_not_recorded(store: Path) -> None:
    key = sha256e(b"the real content")
    with pytest.raises(CorruptError) as err:
        compute(io.BytesIO(b"other content!!!"), 16, parse_key(key))
    assert str(err.value) == (f"{key}: the content's sha256 is "
                              f"{hashlib.sha256(b'other content!!!').hexdigest()}, not the key's "
                              "(corrupt object: `dss fsck` then `dss repair`); no checksums recorded")
    with pytest.raises(CorruptError):
        record(store, PLAIN_DSID, key, independent(b"other content!!!"))
    assert files_under(store / paths.CHECKSUMS) == []


def test_content_contradicting_an_md5e_key_is_not_recorded(store: Path) -> None:
    key = md5e(b"abc")
    with pytest.raises(CorruptError) as err:
        record(store, PLAIN_DSID, key, independent(b"abd"))
    assert str(err.value) == (f"{key}: the content's md5 is {hashlib.md5(b'abd').hexdigest()}, not "
                              "the key's (corrupt object: `dss fsck` then `dss repair`); "
                              "no checksums recorded")
    assert files_under(store / paths.CHECKSUMS) == []


def test_content_contradicting_a_sha512_key_is_hashed_and_not_recorded(store: Path) -> None:
    data = b"sha512 keys are checked too"
    key = f"SHA512-s{len(data)}--{hashlib.sha512(b'else').hexdigest()}"
    with pytest.raises(CorruptError) as err:
        compute(io.BytesIO(data), len(data), parse_key(key))
    assert f"the content's sha512 is {hashlib.sha512(data).hexdigest()}, not the key's" in str(err.value)


def test_multipart_md5e_key_is_checked_with_an_extra_md5(store: Path) -> None:
    data = os.urandom(5000)
    digests = DssDigests(len(data), ["s3_etag", "md5"], part=4096).read_from(io.BytesIO(data)).hexdigests()
    assert digests["s3_etag"].endswith("-2")
    assert digests["md5"] == hashlib.md5(data).hexdigest()


def test_content_of_the_wrong_size_is_not_recorded(store: Path) -> None:
    key = "WORM-s10-m1--f"
    with pytest.raises(CorruptError) as err:
        record(store, PLAIN_DSID, key, independent(b"nine char"))
    assert str(err.value) == (f"{key}: the content has 9 bytes, the key says 10 (corrupt object: "
                              "`dss fsck` then `dss repair`); no checksums recorded")
    assert files_under(store / paths.CHECKSUMS) == []


def test_a_bad_dataset_id_writes_nothing(store: Path) -> None:
    from ria_store.errors import UnsafePathError

    with pytest.raises(UnsafePathError):
        record(store, "../../etc", md5e(b"x"), independent(b"x"))
    assert files_under(store / paths.CHECKSUMS) == []


# -- the special remote's writes ----------------------------------------------------------------
def test_replica_set_store_records_the_checksums(store: Path, dsdir: Path, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    key = md5e(data)
    with open_store_replicas(store) as sr:
        sr.for_dataset(PLAIN_DSID).store(parse_key(key), src)
    assert read(store, PLAIN_DSID, key) == independent(data)


def test_a_failed_record_never_fails_the_write(store: Path, dsdir: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    data = b"stored even so\n"
    src = tmp_path / "f.txt"
    src.write_bytes(data)
    key = md5e(data, ".txt")
    (store / paths.CHECKSUMS).parent.mkdir(exist_ok=True)
    (store / paths.CHECKSUMS).write_text("a file where the directory should be")
    with caplog.at_level(logging.WARNING), open_store_replicas(store) as sr:
        rs = sr.for_dataset(PLAIN_DSID)
        rs.store(parse_key(key), src)
        assert rs.present(parse_key(key))
    assert f"{key}: checksums not recorded" in caplog.text
    assert f"`dss checksums {store} --dataset {PLAIN_DSID}` fills them in" in caplog.text
    assert (store / paths.CHECKSUMS).read_text() == "a file where the directory should be"


def test_a_key_contradicting_its_content_is_stored_but_not_recorded(
        store: Path, dsdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = b"not what the key says"
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    key = f"SHA256-s{len(data)}--{hashlib.sha256(b'else').hexdigest()}"
    with caplog.at_level(logging.WARNING), open_store_replicas(store) as sr:
        sr.for_dataset(PLAIN_DSID).store(parse_key(key), src)
    assert "the content's sha256 is" in caplog.text
    assert read(store, PLAIN_DSID, key) is None


def test_records_in_a_group_shared_store_are_the_groups(tmp_path: Path) -> None:
    from dss_remote.admin.store import init_store
    from ria_store import sharing

    root = tmp_path / "shared"
    init_store(root, group=sharing.group_name(os.getegid()))
    sharing.umask.cache_clear()
    old = os.umask(0o077)  # a strict umask, common on clusters: the store's modes win anyway
    try:
        key = md5e(b"shared")
        record(root, PLAIN_DSID, key, independent(b"shared"))
    finally:
        os.umask(old)
        sharing.umask.cache_clear()
    path = record_path(root, PLAIN_DSID, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    for d in (path.parent, path.parent.parent, path.parent.parent.parent, root / paths.CHECKSUMS):
        assert stat.S_IMODE(d.stat().st_mode) == sharing.SHARED_DIR_MODE, d


@pytest.mark.parametrize("kind", ["MD5E one part", "MD5E multipart", "SHA512", "SHA256E"])
def test_a_large_file_is_hashed_in_lanes_with_the_same_result(store: Path, tmp_path: Path, kind: str) -> None:
    size = 65 * MiB if kind == "MD5E multipart" else key_checksums.LANES_FROM + 5
    data = os.urandom(size)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    key = {"MD5E one part": md5e(data), "MD5E multipart": md5e(data), "SHA256E": sha256e(data),
           "SHA512": f"SHA512-s{size}--{hashlib.sha512(data).hexdigest()}"}[kind]
    assert len(key_checksums._lanes(key_checksums._names(parse_key(key)), size)) > 1
    got = key_checksums.compute_file(src, parse_key(key))
    assert got == compute(io.BytesIO(data), size, parse_key(key))
    want = independent(data)
    if kind == "MD5E multipart":
        parts = [hashlib.md5(data[i:i + 64 * MiB]).digest() for i in (0, 64 * MiB)]
        want = KeyChecksums(size, want.sha256, want.sha1, want.crc32c,
                            f"{hashlib.md5(b''.join(parts)).hexdigest()}-2")
    assert got == want


def test_a_large_file_contradicting_its_md5e_key_in_lanes(store: Path, tmp_path: Path) -> None:
    data = os.urandom(65 * MiB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    key = f"MD5E-s{len(data)}--{hashlib.md5(b'else').hexdigest()}.bin"
    with pytest.raises(CorruptError) as err:
        key_checksums.compute_file(src, parse_key(key))
    assert str(err.value) == (f"{key}: the content's md5 is {hashlib.md5(data).hexdigest()}, not the "
                              "key's (corrupt object: `dss fsck` then `dss repair`); no checksums recorded")

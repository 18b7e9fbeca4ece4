"""The Backend contract on S3 (moto_server on loopback), and S3's bad inputs: credentials,
permissions, a missing bucket, an unreachable or silent endpoint, corrupted uploads."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from backend_contract import (
    LARGE,
    BackendContract,
    ChangeSourceAfterDigest,
    MiB,
    fetch,
    listed,
    local_checksum,
    outage_call,
    write_source,
)
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as bce
from cloud_servers import AuthS3Server, Keys, MirrorFixture, free_port, s3_admin_client, silent_listener

from dss_remote.backends import s3
from dss_remote.backends.base import UPLOAD, Backend, ObjectInfo
from dss_remote.backends.checksums import hex_to_b64
from dss_remote.backends.cloud_common import MissingBucket
from dss_remote.backends.s3 import S3Backend
from ria_store.errors import AccessError, CorruptError, NotFoundError, UnavailableError

# small timeouts for the outage tests; botocore makes 3 attempts with backoff of at most 1 s and 2 s
TIMEOUT = 0.5
BUDGET = 3 * (2 * TIMEOUT) + 3
#: files from 1 MiB on go multipart; the 1 MiB chunk size is raised by s3transfer to S3's 5 MiB minimum
SMALL_PARTS = TransferConfig(multipart_threshold=MiB, multipart_chunksize=MiB,
                             preferred_transfer_client="classic")


class TestS3Backend(BackendContract):
    has_checksums = True
    part_size = s3.MULTIPART

    @pytest.fixture
    def backend(self, s3_mirror: MirrorFixture) -> S3Backend:
        return S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)

    def interrupt_write(self, backend: Backend, relpath: str, data: bytes) -> str | None:
        """A multipart upload with its first part sent, as a writer killed then leaves it."""
        assert isinstance(backend, S3Backend)
        client = s3_admin_client(backend.endpoint_url or "")
        key = f"{backend.prefix}/{relpath}"
        upload = client.create_multipart_upload(Bucket=backend.bucket, Key=key)
        client.upload_part(Bucket=backend.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                           Body=data[: 5 * MiB])
        return UPLOAD

    def make_empty_dir(self, backend: Backend, relpath: str) -> bool:
        return False  # a bucket has no directories


def assert_one_line(exc: BaseException, *needles: str) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in: {msg}"


def direct_keys(endpoint: str, bucket: str, keys: Keys | None = None) -> list[str]:
    """Every key in the bucket, read straight from the server; fails if uploads are left half done."""
    client = s3_admin_client(endpoint, keys)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def use_keys(monkeypatch: pytest.MonkeyPatch, keys: Keys) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)


def test_url_and_kind() -> None:
    backend = S3Backend("s3://lab-bucket/a/b/", endpoint_url="http://127.0.0.1:1")
    assert (backend.url, backend.bucket, backend.prefix, backend.kind) == ("s3://lab-bucket/a/b",
                                                                            "lab-bucket", "a/b", "s3")


def test_empty_prefix_puts_keys_at_the_bucket_root(s3_mirror: MirrorFixture, s3_server: Any,
                                                   tmp_path: Path) -> None:
    backend = S3Backend(f"s3://{s3_mirror.bucket}", endpoint_url=s3_mirror.endpoint_url)
    backend.put_file(write_source(tmp_path, b"x"), "ab/KEY")
    assert direct_keys(s3_server.endpoint, s3_mirror.bucket) == ["ab/KEY"]
    assert listed(backend, "ab") == {"ab/KEY": 1}


def test_s3_wrong_credentials(s3_auth_server: AuthS3Server, s3_env: dict[str, str],
                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    prefix = uuid.uuid4().hex
    url = f"s3://{s3_auth_server.bucket}/{prefix}"
    for keys in (Keys("AKIAINVALIDINVALID00", "bogus"), Keys(s3_auth_server.admin.access_key_id, "bogus")):
        use_keys(monkeypatch, keys)
        backend = S3Backend(url, endpoint_url=s3_auth_server.endpoint)
        with pytest.raises(AccessError) as exc:
            backend.info("ab/KEY")
        assert_one_line(exc.value, url, "AWS_ACCESS_KEY_ID")
        for size in (4, LARGE):
            with pytest.raises(AccessError) as exc:
                backend.put_file(write_source(tmp_path, os.urandom(size)), "ab/KEY")
            assert_one_line(exc.value, url, "credentials rejected", "AWS_ACCESS_KEY_ID")
    stored = direct_keys(s3_auth_server.endpoint, s3_auth_server.bucket, s3_auth_server.admin)
    assert [k for k in stored if k.startswith(prefix)] == []


def test_s3_without_credentials_is_access_error(s3_mirror: MirrorFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in boto3's chain (env, isolated HOME, instance metadata off): refused, naming the fix."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)
    with pytest.raises(AccessError) as exc:
        backend.info("ab/KEY")
    assert_one_line(exc.value, s3_mirror.url, "no usable AWS credentials", "AWS_PROFILE")


def test_s3_access_denied_on_write_only(s3_auth_server: AuthS3Server, s3_env: dict[str, str],
                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    prefix = uuid.uuid4().hex
    url = f"s3://{s3_auth_server.bucket}/{prefix}"
    use_keys(monkeypatch, s3_auth_server.admin)
    S3Backend(url, endpoint_url=s3_auth_server.endpoint).put_file(write_source(tmp_path, b"hello"),
                                                                  "ab/KEY")
    use_keys(monkeypatch, s3_auth_server.reader)
    reader = S3Backend(url, endpoint_url=s3_auth_server.endpoint)
    info = reader.info("ab/KEY")
    assert info is not None and info.size == 5
    assert reader.info("ab/OTHER") is None
    assert fetch(reader, "ab/KEY", tmp_path) == (5, b"hello")
    assert listed(reader, "ab") == {"ab/KEY": 5}
    with pytest.raises(AccessError) as exc:
        reader.put_file(write_source(tmp_path, b"new"), "ab/NEW")
    assert_one_line(exc.value, url, "access denied on write", "s3:PutObject")
    with pytest.raises(AccessError) as exc:
        reader.put_file(write_source(tmp_path, os.urandom(LARGE), "big"), "ab/BIG")
    assert_one_line(exc.value, url, "access denied on write")
    with pytest.raises(AccessError) as exc:
        reader.write_bytes("cfg", b"x")
    assert_one_line(exc.value, url, "access denied on write")
    with pytest.raises(AccessError) as exc:
        reader.remove("ab/KEY")
    assert_one_line(exc.value, url, "access denied on delete", "s3:DeleteObject")
    stored = direct_keys(s3_auth_server.endpoint, s3_auth_server.bucket, s3_auth_server.admin)
    assert [k for k in stored if k.startswith(prefix)] == [f"{prefix}/ab/KEY"]


def test_s3_missing_bucket(s3_server: Any, s3_env: dict[str, str], tmp_path: Path) -> None:
    url = f"s3://dss-missing-{uuid.uuid4().hex[:12]}/store"
    backend = S3Backend(url, endpoint_url=s3_server.endpoint)
    bucket = backend.bucket
    src = write_source(tmp_path, b"data")
    for call in (lambda: backend.info("ab/KEY"), lambda: fetch(backend, "ab/KEY", tmp_path),
                 lambda: backend.read_bytes("cfg"), lambda: listed(backend, "ab"),
                 lambda: backend.put_file(src, "ab/KEY"), lambda: backend.write_bytes("cfg", b"x"),
                 lambda: backend.remove("ab/KEY")):
        with pytest.raises(UnavailableError) as exc:
            call()
        assert type(exc.value) is MissingBucket  # an UnavailableError that retrying will not fix
        assert_one_line(exc.value, url, f"bucket {bucket} does not exist", "create it or fix the mirror url")


@pytest.mark.parametrize("op", ["info", "get_file", "put_file", "iter_objects"])
def test_s3_unreachable_endpoint_is_bounded(s3_mirror: MirrorFixture, tmp_path: Path, op: str) -> None:
    """The mirror goes down (its proxy refuses connections), then comes back with its data."""
    assert s3_mirror.proxy is not None
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url, connect_timeout=TIMEOUT,
                        read_timeout=TIMEOUT)
    backend.put_file(write_source(tmp_path, b"kept"), "ab/KEY")
    s3_mirror.proxy.down()
    start = time.monotonic()
    with pytest.raises(UnavailableError) as exc:
        outage_call(backend, op, tmp_path)
    assert time.monotonic() - start < 3 * BUDGET  # does not hang
    assert type(exc.value) is UnavailableError
    assert_one_line(exc.value, s3_mirror.url, f"cannot reach {s3_mirror.endpoint_url}", "endpoint url")
    s3_mirror.proxy.up()
    info = backend.info("ab/KEY")
    assert info is not None and info.size == 4
    assert backend.info("ab/NEW") is None


def test_s3_closed_port_is_unavailable(s3_env: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    backend = S3Backend("s3://lab/store", endpoint_url=endpoint, connect_timeout=TIMEOUT,
                        read_timeout=TIMEOUT)
    start = time.monotonic()
    with pytest.raises(UnavailableError) as exc:
        backend.info("ab/KEY")
    assert time.monotonic() - start < 3 * BUDGET
    assert_one_line(exc.value, "s3://lab/store", f"cannot reach {endpoint}")


@pytest.mark.parametrize("op", ["info", "put_file"])
def test_s3_silent_endpoint_is_bounded(s3_env: dict[str, str], tmp_path: Path, op: str) -> None:
    """A server that accepts and never answers: the read timeout ends each attempt."""
    with silent_listener() as endpoint:
        backend = S3Backend("s3://lab/store", endpoint_url=endpoint, connect_timeout=TIMEOUT,
                            read_timeout=TIMEOUT)
        start = time.monotonic()
        with pytest.raises(UnavailableError) as exc:
            outage_call(backend, op, tmp_path)
        assert time.monotonic() - start < 3 * BUDGET  # does not hang
        assert_one_line(exc.value, "s3://lab/store", "cannot reach")


@pytest.mark.parametrize(("size", "transfer", "got"),
                         [(100, None, "md5"), (LARGE, None, "crc32-composite"),
                          (12 * MiB + 7, SMALL_PARTS, "crc32-composite")],
                         ids=["single", "multipart", "multipart-3-parts"])
def test_s3_corrupted_upload_leaves_nothing(s3_mirror: MirrorFixture, s3_server: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, *, size: int,
                                            transfer: TransferConfig | None, got: str) -> None:
    """The bytes sent differ from those checksummed (here: the source changes in between).
    Real S3 refuses the PUT (BadDigest) but not a multipart upload: botocore computes each part's
    CRC32 from the bytes it sends. So the backend's own check of the ETag / composite CRC32 must
    catch it and delete the object (moto verifies nothing, so it is the only check here)."""
    monkeypatch.setattr(s3, "Digests", ChangeSourceAfterDigest)
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url, transfer=transfer)
    with pytest.raises(CorruptError) as exc:
        backend.put_file(write_source(tmp_path, bytes(size)), "ab/KEY")
    assert_one_line(exc.value, s3_mirror.url, "ab/KEY", f"stored with checksum {got} ", "retry the upload")
    assert backend.info("ab/KEY") is None
    assert direct_keys(s3_server.endpoint, s3_mirror.bucket) == []


def test_s3_part_size_is_the_one_s3transfer_uses() -> None:
    assert s3.part_size(SMALL_PARTS, 3 * MiB) == 5 * MiB  # S3's minimum part size
    assert s3.part_size(s3.TRANSFER, 1 << 30) == 8 * MiB
    assert s3.part_size(s3.TRANSFER, 100 << 30) == 16 * MiB  # at most 10,000 parts


def _sans_revision(info: ObjectInfo | None) -> ObjectInfo | None:
    """The object's info without its revision (the ETag), which these tests do not predict."""
    return None if info is None else dataclasses.replace(info, revision=None)


@pytest.mark.parametrize(("size", "parts"), [(3 * MiB, 1), (12 * MiB + 7, 3)],
                         ids=["one-part", "three-parts"])
def test_s3_multipart_upload_is_composite_and_records_what_the_service_reports(
        s3_mirror: MirrorFixture, s3_server: Any, tmp_path: Path, size: int, parts: int) -> None:
    """The service is asked for its default COMPOSITE CRC32 (not FULL_OBJECT, which moto computes
    by joining every part in Python); dss records that value, computed from the source in the
    part size s3transfer used, beside the whole-object CRC32."""
    data = os.urandom(size)
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url, transfer=SMALL_PARTS)
    backend.put_file(write_source(tmp_path, data), "ab/KEY")
    composite = local_checksum("crc32-composite", data, 5 * MiB)
    assert composite.endswith(f"-{parts}")
    assert _sans_revision(backend.info("ab/KEY")) == ObjectInfo(
        "ab/KEY", size, {"crc32-composite": composite},
        {"crc32": local_checksum("crc32", data), "crc32-composite": composite})
    raw = s3_admin_client(s3_server.endpoint).get_object(Bucket=s3_mirror.bucket, Key="lab/store/ab/KEY",
                                                         ChecksumMode="ENABLED")
    assert raw["ChecksumType"] == "COMPOSITE"
    assert raw["ChecksumCRC32"] == f"{hex_to_b64(composite[:8])}-{parts}"
    assert raw["Body"].read() == data


def test_s3_multipart_upload_a_service_makes_full_object_is_checked_whole(
        s3_mirror: MirrorFixture, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some S3-compatible services keep a FULL_OBJECT CRC32 for multipart uploads by default
    (simulated: CreateMultipartUpload asks for it). The upload check and info use the whole value."""
    data = os.urandom(12 * MiB + 7)
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url, transfer=SMALL_PARTS)

    def full_object(params: dict[str, Any], **kwargs: Any) -> None:
        params["ChecksumType"] = "FULL_OBJECT"

    backend._client().meta.events.register("before-parameter-build.s3.CreateMultipartUpload", full_object)
    backend.put_file(write_source(tmp_path, data), "ab/KEY")
    info = backend.info("ab/KEY")
    assert info is not None and info.checksums == {"crc32": local_checksum("crc32", data)}
    monkeypatch.setattr(s3, "Digests", ChangeSourceAfterDigest)
    with pytest.raises(CorruptError) as exc:
        backend.put_file(write_source(tmp_path, data, "changing"), "ab/OTHER")
    assert_one_line(exc.value, "ab/OTHER", "stored with checksum crc32 ", "retry the upload")
    assert backend.info("ab/OTHER") is None


def test_s3_object_uploaded_with_a_full_object_crc32_still_verifies(s3_mirror: MirrorFixture,
                                                                    s3_server: Any, tmp_path: Path) -> None:
    """What dss wrote before it switched to composite checksums: a FULL_OBJECT multipart upload
    with only the whole-object CRC32 recorded. info() reports both, and they agree."""
    data = os.urandom(LARGE)
    crc = local_checksum("crc32", data)
    s3_admin_client(s3_server.endpoint).upload_file(
        str(write_source(tmp_path, data)), s3_mirror.bucket, "lab/store/ab/KEY", Config=s3.TRANSFER,
        ExtraArgs={"ChecksumCRC32": hex_to_b64(crc), "Metadata": {s3.META_CRC32: crc}})
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)
    expected = ObjectInfo("ab/KEY", LARGE, {"crc32": crc}, {"crc32": crc})
    assert _sans_revision(backend.info("ab/KEY")) == expected


@pytest.mark.parametrize(("head", "expected"), [
    ({"ChecksumCRC32": "AUoJqA==-3", "ChecksumType": "COMPOSITE", "ETag": '"0f64-3"'},
     ("crc32-composite", "014a09a8-3")),  # AWS
    ({"ChecksumCRC32": "AUoJqA==", "ETag": '"0f64dbf10bc59440a3889ae75bd1ccf7-3"'},
     ("crc32-composite", "014a09a8-3")),  # moto 5.2: no suffix, no type
    ({"ChecksumCRC32": "AUoJqA==", "ChecksumType": "COMPOSITE", "ETag": '"0f64-3"'},
     ("crc32-composite", "014a09a8-3")),
    ({"ChecksumCRC32": "AUoJqA==", "ChecksumType": "FULL_OBJECT", "ETag": '"0f64-3"'}, ("crc32", "014a09a8")),
    ({"ChecksumCRC32": "AUoJqA==", "ETag": '"900150983cd24fb0d6963f7d28e17f72"'}, ("crc32", "014a09a8")),
    ({"ChecksumCRC32": "AUoJqA==", "ChecksumType": "FULL_OBJECT"}, ("crc32", "014a09a8")),
    ({"ETag": '"0f64-3"'}, None),
    ({"ChecksumCRC32": "AUoJqA==-3", "ChecksumType": "FULL_OBJECT"}, None),
    ({"ChecksumCRC32": "AUoJqA==-x", "ChecksumType": "COMPOSITE"}, None),
    ({"ChecksumCRC32": "not base64!"}, None),
    ({"ChecksumCRC32": "AAAAAAAA"}, None),  # 6 bytes: not a CRC32
], ids=["aws-composite", "moto-composite", "composite-no-suffix", "full-object-multipart", "single-put",
        "full-object-no-etag", "none", "suffix-but-full", "bad-part-count", "not-base64", "wrong-length"])
def test_s3_service_crc32_forms(head: dict[str, str], expected: tuple[str, str] | None) -> None:
    assert s3._service_crc32(head) == expected


def test_s3_failed_multipart_upload_leaves_nothing(s3_mirror: MirrorFixture, s3_server: Any,
                                                   tmp_path: Path) -> None:
    """A part that fails: s3transfer aborts the multipart upload, so no parts linger either."""
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)

    def fail_part(**kwargs: Any) -> None:
        response: Any = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                         "ResponseMetadata": {"HTTPStatusCode": 403}}
        raise bce.ClientError(response, "UploadPart")

    backend._client().meta.events.register("before-call.s3.UploadPart", fail_part)
    with pytest.raises(AccessError, match="access denied on write"):
        backend.put_file(write_source(tmp_path, os.urandom(LARGE)), "ab/KEY")
    assert backend.info("ab/KEY") is None
    assert direct_keys(s3_server.endpoint, s3_mirror.bucket) == []


def test_s3_absent_object_is_not_found_not_unavailable(s3_mirror: MirrorFixture, tmp_path: Path) -> None:
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)
    assert backend.info("ab/KEY") is None
    with pytest.raises(NotFoundError):
        backend.read_bytes("ab/KEY")


def test_s3_storage_class_applies_to_put_file_only(s3_mirror: MirrorFixture, s3_server: Any,
                                                   tmp_path: Path) -> None:
    """Bulk data gets the mirror's storage class; small config objects stay STANDARD (read often)."""
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url, storage_class="STANDARD_IA")
    backend.put_file(write_source(tmp_path, b"data"), "ab/KEY")
    backend.write_bytes("cfg", b"{}")
    client = s3_admin_client(s3_server.endpoint)
    head = client.head_object(Bucket=s3_mirror.bucket, Key="lab/store/ab/KEY")
    assert head.get("StorageClass") == "STANDARD_IA"
    assert client.head_object(Bucket=s3_mirror.bucket, Key="lab/store/cfg").get("StorageClass",
                                                                                "STANDARD") == "STANDARD"

"""The Backend contract on S3 (moto_server on loopback), and S3's bad inputs: credentials,
permissions, a missing bucket, an unreachable or silent endpoint, corrupted uploads."""

from __future__ import annotations

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
    fetch,
    listed,
    outage_call,
    write_source,
)
from botocore import exceptions as bce
from cloud_servers import AuthS3Server, Keys, MirrorFixture, free_port, s3_admin_client, silent_listener

from dss_remote.backends import s3
from dss_remote.backends.s3 import S3Backend
from ria_store.errors import AccessError, CorruptError, NotFoundError, UnavailableError

# small timeouts for the outage tests; botocore makes 3 attempts with backoff of at most 1 s and 2 s
TIMEOUT = 0.5
BUDGET = 3 * (2 * TIMEOUT) + 3


class TestS3Backend(BackendContract):
    has_checksums = True

    @pytest.fixture
    def backend(self, s3_mirror: MirrorFixture) -> S3Backend:
        return S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)


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
        assert type(exc.value) is UnavailableError
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


@pytest.mark.parametrize("size", [100, LARGE], ids=["single", "multipart"])
def test_s3_corrupted_upload_leaves_nothing(s3_mirror: MirrorFixture, s3_server: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """The bytes sent differ from those checksummed (here: the source changes in between).
    Real S3 refuses the PUT or the CompleteMultipartUpload (BadDigest); moto accepts anything, so
    the backend's own check of the ETag / full-object CRC32 must catch it and delete the object."""
    monkeypatch.setattr(s3, "Digests", ChangeSourceAfterDigest)
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)
    with pytest.raises(CorruptError) as exc:
        backend.put_file(write_source(tmp_path, bytes(size)), "ab/KEY")
    assert_one_line(exc.value, s3_mirror.url, "ab/KEY", "retry the upload")
    assert backend.info("ab/KEY") is None
    assert direct_keys(s3_server.endpoint, s3_mirror.bucket) == []


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

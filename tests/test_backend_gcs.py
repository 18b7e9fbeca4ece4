"""The Backend contract on GCS (gcp-storage-emulator on loopback), and GCS's bad inputs: a missing
bucket, no credentials, an unreachable or silent endpoint, uploads the service must refuse."""

from __future__ import annotations

import hashlib
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
from cloud_servers import MirrorFixture, free_port, gcs_admin_client, silent_listener

from dss_remote.backends import gcs
from dss_remote.backends.base import Backend
from dss_remote.backends.checksums import Digests
from dss_remote.backends.cloud_common import MissingBucket
from dss_remote.backends.gcs import GcsBackend
from ria_store.errors import AccessError, CorruptError, UnavailableError

# small timeouts for the outage tests: each request is bounded by TIMEOUT, retries by 3 * TIMEOUT
TIMEOUT = 0.5
BUDGET = 4 * TIMEOUT + 2


class TestGcsBackend(BackendContract):
    has_checksums = True

    @pytest.fixture
    def backend(self, gcs_mirror: MirrorFixture) -> GcsBackend:
        return GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url)

    def interrupt_write(self, backend: Backend, relpath: str, data: bytes) -> str | None:
        """A resumable upload session with its first chunk sent, as a writer killed then leaves it:
        a session, not an object, that GCS drops after a week by itself."""
        assert isinstance(backend, GcsBackend)
        import requests

        blob = gcs_admin_client(backend.endpoint_url or "").bucket(backend.bucket_name).blob(
            f"{backend.prefix}/{relpath}")
        session = blob.create_resumable_upload_session(size=len(data))
        chunk = data[: 256 * 1024]
        answer = requests.put(session, data=chunk, timeout=30,
                              headers={"Content-Range": f"bytes 0-{len(chunk) - 1}/{len(data)}"})
        assert answer.status_code == 308, answer.text  # "resume incomplete": the upload is open
        return None

    def make_empty_dir(self, backend: Backend, relpath: str) -> bool:
        return False  # a bucket has no directories


def assert_one_line(exc: BaseException, *needles: str) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in: {msg}"


def direct_names(endpoint: str, bucket: str) -> list[str]:
    """Every object in the bucket, read straight from the emulator."""
    return [b.name for b in gcs_admin_client(endpoint).list_blobs(bucket)]


def test_url_and_kind() -> None:
    backend = GcsBackend("gs://lab-bucket/a/b/", endpoint_url="http://127.0.0.1:1")
    assert (backend.url, backend.bucket_name, backend.prefix, backend.kind) == (
        "gs://lab-bucket/a/b", "lab-bucket", "a/b", "gcs")


def test_gcs_missing_bucket(gcs_server: Any, gcs_mirror: MirrorFixture, tmp_path: Path) -> None:
    url = f"gs://dss-missing-{uuid.uuid4().hex[:12]}/store"
    backend = GcsBackend(url, endpoint_url=gcs_server.endpoint)
    src = write_source(tmp_path, b"data")
    for call in (lambda: backend.info("ab/KEY"), lambda: fetch(backend, "ab/KEY", tmp_path),
                 lambda: backend.read_bytes("cfg"), lambda: listed(backend, "ab"),
                 lambda: backend.put_file(src, "ab/KEY"), lambda: backend.write_bytes("cfg", b"x"),
                 lambda: backend.remove("ab/KEY")):
        with pytest.raises(UnavailableError) as exc:
            call()
        assert type(exc.value) is MissingBucket  # an UnavailableError that retrying will not fix
        assert_one_line(exc.value, url, f"bucket {backend.bucket_name} does not exist",
                        "create it or fix the mirror url")


def test_gcs_without_credentials_is_access_error(gcs_mirror: MirrorFixture) -> None:
    """No endpoint (real GCS) and no ADC: refused before any request, naming the fix."""
    backend = GcsBackend(gcs_mirror.url)
    with pytest.raises(AccessError) as exc:
        backend.info("ab/KEY")
    assert_one_line(exc.value, gcs_mirror.url, "no Google credentials",
                    "gcloud auth application-default login", "GOOGLE_APPLICATION_CREDENTIALS")
    from google.auth.compute_engine import _metadata

    # set by cloud_servers before google.auth was imported: no probe of 169.254.169.254
    assert _metadata._NO_GCE_CHECK


@pytest.mark.parametrize("op", ["info", "get_file", "put_file", "iter_objects"])
def test_gcs_unreachable_endpoint_is_bounded(gcs_mirror: MirrorFixture, tmp_path: Path, op: str) -> None:
    """The mirror goes down (its proxy refuses connections), then comes back with its data."""
    assert gcs_mirror.proxy is not None
    backend = GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url, timeout=TIMEOUT)
    backend.put_file(write_source(tmp_path, b"kept"), "ab/KEY")
    gcs_mirror.proxy.down()
    start = time.monotonic()
    with pytest.raises(UnavailableError) as exc:
        outage_call(backend, op, tmp_path)
    assert time.monotonic() - start < 3 * BUDGET  # does not hang
    assert type(exc.value) is UnavailableError
    assert_one_line(exc.value, gcs_mirror.url, f"cannot reach {gcs_mirror.endpoint_url}", "endpoint url")
    gcs_mirror.proxy.up()
    info = backend.info("ab/KEY")
    assert info is not None and info.size == 4
    assert backend.info("ab/NEW") is None


def test_gcs_closed_port_is_unavailable(gcs_mirror: MirrorFixture) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    backend = GcsBackend(gcs_mirror.url, endpoint_url=endpoint, timeout=TIMEOUT)
    start = time.monotonic()
    with pytest.raises(UnavailableError) as exc:
        backend.info("ab/KEY")
    assert time.monotonic() - start < 3 * BUDGET
    assert_one_line(exc.value, gcs_mirror.url, f"cannot reach {endpoint}")


@pytest.mark.parametrize("op", ["info", "put_file"])
def test_gcs_silent_endpoint_is_bounded(gcs_mirror: MirrorFixture, tmp_path: Path, op: str) -> None:
    """A server that accepts and never answers: the timeout ends each attempt, the deadline retries."""
    with silent_listener() as endpoint:
        backend = GcsBackend("gs://lab/store", endpoint_url=endpoint, timeout=TIMEOUT)
        start = time.monotonic()
        with pytest.raises(UnavailableError) as exc:
            outage_call(backend, op, tmp_path)
        assert time.monotonic() - start < 3 * BUDGET  # does not hang
        assert_one_line(exc.value, "gs://lab/store", "cannot reach")


@pytest.mark.parametrize("size", [100, LARGE], ids=["multipart", "resumable"])
def test_gcs_upload_with_wrong_md5_leaves_nothing(gcs_mirror: MirrorFixture, gcs_server: Any,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  size: int) -> None:
    """The md5Hash declared with the upload is not that of the bytes sent: the service refuses it
    (gcp-storage-emulator and GCS answer 400) and nothing becomes visible."""
    class WrongMd5(Digests):
        def hexdigests(self) -> dict[str, str]:
            return {**super().hexdigests(), "md5": hashlib.md5(b"something else").hexdigest()}

    monkeypatch.setattr(gcs, "Digests", WrongMd5)
    backend = GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url)
    with pytest.raises(CorruptError) as exc:
        backend.put_file(write_source(tmp_path, os.urandom(size)), "ab/KEY")
    assert_one_line(exc.value, gcs_mirror.url, "ab/KEY", "retry the upload")
    assert backend.info("ab/KEY") is None
    assert direct_names(gcs_server.endpoint, gcs_mirror.bucket) == []


@pytest.mark.parametrize("size", [100, LARGE], ids=["multipart", "resumable"])
def test_gcs_source_changed_during_upload_leaves_nothing(gcs_mirror: MirrorFixture, gcs_server: Any,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         size: int) -> None:
    monkeypatch.setattr(gcs, "Digests", ChangeSourceAfterDigest)
    backend = GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url)
    with pytest.raises(CorruptError):
        backend.put_file(write_source(tmp_path, bytes(size)), "ab/KEY")
    assert backend.info("ab/KEY") is None
    assert direct_names(gcs_server.endpoint, gcs_mirror.bucket) == []


def test_empty_prefix_puts_objects_at_the_bucket_root(gcs_mirror: MirrorFixture, gcs_server: Any,
                                                      tmp_path: Path) -> None:
    backend = GcsBackend(f"gs://{gcs_mirror.bucket}", endpoint_url=gcs_mirror.endpoint_url)
    backend.put_file(write_source(tmp_path, b"x"), "ab/KEY")
    assert direct_names(gcs_server.endpoint, gcs_mirror.bucket) == ["ab/KEY"]
    assert listed(backend, "ab") == {"ab/KEY": 1}


def test_gcs_storage_class_applies_to_put_file_only(gcs_mirror: MirrorFixture, gcs_server: Any,
                                                    tmp_path: Path) -> None:
    """Bulk data gets the mirror's storage class; small config objects keep the bucket's default."""
    backend = GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url, storage_class="NEARLINE")
    backend.put_file(write_source(tmp_path, b"data"), "ab/KEY")
    backend.write_bytes("cfg", b"{}")
    bucket = gcs_admin_client(gcs_server.endpoint).bucket(gcs_mirror.bucket)
    assert bucket.get_blob("lab/store/ab/KEY").storage_class == "NEARLINE"
    assert bucket.get_blob("lab/store/cfg").storage_class != "NEARLINE"


@pytest.mark.parametrize("size", [100, LARGE], ids=["multipart", "resumable"])
def test_gcs_service_ignoring_declared_checksums_still_leaves_nothing(
        gcs_mirror: MirrorFixture, gcs_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        size: int) -> None:
    """A service that does not verify declared hashes (fake-gcs-server accepts a wrong md5Hash):
    the hashes it reports for what it stored must still match the source, or the object goes."""
    monkeypatch.setattr(gcs, "Digests", ChangeSourceAfterDigest)
    monkeypatch.setattr(gcs, "_declare_checksums", lambda blob, crc, md5: None)
    backend = GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url)
    with pytest.raises(CorruptError) as exc:
        backend.put_file(write_source(tmp_path, bytes(size)), "ab/KEY")
    assert_one_line(exc.value, gcs_mirror.url, "ab/KEY", "the object was removed")
    assert backend.info("ab/KEY") is None
    assert direct_names(gcs_server.endpoint, gcs_mirror.bucket) == []

"""`Backend.presign_get`: S3 (SigV4, moto) and GCS (V4, the emulator, a throwaway service-account
key) URLs that work without credentials; what a backend that cannot presign, or cannot sign, says."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from cloud_servers import MirrorFixture
from gcs_signer import signing_key

from dss_remote.backends.gcs import SIGNING_KEY_ENV, GcsBackend
from dss_remote.backends.posix import PosixBackend
from dss_remote.backends.s3 import S3Backend
from ria_store.errors import AccessError

DATA = b"presigned bytes\n" * 1000


def test_a_posix_backend_cannot_presign_and_says_so(tmp_path: Path) -> None:
    backend = PosixBackend(tmp_path)
    assert backend.presigns is False
    with pytest.raises(AccessError) as e:
        backend.presign_get("a/b", 60)
    assert str(e.value) == (f"replica {backend.url}: a posix backend cannot hand out presigned URLs "
                            "(only S3 and GCS mirrors can); the server streams its objects itself")


def test_an_s3_presigned_url_is_sigv4_and_reads_the_object(s3_mirror: MirrorFixture) -> None:
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)
    backend.write_bytes("x/obj", DATA)
    url = backend.presign_get("x/obj", 120)
    assert url.startswith(f"{s3_mirror.endpoint_url}/{s3_mirror.bucket}/lab/store/x/obj?")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=120" in url
    res = requests.get(url, timeout=30)
    assert res.status_code == 200 and res.content == DATA


def test_s3_without_credentials_cannot_presign(s3_mirror: MirrorFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    backend = S3Backend(s3_mirror.url, endpoint_url=s3_mirror.endpoint_url)
    with pytest.raises(AccessError) as e:
        backend.presign_get("x/obj", 60)
    assert str(e.value).startswith(f"replica {backend.url}: no usable AWS credentials")


def test_a_gcs_signed_url_reads_the_object_from_the_emulator(gcs_mirror: MirrorFixture, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY_ENV, str(signing_key(tmp_path)))
    backend = GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url)
    backend.write_bytes("x/obj", DATA)
    url = backend.presign_get("x/obj", 300)
    assert url.startswith(f"{gcs_mirror.endpoint_url}/{gcs_mirror.bucket}/lab/store/x/obj?")
    assert "X-Goog-Algorithm=GOOG4-RSA-SHA256" in url and "X-Goog-Expires=300" in url
    res = requests.get(url, timeout=30)
    assert res.status_code == 200 and res.content == DATA


def test_gcs_without_signing_credentials_cannot_presign(gcs_mirror: MirrorFixture) -> None:
    backend = GcsBackend(gcs_mirror.url, endpoint_url=gcs_mirror.endpoint_url)  # anonymous
    backend.write_bytes("x/obj", DATA)
    with pytest.raises(AccessError) as e:
        backend.presign_get("x/obj", 60)
    msg = str(e.value)
    assert msg.startswith(f"replica {backend.url}: the credentials that reach it "
                          "(AnonymousCredentials) cannot sign URLs: set GOOGLE_APPLICATION_CREDENTIALS")
    assert SIGNING_KEY_ENV in msg and "roles/iam.serviceAccountTokenCreator" in msg

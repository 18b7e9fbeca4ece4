"""PUT /v1/files from a staging bucket on moto_server: small objects within the request (201, then
200 without reading them again, 409 for other content), large ones in the background (202, HEAD
404 until done, then 200), and a background copy that fails answers the next PUT with its error."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from api_server import api_server
from cloud_servers import LoopbackServer, _unique_bucket, gcs_admin_client, s3_admin_client
from test_write_api import ADMIN, ALICE, SPEC, version

from dss_remote.config.server_settings import ServerSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.service import file_pool

ASYNC_BYTES = 100_000


@pytest.fixture
def staging(store: Path, s3_server: LoopbackServer, s3_env: dict[str, str],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    bucket = _unique_bucket()
    s3 = s3_admin_client(s3_server.alive().endpoint)
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    cfg = read_config(store)
    write_config(store, dataclasses.replace(cfg, server=ServerSettings(
        staging_buckets=(f"s3://{bucket}",), async_copy_bytes=ASYNC_BYTES)))
    yield s3, bucket


def _stage(s3: Any, bucket: str, key: str, data: bytes, sha256: str | None = None) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    tags = [{"Key": "hca-dss-sha256", "Value": sha256 or hashlib.sha256(data).hexdigest()}]
    s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tags})
    return f"s3://{bucket}/{key}"


def _put(url: str, fuuid: str, fversion: str, source: str) -> requests.Response:
    return requests.put(f"{url}/v1/files/{fuuid}?version={fversion}", headers=ALICE, timeout=60,
                        json={"creator_uid": 3, "source_url": source})


def _head_until(url: str, fuuid: str, fversion: str, status: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = requests.head(f"{url}/v1/files/{fuuid}?version={fversion}", headers=ALICE, timeout=30)
        if got.status_code == status:
            return
        time.sleep(0.1)
    pytest.fail(f"HEAD of {fuuid}.{fversion} never answered {status}")


def test_small_staged_objects_are_copied_in_the_request(store: Path, tmp_path: Path,
                                                         staging: tuple[Any, str]) -> None:
    s3, bucket = staging
    data = b"small staged file\n"
    source = _stage(s3, bucket, "a/small.txt", data)
    fuuid, fversion = str(uuidlib.uuid4()), version()
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        assert _put(srv.url, fuuid, fversion, source).status_code == 201
        s3.delete_object(Bucket=bucket, Key="a/small.txt")  # the second PUT never reads it again
        s3.put_object(Bucket=bucket, Key="a/small.txt", Body=data)
        s3.put_object_tagging(Bucket=bucket, Key="a/small.txt", Tagging={"TagSet": [
            {"Key": "hca-dss-sha256", "Value": hashlib.sha256(data).hexdigest()}]})
        assert _put(srv.url, fuuid, fversion, source).status_code == 200
        other = _stage(s3, bucket, "a/other.txt", b"other bytes\n")
        res = _put(srv.url, fuuid, fversion, other)
        assert res.status_code == 409 and "other content" in res.json()["title"], res.text
    record = file_pool.lookup(store, fuuid, fversion)
    assert record is not None and record.checksums["sha256"] == hashlib.sha256(data).hexdigest()


def test_large_staged_objects_are_copied_in_the_background(store: Path, tmp_path: Path,
                                                            staging: tuple[Any, str]) -> None:
    s3, bucket = staging
    data = os.urandom(3 * ASYNC_BYTES)
    source = _stage(s3, bucket, "big/scan.nii.gz", data)
    fuuid, fversion = str(uuidlib.uuid4()), version()
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        res = _put(srv.url, fuuid, fversion, source)
        assert res.status_code == 202, res.text
        assert res.json() == {"version": fversion, "task_id": f"{fuuid}.{fversion}"}
        _head_until(srv.url, fuuid, fversion, 200)
        got = requests.get(f"{srv.url}/v1/files/{fuuid}?version={fversion}", headers=ALICE, timeout=30)
        assert got.content == data
        assert _put(srv.url, fuuid, fversion, source).status_code == 200
        # to an admin the pending copy's file exists once done, to nobody else
        assert requests.head(f"{srv.url}/v1/files/{fuuid}", headers=ADMIN, timeout=30).status_code == 200


def test_a_background_copy_that_fails_answers_the_next_put_with_its_error(store: Path, tmp_path: Path,
                                                                          staging: tuple[Any, str]) -> None:
    s3, bucket = staging
    data = os.urandom(2 * ASYNC_BYTES)
    source = _stage(s3, bucket, "big/wrong.bin", data, sha256=hashlib.sha256(b"not it").hexdigest())
    fuuid, fversion = str(uuidlib.uuid4()), version()
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        assert _put(srv.url, fuuid, fversion, source).status_code == 202
        deadline = time.monotonic() + 30
        while True:  # the copy fails: the file never appears; the next PUT says why, once
            res = _put(srv.url, fuuid, fversion, source)
            if res.status_code != 202:
                break
            assert time.monotonic() < deadline, "the background copy never finished"
            time.sleep(0.1)
        assert res.status_code == 422 and "do not match" in res.json()["title"], res.text
        assert requests.head(f"{srv.url}/v1/files/{fuuid}?version={fversion}", headers=ALICE,
                             timeout=30).status_code == 404
        assert _put(srv.url, fuuid, fversion, source).status_code == 202  # a retry starts afresh
    assert file_pool.lookup(store, fuuid, fversion) is None


def test_an_object_staged_in_gcs_with_declared_metadata_is_deposited(
        store: Path, tmp_path: Path, gcs_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _unique_bucket()
    gcs = gcs_admin_client(gcs_server.alive().endpoint)
    gcs.create_bucket(bucket)
    data = b"staged in gcs\n"
    blob = gcs.bucket(bucket).blob("g/file.txt")
    blob.metadata = {"hca-dss-sha256": hashlib.sha256(data).hexdigest()}
    blob.upload_from_string(data)
    wrong = gcs.bucket(bucket).blob("g/wrong.txt")
    wrong.metadata = {"hca-dss-sha256": hashlib.sha256(b"no").hexdigest()}
    wrong.upload_from_string(data)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    cfg = read_config(store)
    write_config(store, dataclasses.replace(cfg, server=ServerSettings(staging_buckets=(f"gs://{bucket}/g",))))
    fuuid, fversion = str(uuidlib.uuid4()), version()
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        assert _put(srv.url, fuuid, fversion, f"gs://{bucket}/g/file.txt").status_code == 201
        res = _put(srv.url, str(uuidlib.uuid4()), fversion, f"gs://{bucket}/g/wrong.txt")
        assert res.status_code == 422, res.text
        res = _put(srv.url, str(uuidlib.uuid4()), fversion, f"gs://{bucket}/elsewhere.txt")
        assert res.status_code == 400 and "outside this store's staging buckets" in res.json()["title"]
    record = file_pool.lookup(store, fuuid, fversion)
    assert record is not None and record.size == len(data)

"""The cloud SDKs' endpoint variables, as a new user meets them: STORAGE_EMULATOR_HOST (google-cloud-
storage: an emulator, no credentials) and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 (boto3).

Each path: the variable set, `dss init STORE --mirror URL` with no endpoint option, a dataset's keys
copied with `git annex copy`, `dss fsck` clean, the keys in the bucket. The variable is a property of
the machine, so it never lands in the store's config; an endpoint the config does name wins over it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloud_servers import LoopbackServer, MirrorFixture, gcs_admin_client, s3_admin_client
from conftest import annex_keys, dss, require_tool, run
from file_servers import refused_port

from dss_remote.config import paths
from ria_store.layout import dataset_relpath, object_relpath

PREFIX = "lab/store"  # what the mirror fixtures' urls end in


def publish_content(store: Path, dataset: Path) -> tuple[str, dict[str, str]]:
    """`dss create-sibling` + `git annex copy` of every file; (dataset id, {path: key})."""
    require_tool("git-annex-remote-dss")
    out = dss("create-sibling", "--name", "store", f"ria+file://{store}", cwd=dataset)[1]
    dsid = out.split()[1].rstrip(":")
    run("git", "annex", "copy", "--to", "store-storage", ".", cwd=dataset)
    return dsid, annex_keys(dataset)


def fsck_summary(store: Path) -> str:
    """The last line `dss fsck` prints (google.auth may log a warning first when it finds no ADC)."""
    return dss("fsck", store)[2].strip().splitlines()[-1]


def stored_mirrors(store: Path) -> list[dict[str, str]]:
    mirrors: list[dict[str, str]] = json.loads((store / paths.CONFIG).read_text())["mirrors"]
    return mirrors


def object_names(dsid: str, keys: dict[str, str]) -> set[str]:
    """The bucket object of each key, under the mirror's prefix."""
    return {f"{PREFIX}/{dataset_relpath(dsid)}/{object_relpath(key, '2')}" for key in keys.values()}


def gcs_names(server: LoopbackServer, bucket: str) -> list[str]:
    return [b.name for b in gcs_admin_client(server.endpoint).list_blobs(bucket)]


def s3_names(server: LoopbackServer, bucket: str) -> list[str]:
    pages = s3_admin_client(server.endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


# -- GCS: STORAGE_EMULATOR_HOST ---------------------------------------------------------------------

def test_storage_emulator_host_alone_is_enough_for_init_copy_and_fsck(
        gcs_server: LoopbackServer, gcs_mirror: MirrorFixture, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)  # and no Google credentials
    store = tmp_path / "store"
    code, out, _ = dss("init", store, "--mirror", gcs_mirror.url)
    assert code == 0 and f"mirror gs-{gcs_mirror.bucket}: {gcs_mirror.url}" in out
    assert stored_mirrors(store) == [{"name": f"gs-{gcs_mirror.bucket}", "url": gcs_mirror.url}]
    dsid, keys = publish_content(store, dataset)
    assert fsck_summary(store) == "fsck: 1 dataset(s), 0 problem(s), 0 unverified"
    assert object_names(dsid, keys) <= set(gcs_names(gcs_server, gcs_mirror.bucket))
    bucket = gcs_admin_client(gcs_server.endpoint).bucket(gcs_mirror.bucket)
    seeded = bucket.blob(f"{PREFIX}/{paths.CONFIG}").download_as_bytes()
    assert b"endpoint" not in seeded, "the machine's variable stays off the mirror"


def test_gcs_endpoint_in_the_store_config_wins_over_storage_emulator_host(
        gcs_server: LoopbackServer, gcs_mirror: MirrorFixture, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{refused_port()}")
    store = tmp_path / "store"
    dss("init", store, "--mirror", gcs_mirror.url, "--gcs-endpoint-url", gcs_server.endpoint)
    assert stored_mirrors(store)[0]["endpoint_url"] == gcs_server.endpoint
    dsid, keys = publish_content(store, dataset)
    assert fsck_summary(store) == "fsck: 1 dataset(s), 0 problem(s), 0 unverified"
    assert object_names(dsid, keys) <= set(gcs_names(gcs_server, gcs_mirror.bucket))


def test_unreachable_storage_emulator_host_is_named_in_the_error(
        gcs_server: LoopbackServer, gcs_mirror: MirrorFixture, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    store = tmp_path / "store"
    dss("init", store, "--mirror", gcs_mirror.url)
    publish_content(store, dataset)
    gone = f"http://127.0.0.1:{refused_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gone)
    code, out, err = dss("fsck", store, check=False)
    assert code == 1
    assert (f"replica {gcs_mirror.url}: cannot reach STORAGE_EMULATOR_HOST={gone} (ConnectionError); "
            "check the network or the mirror's endpoint url") in out
    assert err.strip().splitlines()[-1] == "fsck: 1 dataset(s), 1 problem(s), 0 unverified"


# -- S3: AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 --------------------------------------------------------

@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_aws_endpoint_url_alone_is_enough_for_init_copy_and_fsck(
        s3_server: LoopbackServer, s3_mirror: MirrorFixture, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, *, variable: str) -> None:
    monkeypatch.setenv(variable, s3_server.endpoint)  # s3_env: moto's keys, no other endpoint setting
    store = tmp_path / "store"
    code, out, _ = dss("init", store, "--mirror", s3_mirror.url)
    assert code == 0 and f"mirror s3-{s3_mirror.bucket}: {s3_mirror.url}" in out
    assert stored_mirrors(store) == [{"name": f"s3-{s3_mirror.bucket}", "url": s3_mirror.url}]
    dsid, keys = publish_content(store, dataset)
    assert fsck_summary(store) == "fsck: 1 dataset(s), 0 problem(s), 0 unverified"
    assert object_names(dsid, keys) <= set(s3_names(s3_server, s3_mirror.bucket))
    seeded = s3_admin_client(s3_server.endpoint).get_object(Bucket=s3_mirror.bucket,
                                                            Key=f"{PREFIX}/{paths.CONFIG}")
    assert b"endpoint" not in seeded["Body"].read(), "the machine's variable stays off the mirror"


def test_s3_endpoint_in_the_store_config_wins_over_aws_endpoint_url(
        s3_server: LoopbackServer, s3_mirror: MirrorFixture, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gone = f"http://127.0.0.1:{refused_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", gone)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", gone)
    store = tmp_path / "store"
    dss("init", store, "--mirror", s3_mirror.url, "--endpoint-url", s3_server.endpoint)
    assert stored_mirrors(store)[0]["endpoint_url"] == s3_server.endpoint
    dsid, keys = publish_content(store, dataset)
    assert fsck_summary(store) == "fsck: 1 dataset(s), 0 problem(s), 0 unverified"
    assert object_names(dsid, keys) <= set(s3_names(s3_server, s3_mirror.bucket))


def test_unreachable_aws_endpoint_url_is_named_in_the_error(
        s3_server: LoopbackServer, s3_mirror: MirrorFixture, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    store = tmp_path / "store"
    dss("init", store, "--mirror", s3_mirror.url)
    publish_content(store, dataset)
    gone = f"http://127.0.0.1:{refused_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", gone)
    code, out, err = dss("fsck", store, check=False)
    assert code == 1
    assert (f"replica {s3_mirror.url}: cannot reach AWS_ENDPOINT_URL_S3={gone} "
            "(EndpointConnectionError); check the network or the mirror's endpoint url") in out
    assert err.strip().splitlines()[-1] == "fsck: 1 dataset(s), 1 problem(s), 0 unverified"

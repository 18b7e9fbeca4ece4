"""Acceptance of the write API with the real `hca` 7.0.1 client: `hca dss upload --src-dir D
--replica aws --staging-bucket B` against `dss serve`'s app with the store's own gate and the
staging bucket on moto_server; then `datalad clone` of the store shows a dataset whose files equal
D, `datalad get .` works, and `dss bundles list` / `dss events` show the client's version."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from api_server import api_server
from cloud_servers import LoopbackServer, _unique_bucket, s3_admin_client
from conftest import dss, require_tool, run, write_files
from cryptography.hazmat.primitives import serialization
from jwt_issuer import jwks, rsa_key
from test_collections_hca import HCA_AUDIENCE, HCA_GROUP_CLAIM, SERVICE_ACCOUNT, _signed_in_hca

from dss_remote.access import acl, issuers
from dss_remote.access.issuers import make_issuer
from dss_remote.config.server_settings import ServerSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.history import bundle_store

pytest_plugins = ["hca_client"]

FILES = {"sample.json": b'{"species": "mouse", "organ": "cortex"}\n',
         "reads/r1.fastq.gz": os.urandom(200_000), "notes.txt": b"from the instrument\n"}


@pytest.mark.usefixtures("s3_env")
def test_hca_upload_makes_a_dataset_datalad_clones_and_gets(hca_venv: Path, tmp_path: Path, store: Path,
                                                            s3_server: LoopbackServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("datalad")
    bucket = _unique_bucket()
    s3_admin_client(s3_server.alive().endpoint).create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)  # the server and the client reach moto
    cfg = read_config(store)
    # the 200 kB file is copied in the background (202, then the client polls HEAD), the others within
    write_config(store, dataclasses.replace(cfg, server=ServerSettings(staging_buckets=(f"s3://{bucket}",),
                                                                       async_copy_bytes=100_000)))
    key = rsa_key("0123456789abcdef0123456789abcdef01234567")
    issuers.add(store, make_issuer(SERVICE_ACCOUNT, HCA_AUDIENCE, jwks=jwks(key),
                                   groups_claim=HCA_GROUP_CLAIM))
    acl.set_default(store, create=["hca"])
    credentials = tmp_path / "service-account.json"
    pem = key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    credentials.write_text(json.dumps({"type": "service_account", "client_email": SERVICE_ACCOUNT,
                                       "private_key_id": key.kid, "private_key": pem}))
    src = tmp_path / "src"
    write_files(src, FILES)
    with api_server(store, {}, tmp_path / "srv", factory="store_gate_factory:app") as srv:
        out = _signed_in_hca(hca_venv, tmp_path, srv.url, credentials, "dss", "upload", "--src-dir",
                             str(src), "--replica", "aws", "--staging-bucket", bucket, "--no-progress")
    assert isinstance(out, dict)
    buuid, version = out["bundle_uuid"], out["version"]
    assert bundle_store.versions(store, buuid) == [version]
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{buuid}", clone)
    run("datalad", "-l", "error", "get", ".", cwd=clone)
    for name, data in FILES.items():
        assert (clone / name).read_bytes() == data, name
    code, listed, err = dss("bundles", "list", store, "--dataset", buuid)
    assert code == 0 and version in listed, listed + err
    code, events, err = dss("events", store)
    assert code == 0 and version in events and buuid in events, events + err
    # the uploader created the dataset, so it may write it from now on
    assert f"user:{SERVICE_ACCOUNT}" in (acl.load(store).rule(buuid).write or ())

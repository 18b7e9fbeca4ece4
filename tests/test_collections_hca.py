"""The real `hca` 7.0.1 client's collection commands against the API under uvicorn with the store's
own gate: put-collection, get-collection, get-collections, patch-collection, delete-collection,
signed in as the client signs in (its own RS256 JWT from a service-account key the store trusts)."""

from __future__ import annotations

import json
import subprocess
import uuid as uuidlib
from pathlib import Path

import pytest
from api_data import isolated_home, push_new
from api_server import api_server
from cryptography.hazmat.primitives import serialization
from hca_client import hca_env
from jwt_issuer import jwks, rsa_key

from dss_remote.access import acl, issuers
from dss_remote.access.issuers import make_issuer
from dss_remote.config import paths
from dss_remote.service import collections

pytest_plugins = ["hca_client"]

SERVICE_ACCOUNT = "collector@lab-project.iam.gserviceaccount.com"
#: what hca 7.0.1 signs its service-account JWTs for, and where it puts the group (hca_client.md)
HCA_AUDIENCE = "https://dev.data.humancellatlas.org/"
HCA_GROUP_CLAIM = "https://auth.data.humancellatlas.org/group"
VERSION = "2026-11-22T031533.123456Z"


def _signed_in_hca(hca: Path, work: Path, server_url: str, credentials: Path, *args: str) -> object:
    """`hca ARGS` (or the hca venv's python) with a token it signs itself; its JSON output. Fails
    the test unless it exits 0."""
    env = hca_env(work, server_url)
    config = Path(env["HCA_CONFIG_FILE"])
    doc = json.loads(config.read_text())
    # the client id is all a service-account sign-in needs of the OAuth settings (else it asks
    # the server's /internal/application_secrets)
    doc["application_secrets"] = {"installed": {"client_id": "dss-remote-tests"}}
    config.write_text(json.dumps(doc))
    env |= {"GOOGLE_APPLICATION_CREDENTIALS": str(credentials), "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    res = subprocess.run([str(hca), *args], cwd=work, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    if res.returncode != 0:
        pytest.fail(f"`hca {' '.join(args)}` exited {res.returncode}\n--- stdout\n{res.stdout[-3000:]}\n"
                    f"--- stderr\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)


def test_hca_put_get_list_patch_and_delete_a_collection(hca_venv: Path, tmp_path: Path,
                                                        tools_path: str) -> None:
    with isolated_home(tmp_path, tools_path):
        p = push_new(tmp_path / "store", tmp_path / "ds", {"a.txt": b"a\n", "meta/m.json": b'{"x": 1}\n'})
    key = rsa_key("0123456789abcdef0123456789abcdef01234567")
    issuers.add(p.store, make_issuer(SERVICE_ACCOUNT, HCA_AUDIENCE, jwks=jwks(key),
                                     groups_claim=HCA_GROUP_CLAIM))
    acl.set_dataset(p.store, p.dataset_id, read=["hca"])
    credentials = tmp_path / "service-account.json"
    pem = key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    credentials.write_text(json.dumps({"type": "service_account", "client_email": SERVICE_ACCOUNT,
                                       "private_key_id": key.kid, "private_key": pem}))
    bundle = {"type": "bundle", "uuid": p.dataset_id, "version": p.versions[0]}
    u = str(uuidlib.uuid4())

    with api_server(p.store, {}, tmp_path / "srv", factory="store_gate_factory:app") as srv:
        def hca(*args: str) -> object:
            return _signed_in_hca(hca_venv, tmp_path, srv.url, credentials, "dss", *args)

        put = hca("put-collection", "--replica", "aws", "--uuid", u, "--version", VERSION,
                  "--name", "selection", "--description", "for the paper", "--details", '{"lab": "x"}',
                  "--contents", json.dumps(bundle), json.dumps(bundle))
        assert put == {"uuid": u, "version": VERSION}
        got = hca("get-collection", "--uuid", u, "--replica", "aws")
        assert isinstance(got, dict)
        assert (got["owner"], got["name"], got["details"], got["contents"]) == (
            SERVICE_ACCOUNT, "selection", {"lab": "x"}, [bundle])
        assert hca("get-collections") == {"collections": [{"uuid": u, "version": VERSION}]}
        renamed = hca("patch-collection", "--uuid", u, "--replica", "aws", "--version", VERSION,
                      "--name", "renamed", "--details", '{"round": 2}')
        assert isinstance(renamed, dict) and renamed["uuid"] == u and renamed["version"] > VERSION
        # hca 7.0.1's command line cannot take an optional array option (--add-contents: argparse is
        # given typing.List as the type), against the DSS too; its Python binding can
        link = {"type": "collection", "uuid": u, "version": VERSION}
        added = _signed_in_hca(hca_venv.parent / "python", tmp_path, srv.url, credentials, "-c",
                               "import json, sys; from hca.dss import DSSClient; print(json.dumps("
                               "DSSClient().patch_collection(uuid=sys.argv[1], replica='aws', "
                               "version=sys.argv[2], add_contents=[json.loads(sys.argv[3])])))",
                               u, renamed["version"], json.dumps(link))
        assert isinstance(added, dict) and added["version"] > renamed["version"]
        newest = hca("get-collection", "--uuid", u, "--replica", "aws")
        assert isinstance(newest, dict)
        assert (newest["version"], newest["name"], newest["description"], newest["details"]) == (
            added["version"], "renamed", "for the paper", {"round": 2})
        assert newest["contents"] == [bundle, link]
        assert hca("delete-collection", "--uuid", u, "--replica", "aws") == {}
        assert collections.versions(p.store, u) == []
        assert hca("get-collections") == {"collections": []}
    audited = [json.loads(line) for f in sorted((p.store / paths.AUDIT).glob("*.jsonl"))
               for line in f.read_text().splitlines()]
    assert [(r["identity"], r["method"], r["status"]) for r in audited if r.get("collection") == u] == [
        (SERVICE_ACCOUNT, "PUT", 201), (SERVICE_ACCOUNT, "PATCH", 200), (SERVICE_ACCOUNT, "PATCH", 200),
        (SERVICE_ACCOUNT, "DELETE", 200)]

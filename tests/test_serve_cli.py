"""`dss serve` itself, as a user runs it: a subprocess on a free 127.0.0.1 port over a store DataLad
pushed to, with real dss tokens and ACLs (StoreGate), TLS, several workers, and its bad arguments."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from api_data import Pushed, copy_sample
from api_server import served
from cloud_servers import HOST, free_port
from conftest import dss, require_tool
from file_servers import TLSCA
from jwt_issuer import AUD, ISS, jwks, jwks_server, rsa_key, sign

from dss_remote.server import dss_mapping


@contextmanager
def dss_serve(store: Path, work: Path, *args: str, scheme: str = "http",
              verify: str | bool = True) -> Iterator[str]:
    """`dss serve STORE --port P ARGS` until the block ends (SIGTERM, then waited for)."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"{scheme}://{HOST}:{port}"
    command = [require_tool("dss"), "serve", str(store), "--port", str(port), *args]
    with served(command, url, work / f"serve-{port}.log", probe="/v1/version", verify=verify):
        yield url


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, sample_template: Pushed) -> Pushed:
    return copy_sample(sample_template, tmp_path_factory.mktemp("serve-cli"))


def _token(store: Path, user: str, group: str) -> str:
    code, out, err = dss("token", "create", store, "--user", user, "--group", group)
    assert code == 0, err
    return out.strip()


def test_dss_serve_lets_a_token_of_a_reader_in_and_keeps_others_out(pushed: Pushed, tmp_path: Path) -> None:
    store, ds = pushed.store, pushed.dataset_id
    reader, other = _token(store, "alice", "lab"), _token(store, "bob", "elsewhere")
    assert dss("acl", "set", store, ds, "--read", "lab")[0] == 0
    with dss_serve(store, tmp_path) as url:
        bundle_url = f"{url}/v1/bundles/{ds}"
        anonymous = requests.get(bundle_url, timeout=30)
        assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
        assert requests.get(bundle_url, headers={"Authorization": f"Bearer {other}"}, timeout=30
                            ).status_code == 403
        ok = requests.get(bundle_url, headers={"Authorization": f"Bearer {reader}"}, timeout=30)
        assert ok.status_code == 200 and ok.json()["bundle"]["version"] == pushed.versions[-1]
        fuuid = dss_mapping.file_uuid(ds, "dir/data.bin")
        got = requests.get(f"{url}/v1/files/{fuuid}", params={"replica": "aws"},
                           headers={"Authorization": f"Bearer {reader}"}, timeout=30)
    data = (pushed.dataset / "dir/data.bin").read_bytes()
    assert got.status_code == 200 and got.content == data
    # the special remote recorded the four checksums when it stored the key
    assert got.headers["X-DSS-SHA256"] == hashlib.sha256(data).hexdigest()
    assert got.headers["X-DSS-SHA1"] == hashlib.sha1(data).hexdigest()
    assert len(got.headers["X-DSS-CRC32C"]) == 8
    assert got.headers["X-DSS-S3-ETAG"] == hashlib.md5(data).hexdigest()
    audit = "".join(p.read_text() for p in (store / "dss/audit").glob("*.jsonl"))
    assert '"status": 401' in audit and '"status": 403' in audit
    assert reader not in audit and other not in audit


def test_dss_serve_over_tls_with_two_workers(pushed: Pushed, tmp_path: Path, tls_ca: TLSCA) -> None:
    cert = tls_ca.ca.issue_cert(HOST)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with dss_serve(pushed.store, tmp_path, "--tls-cert", str(cert_file), "--tls-key", str(key_file),
                   "--workers", "2", "--threads", "2", scheme="https", verify=str(tls_ca.bundle)) as url:
        res = requests.get(url + "/v1/version", timeout=30, verify=str(tls_ca.bundle))
        assert res.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url + "/v1/version", timeout=30, verify=True)  # nothing else trusts the test CA


def test_dss_serve_public_url_is_the_spec_server_and_the_paging_base(pushed: Pushed, tmp_path: Path) -> None:
    public = "https://data.example.org/dss"
    with dss_serve(pushed.store, tmp_path, "--public-url", public) as url:
        spec = requests.get(url + "/v1/swagger.json", timeout=30).json()
    assert spec["servers"][0]["url"] == public + "/v1"


@pytest.mark.parametrize(("args", "message"), [
    (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together: give both (PEM files) or neither"),
    (["--tls-cert", "missing.pem", "--tls-key", "missing.pem"], "missing.pem is not a readable file"),
    (["--workers", "0"], "--workers 0: give 1 to 64 worker processes"),
    (["--threads", "0"], "--threads 0: give 1 to 256 threads per worker"),
    (["--port", "70000"], "--port 70000 is not a TCP port (1-65535)"),
    (["--public-url", "data.example.org"], "--public-url 'data.example.org' must be an absolute http(s) URL"),
])
def test_dss_serve_refuses_bad_arguments(pushed: Pushed, tmp_path: Path, args: list[str],
                                         message: str) -> None:
    code, out, err = dss("serve", pushed.store, *args, cwd=tmp_path, check=False)
    assert code == 1 and out == ""
    assert err.strip().startswith("dss: error: ") and message in err


def test_dss_serve_of_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    code, _, err = dss("serve", tmp_path, check=False)
    assert code == 1 and err.strip().startswith("dss: error: ")


def test_dss_serve_of_a_store_with_a_broken_config(tmp_path: Path) -> None:
    dss("init", tmp_path / "store")
    (tmp_path / "store/dss/config.json").write_text('{"version": 1, "server": {"presign_seconds": 0}}')
    code, _, err = dss("serve", tmp_path / "store", check=False)
    assert code == 1 and "server.presign_seconds 0 must be" in err


def test_dss_serve_takes_a_jwt_of_an_issuer_whose_keys_are_at_a_jwks_url(pushed: Pushed,
                                                                         tmp_path: Path) -> None:
    store, ds = pushed.store, pushed.dataset_id
    key = rsa_key("serve-1")
    with jwks_server(jwks(key)) as keys:
        code, _, err = dss("auth", "issuer", "add", store, "--issuer", ISS, "--audience", AUD,
                           "--jwks-uri", keys.url)
        assert code == 0, err
        assert dss("acl", "set", store, ds, "--read", "jwt-readers")[0] == 0
        with dss_serve(store, tmp_path) as url:
            good = requests.get(f"{url}/v1/bundles/{ds}", timeout=30,
                                headers={"Authorization": f"Bearer {sign(key, groups=['jwt-readers'])}"})
            outsider = requests.get(f"{url}/v1/bundles/{ds}", timeout=30,
                                    headers={"Authorization": f"Bearer {sign(key, groups=['others'])}"})
            expired = requests.get(f"{url}/v1/bundles/{ds}", timeout=30, headers={
                "Authorization": f"Bearer {sign(key, groups=['jwt-readers'], exp=int(time.time()) - 3600)}"})
    assert good.status_code == 200 and good.json()["bundle"]["uuid"] == ds
    assert outsider.status_code == 403
    assert expired.status_code == 401 and "expired" in expired.json()["title"]
    assert keys.hits, "the server fetched the issuer's keys from its JWKS URL"

"""The read-only store tree under /ria/: what is served to whom, what never is, and path safety.

Unit-level cases go through FastAPI's TestClient; traversal cases through the real server with
`http.client`, which sends the path exactly as written (no normalisation of `..` or escapes).
End-to-end clones with DataLad are in test_ria_tree_clone.py.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_server import ApiServer, api_server
from conftest import PLAIN_DSID
from fastapi.testclient import TestClient
from gate_double import GateDouble
from httpx import Response

from dss_remote.access.gate import Identity
from dss_remote.backends.http import HttpBackend
from dss_remote.replication.gitsync import public_git_config
from dss_remote.server.app import create_app
from dss_remote.webhooks import subscriptions
from ria_store import store as ria
from ria_store.layout import dataset_relpath

PRIVATE = PLAIN_DSID
PUBLIC = "5e6f7a8b-0000-4000-8000-00000000000a"
SECRET_BYTES = b"n3ver-serve-this-7f3a"
READER = {"Authorization": "Bearer tok-reader"}
SPEC = {"tokens": {"tok-reader": {"user": "rita", "groups": ["lab"]},
                   "tok-outsider": {"user": "otto", "groups": ["elsewhere"]}},
        "public": [PUBLIC], "readers": {PRIVATE: ["lab"]}}
ARCHIVE = bytes(range(256)) * 64  # 16 KiB standing in for archive.7z: the tree serves bytes


def _tree(store: Path) -> dict[str, Path]:
    """Two datasets with git's files, an annex object and an archive; every never-served file."""
    datasets = {}
    for dsid in (PRIVATE, PUBLIC):
        ds = ria.create_dataset(ria.open_store(store), dsid, alias="pub" if dsid == PUBLIC else None)
        subprocess.run(["git", "init", "-q", "--bare", str(ds)], check=True)
        subprocess.run(["git", "config", "-f", str(ds / "config"), "datalad.ora-remote.uuid",
                        "11111111-2222-4333-8444-555555555555"], check=True)
        subprocess.run(["git", "config", "-f", str(ds / "config"), "remote.origin.url",
                        "https://user:" + SECRET_BYTES.decode() + "@example.org/x"], check=True)
        subprocess.run(["git", "--git-dir", str(ds), "update-server-info"], check=True)
        (ds / "hooks" / "post-update").write_bytes(b"#!/bin/sh\n# " + SECRET_BYTES + b"\n")
        obj = ds / "annex" / "objects" / "f14" / "c15" / "MD5E-s3--abc.txt" / "MD5E-s3--abc.txt"
        obj.parent.mkdir(parents=True)
        obj.write_bytes(b"abc")
        (ds / "archives").mkdir(exist_ok=True)
        (ds / "archives" / "archive.7z").write_bytes(ARCHIVE)
        (ds / "logs").mkdir(exist_ok=True)
        (ds / "logs" / "HEAD").write_bytes(SECRET_BYTES)
        (ds / "description").write_bytes(SECRET_BYTES)
        datasets[dsid] = ds
    for rel in ("dss/access/tokens/t1.json", "dss/access/acl.json", "dss/audit/2026-12-03.jsonl",
                "dss/outbox/x/e.json", "dss/outbox-dead/x/e.json", "dss/outbox-quarantine/q.json",
                "dss/logs/deliver.log", "dss/locks/git-sync.lock", "dss/repair-queue/store/a/b",
                "dss/events/2026-12-03/e1.json", "dss/checksums/x.json", "error_logs/x.log",
                f"dss/bundles/{PRIVATE}/log.jsonl", f"dss/bundles/{PUBLIC}/log.jsonl"):
        p = store / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(SECRET_BYTES if "bundles" not in rel else b'{"version": "v1"}\n')
    sub = subscriptions.create(store, "https://ci.example.org/h", SECRET_BYTES.decode())
    datasets["subscription"] = subscriptions.subscription_path(store, sub.id)
    return datasets


@pytest.fixture
def tree(store: Path) -> dict[str, Path]:
    return _tree(store)


@pytest.fixture
def client(store: Path, tree: dict[str, Path]) -> TestClient:
    return TestClient(create_app(store, GateDouble.from_spec(SPEC)))


def ds_url(dsid: str, rel: str) -> str:
    return f"/ria/{dataset_relpath(dsid)}/{rel}"


def _dss_error(res: Response, status: int, code: str) -> None:
    assert res.status_code == status, res.text
    doc = res.json()
    assert doc["status"] == status and doc["code"] == code and isinstance(doc["title"], str)
    assert SECRET_BYTES not in res.content


# --- what is served, to whom ------------------------------------------------------------------------

def test_the_store_layout_version_and_config_are_public(client: TestClient, store: Path) -> None:
    res = client.get("/ria/ria-layout-version")
    assert res.status_code == 200 and res.content == (store / "ria-layout-version").read_bytes()
    res = client.get("/ria/dss/config.json")
    assert res.status_code == 200 and res.content == (store / "dss" / "config.json").read_bytes()


def test_a_public_datasets_git_and_annex_files_go_to_anyone(client: TestClient,
                                                            tree: dict[str, Path]) -> None:
    ds = tree[PUBLIC]
    for rel in ("HEAD", "info/refs", "ria-layout-version",
                "annex/objects/f14/c15/MD5E-s3--abc.txt/MD5E-s3--abc.txt", "archives/archive.7z"):
        res = client.get(ds_url(PUBLIC, rel))
        assert res.status_code == 200, rel
        assert res.content == (ds / rel).read_bytes()
    assert client.get("/ria/alias/pub/HEAD").content == (ds / "HEAD").read_bytes()


def test_head_answers_the_length_without_a_body(client: TestClient) -> None:
    res = client.head(ds_url(PUBLIC, "archives/archive.7z"))
    assert res.status_code == 200 and res.headers["content-length"] == str(len(ARCHIVE))
    assert res.content == b"" and res.headers["accept-ranges"] == "bytes"


def test_the_served_config_is_the_public_one(client: TestClient, tree: dict[str, Path]) -> None:
    res = client.get(ds_url(PUBLIC, "config"))
    assert res.status_code == 200 and res.content == public_git_config(tree[PUBLIC])
    assert b'[datalad "ora-remote"]\n\tuuid = 11111111-2222-4333-8444-555555555555\n' in res.content
    assert SECRET_BYTES not in res.content and b"origin" not in res.content


def test_a_private_dataset_is_401_with_a_basic_challenge_for_anonymous(client: TestClient) -> None:
    for url in (ds_url(PRIVATE, "HEAD"), ds_url(PRIVATE, "config"), f"/ria/dss/bundles/{PRIVATE}/log.jsonl"):
        res = client.get(url)
        _dss_error(res, 401, "unauthorized")
        assert res.headers["www-authenticate"] == 'Basic realm="dss"'


def test_a_private_dataset_is_403_for_a_known_caller_without_the_right(client: TestClient) -> None:
    res = client.get(ds_url(PRIVATE, "HEAD"), headers={"Authorization": "Bearer tok-outsider"})
    _dss_error(res, 403, "forbidden")


def test_a_bad_credential_is_401_with_a_basic_challenge(client: TestClient) -> None:
    res = client.get(ds_url(PUBLIC, "HEAD"), auth=("x", "wrong-token"))
    _dss_error(res, 401, "unauthorized")
    assert res.headers["www-authenticate"] == 'Basic realm="dss"'


def test_a_reader_gets_a_private_dataset_with_the_token_as_basic_password(
        client: TestClient, tree: dict[str, Path]) -> None:
    res = client.get(ds_url(PRIVATE, "HEAD"), auth=("anyone", "tok-reader"))
    assert res.status_code == 200 and res.content == (tree[PRIVATE] / "HEAD").read_bytes()
    res = client.get(f"/ria/dss/bundles/{PRIVATE}/log.jsonl", headers=READER)
    assert res.status_code == 200 and res.content == b'{"version": "v1"}\n'


def test_public_bundles_go_to_anyone(client: TestClient) -> None:
    assert client.get(f"/ria/dss/bundles/{PUBLIC}/log.jsonl").status_code == 200


# --- Range ------------------------------------------------------------------------------------------

def test_a_range_is_206_with_those_bytes(client: TestClient) -> None:
    res = client.get(ds_url(PUBLIC, "archives/archive.7z"), headers={"Range": "bytes=100-199"})
    assert res.status_code == 206 and res.content == ARCHIVE[100:200]
    assert res.headers["content-range"] == f"bytes 100-199/{len(ARCHIVE)}"
    res = client.get(ds_url(PUBLIC, "archives/archive.7z"), headers={"Range": "bytes=-10"})
    assert res.status_code == 206 and res.content == ARCHIVE[-10:]


def test_a_range_past_the_end_is_416(client: TestClient) -> None:
    res = client.get(ds_url(PUBLIC, "archives/archive.7z"), headers={"Range": f"bytes={len(ARCHIVE)}-"})
    _dss_error(res, 416, "range_not_satisfiable")
    assert res.headers["content-range"] == f"bytes */{len(ARCHIVE)}"


def test_one_range_past_the_end_among_good_ones_is_416(client: TestClient) -> None:
    res = client.get(ds_url(PUBLIC, "archives/archive.7z"),
                     headers={"Range": f"bytes=0-1,{len(ARCHIVE) + 5}-"})
    _dss_error(res, 416, "range_not_satisfiable")


def test_a_malformed_range_is_416(client: TestClient) -> None:
    res = client.get(ds_url(PUBLIC, "archives/archive.7z"), headers={"Range": "pages=1-2"})
    _dss_error(res, 416, "range_not_satisfiable")
    assert res.json()["title"].startswith("Range 'pages=1-2' is not a byte range (bytes=FIRST-LAST)")
    assert res.headers["Content-Range"] == f"bytes */{len(ARCHIVE)}"


def test_a_backwards_range_is_416(client: TestClient) -> None:
    res = client.get(ds_url(PUBLIC, "archives/archive.7z"), headers={"Range": "bytes=9-3"})
    _dss_error(res, 416, "range_not_satisfiable")
    assert res.json()["title"].startswith("Range 'bytes=9-3' ends before it starts")


def test_too_many_ranges_are_416(client: TestClient) -> None:
    many = ",".join(f"{i}-{i}" for i in range(17))
    res = client.get(ds_url(PUBLIC, "archives/archive.7z"), headers={"Range": f"bytes={many}"})
    _dss_error(res, 416, "range_not_satisfiable")
    assert "more than 16" in res.json()["title"]


# --- never served -----------------------------------------------------------------------------------

NEVER = ["dss/access/tokens/t1.json", "dss/access/acl.json", "dss/audit/2026-12-03.jsonl",
         "dss/outbox/x/e.json", "dss/outbox-dead/x/e.json", "dss/outbox-quarantine/q.json",
         "dss/logs/deliver.log", "dss/locks/git-sync.lock", "dss/repair-queue/store/a/b",
         "dss/events/2026-12-03/e1.json", "dss/checksums/x.json", "error_logs/x.log"]
NEVER_IN_A_DATASET = ["hooks/post-update", "logs/HEAD", "description", "annex", "objects"]


@pytest.mark.parametrize("rel", NEVER)
def test_store_files_outside_the_allow_list_are_404(client: TestClient, rel: str) -> None:
    for headers in ({}, READER):
        _dss_error(client.get(f"/ria/{rel}", headers=headers), 404, "not_found")


@pytest.mark.parametrize("rel", NEVER_IN_A_DATASET)
def test_dataset_files_outside_the_allow_list_are_404(client: TestClient, rel: str) -> None:
    for dsid in (PUBLIC, PRIVATE):
        _dss_error(client.get(ds_url(dsid, rel), headers=READER), 404, "not_found")
    _dss_error(client.get(f"/ria/alias/pub/{rel}"), 404, "not_found")


def test_subscription_files_are_never_served(client: TestClient, tree: dict[str, Path], store: Path) -> None:
    rel = tree["subscription"].relative_to(store)
    _dss_error(client.get(f"/ria/{rel}", headers=READER), 404, "not_found")


def test_directories_are_not_listed(client: TestClient) -> None:
    for url in ("/ria/", "/ria/dss", ds_url(PUBLIC, "annex/objects/f14"), "/ria/alias/pub",
                f"/ria/{PUBLIC[:3]}"):
        res = client.get(url)
        assert res.status_code in (400, 404) and res.json()["code"] in ("not_found", "illegal_arguments")


def test_an_unknown_dataset_is_401_anonymously_and_404_to_a_reader(client: TestClient, store: Path) -> None:
    other = "0000aaaa-0000-4000-8000-000000000000"
    _dss_error(client.get(ds_url(other, "HEAD")), 401, "unauthorized")
    admin = TestClient(create_app(store, GateDouble(
        {"t": Identity("a", frozenset({"adm"}))}, admins={"adm"})))
    _dss_error(admin.get(ds_url(other, "HEAD"), headers={"Authorization": "Bearer t"}), 404, "not_found")


def test_writes_are_405(client: TestClient, tree: dict[str, Path]) -> None:
    before = (tree[PUBLIC] / "HEAD").read_bytes()
    for method in ("PUT", "POST", "DELETE"):
        res = client.request(method, ds_url(PUBLIC, "HEAD"), content=b"ref: refs/heads/evil\n")
        assert res.status_code == 405 and res.json()["code"] == "method_not_allowed"
    assert (tree[PUBLIC] / "HEAD").read_bytes() == before


# --- symlinks ---------------------------------------------------------------------------------------

def test_a_symlink_out_of_the_store_is_refused(client: TestClient, tree: dict[str, Path],
                                               tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(SECRET_BYTES)
    link = tree[PUBLIC] / "annex" / "objects" / "aaa" / "bbb" / "K" / "K"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    _dss_error(client.get(ds_url(PUBLIC, "annex/objects/aaa/bbb/K/K")), 403, "forbidden")


def test_a_symlink_from_a_public_dataset_into_a_private_one_is_refused(
        client: TestClient, tree: dict[str, Path]) -> None:
    (tree[PRIVATE] / "archives" / "archive.7z").write_bytes(SECRET_BYTES)
    link = tree[PUBLIC] / "archives" / "leak.7z"
    link.symlink_to(tree[PRIVATE] / "archives" / "archive.7z")
    _dss_error(client.get(ds_url(PUBLIC, "archives/leak.7z"), headers=READER), 403, "forbidden")
    gate = client.app.state.gate  # type: ignore[attr-defined]
    assert gate.audited[-1] | {"remote": None} == {
        "identity": "rita", "remote": None, "method": "GET", "path": ds_url(PUBLIC, "archives/leak.7z"),
        "dataset": PUBLIC, "status": 403}


def test_a_symlinked_dataset_directory_part_is_refused(client: TestClient, tree: dict[str, Path]) -> None:
    (tree[PUBLIC] / "archives" / "secret-dir").symlink_to(tree[PRIVATE] / "logs")
    _dss_error(client.get(ds_url(PUBLIC, "archives/secret-dir/HEAD")), 403, "forbidden")


def test_a_dataset_directory_that_is_a_symlink_to_another_dataset_is_refused(
        client: TestClient, store: Path, tree: dict[str, Path]) -> None:
    impostor = "5e6f7a8b-0000-4000-8000-0000000000ff"  # a public id whose directory is the private one
    spec = SPEC | {"public": [PUBLIC, impostor]}
    (store / impostor[:3] / impostor[3:]).symlink_to(tree[PRIVATE])
    public = TestClient(create_app(store, GateDouble.from_spec(spec)))
    _dss_error(public.get(ds_url(impostor, "HEAD")), 403, "forbidden")


def test_a_symlinked_bundles_directory_is_refused(client: TestClient, store: Path) -> None:
    log = store / "dss" / "bundles" / PUBLIC / "log.jsonl"
    log.unlink()
    log.symlink_to(store / "dss" / "audit" / "2026-12-03.jsonl")
    _dss_error(client.get(f"/ria/dss/bundles/{PUBLIC}/log.jsonl"), 403, "forbidden")


def test_an_alias_leading_out_of_the_store_is_404(client: TestClient, store: Path, tmp_path: Path) -> None:
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "HEAD").write_bytes(SECRET_BYTES)
    (store / "alias" / "evil").symlink_to(tmp_path / "evil")
    _dss_error(client.get("/ria/alias/evil/HEAD"), 404, "not_found")


# --- traversal, with a client that sends the path as written ----------------------------------------

@pytest.fixture
def server(store: Path, tree: dict[str, Path], tmp_path: Path) -> Iterator[ApiServer]:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        yield srv


def raw_get(srv: ApiServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = srv.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


PUB = dataset_relpath(PUBLIC)
TRAVERSALS = {
    "dot-dot": f"/ria/{PUB}/../../dss/access/acl.json",
    "dot-dot-to-hooks": f"/ria/{PUB}/objects/../hooks/post-update",
    "encoded-dot-dot": f"/ria/{PUB}/%2e%2e/%2e%2e/dss/audit/2026-12-03.jsonl",
    "mixed-case-encoded-dot-dot": f"/ria/{PUB}/objects/%2E%2e/hooks/post-update",
    "encoded-slash": f"/ria/{PUB}/objects%2f..%2f..%2fhooks%2fpost-update",
    "encoded-backslash": f"/ria/{PUB}/objects%5c..%5chooks%5cpost-update",
    "absolute": "/ria//etc/passwd",
    "absolute-in-dataset": f"/ria/{PUB}//etc/passwd",
    "nul": f"/ria/{PUB}/HEAD%00.txt",
    "dot": f"/ria/{PUB}/./hooks/post-update",
    "above-ria": "/ria/../ria/dss/access/acl.json",
}


@pytest.mark.parametrize("name", sorted(TRAVERSALS))
def test_traversal_is_refused_with_a_dss_error(server: ApiServer, name: str) -> None:
    status, data = raw_get(server, TRAVERSALS[name])
    assert 400 <= status < 500, (status, data)
    assert SECRET_BYTES not in data and b"root:" not in data
    doc = json.loads(data)
    assert doc["status"] == status and doc["code"] in ("illegal_arguments", "not_found")


def test_the_real_server_serves_a_public_file_and_challenges_for_a_private_one(server: ApiServer,
                                                                              tree: dict[str, Path]) -> None:
    status, data = raw_get(server, f"/ria/{PUB}/HEAD")
    assert (status, data) == (200, (tree[PUBLIC] / "HEAD").read_bytes())
    status, data = raw_get(server, f"/ria/{dataset_relpath(PRIVATE)}/HEAD")
    assert status == 401 and json.loads(data)["code"] == "unauthorized"


def test_our_remotes_http_backend_reads_the_tree(server: ApiServer) -> None:
    backend = HttpBackend(f"{server.url}/ria")
    rel = f"{PUB}/archives/archive.7z"
    info = backend.info(rel)
    assert info is not None and info.size == len(ARCHIVE)
    assert backend.read_range(rel, 1000, 50) == ARCHIVE[1000:1050]
    assert backend.read_range(rel, len(ARCHIVE), 10) == b""
    assert backend.info(f"{PUB}/annex/objects/f14/c15/MD5E-s3--nope.txt/MD5E-s3--nope.txt") is None


def test_our_remotes_http_backend_reads_a_private_dataset_with_netrc(server: ApiServer, tree: dict[str, Path]
                                                                    ) -> None:
    netrc = Path(os.environ["HOME"]) / ".netrc"
    netrc.write_text("machine 127.0.0.1 login dss password tok-reader\n")
    netrc.chmod(0o600)
    backend = HttpBackend(f"{server.url}/ria")
    rel = f"{dataset_relpath(PRIVATE)}/archives/archive.7z"
    assert backend.read_range(rel, 0, 16) == (tree[PRIVATE] / "archives" / "archive.7z").read_bytes()[:16]

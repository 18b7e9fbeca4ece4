"""Collections: the store side (service/collections.py), then `/v1/collections` (owners, admins, links
to files, bundles and collections, paging), a real server end to end, a named test for each bad
input (the exact DSS error body and the store unchanged), and `dss sync` never carrying them."""

from __future__ import annotations

import json
import stat
import uuid as uuidlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from api_data import Pushed, copy_sample
from api_server import api_server, served
from cloud_servers import HOST, free_port
from conftest import PLAIN_DSID, require_tool
from fastapi.testclient import TestClient
from gate_double import GateDouble
from httpx import Response

from dss_remote.access import tokens
from dss_remote.admin.store import add_mirror
from dss_remote.cli import main
from dss_remote.config import paths
from dss_remote.config.mirrors import Mirror
from dss_remote.server import dss_mapping
from dss_remote.server.app import create_app
from dss_remote.server.write_access import READ_ONLY_RETRY_AFTER
from dss_remote.service import collections
from dss_remote.service.collections import Collection, CollectionConflictError, Item
from ria_store.errors import NotFoundError

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
CAROL = {"Authorization": "Bearer tok-carol"}
ADMIN = {"Authorization": "Bearer tok-admin"}
V1 = "2026-11-22T031533.123456Z"
V2 = "2026-11-23T000000.000000Z"
NO_VERSION = "2020-01-01T000000.000000Z"
UUID_HINT = "is not a UUID like 4dc8313d-2567-4475-a4a0-17cdebad9c1d"
VERSION_HINT = "is not a version like 2026-11-22T031533.123456Z"


def _spec(dsid: str) -> dict[str, Any]:
    return {"tokens": {"tok-alice": {"user": "alice", "groups": ["lab"]},
                       "tok-bob": {"user": "bob", "groups": ["other"]},
                       "tok-carol": {"user": "carol", "groups": ["lab"]},
                       "tok-admin": {"user": "root", "groups": ["admins"]}},
            "readers": {dsid: ["lab"]}, "admins": ["admins"]}


def _new_uuid() -> str:
    return str(uuidlib.uuid4())


# --- the store side --------------------------------------------------------------------------------

def _doc(uuid: str, version: str = V1, owner: str = "alice", **over: Any) -> Collection:
    fields: dict[str, Any] = {"name": "n", "description": "d", "details": {"k": 1},
                              "contents": (Item("bundle", PLAIN_DSID, V1),), "created": "x"} | over
    return Collection(uuid, version, owner, **fields)


def test_a_version_is_written_once_private_and_read_back(store: Path) -> None:
    u = _new_uuid()
    assert collections.put(store, _doc(u)) is True
    path = store / paths.COLLECTIONS / u / f"{V1}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "uuid": u, "version": V1, "owner": "alice", "created": "x", "name": "n", "description": "d",
        "details": {"k": 1}, "contents": [{"type": "bundle", "uuid": PLAIN_DSID, "version": V1}]}
    assert collections.load(store, u) == _doc(u)
    assert collections.put(store, _doc(u, created="later")) is False, "identical: nothing written"
    with pytest.raises(CollectionConflictError, match=f"collection {u} version {V1} already exists "
                       "with other content"):
        collections.put(store, _doc(u, name="other"))
    assert collections.load(store, u).name == "n"


def test_another_owner_cannot_take_a_uuid(store: Path) -> None:
    u = _new_uuid()
    collections.put(store, _doc(u))
    with pytest.raises(CollectionConflictError, match=f"collection uuid {u} is taken; choose another uuid"):
        collections.put(store, _doc(u, V2, owner="bob"))
    assert collections.versions(store, u) == [V1]


def test_a_patch_is_a_new_version_after_the_newest_even_when_the_clock_is_behind(store: Path) -> None:
    u = _new_uuid()
    collections.put(store, _doc(u))
    past = datetime(2001, 1, 1, tzinfo=timezone.utc)
    extra = Item("file", PLAIN_DSID, V2, "/a")
    new = collections.patch(store, u, V1, "alice", changes={"name": "m"}, now=past,
                            add=[extra, extra], remove=[Item("bundle", PLAIN_DSID, V1)])
    assert new.version == "2026-11-22T031533.123457Z" and collections.versions(store, u) == [V1, new.version]
    assert (new.name, new.description, new.contents) == ("m", "d", (extra,))
    assert collections.load(store, u, V1) == _doc(u), "the patched version is unchanged"
    with pytest.raises(NotFoundError):
        collections.patch(store, u, V1, "bob", changes={"name": "x"})


def test_a_delete_removes_every_version(store: Path) -> None:
    u = _new_uuid()
    collections.put(store, _doc(u))
    collections.put(store, _doc(u, V2))
    assert collections.delete(store, u) == 2
    assert not (store / paths.COLLECTIONS / u).exists() and collections.versions(store, u) == []
    assert collections.delete(store, u) == 0
    with pytest.raises(NotFoundError):
        collections.load(store, u)


def test_owned_lists_each_version_of_the_owners_collections(store: Path) -> None:
    a, b = sorted([_new_uuid(), _new_uuid()])
    collections.put(store, _doc(b, V2))
    collections.put(store, _doc(a))
    collections.put(store, _doc(a, V2))
    collections.put(store, _doc(_new_uuid(), owner="bob"))
    assert collections.owned(store, "alice") == [(a, V1), (a, V2), (b, V2)]


def test_dedup_keeps_the_first_of_each(store: Path) -> None:
    x, y = Item("file", PLAIN_DSID, V1), Item("file", PLAIN_DSID, V1, "/p")
    assert collections.dedup([y, x, y, x]) == [y, x]


def test_dss_sync_never_carries_collections_to_a_mirror(store: Path, dsdir: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    add_mirror(store, Mirror(url=f"file://{mirror}", name="backup"))
    u = _new_uuid()
    collections.put(store, _doc(u, owner="secret-owner@example.org", name="private-collection-name"))
    (dsdir / "HEAD").write_text("ref: refs/heads/main\n")

    assert main(["sync", str(store), "--dataset", PLAIN_DSID, "--git-only"]) == 0
    assert main(["sync", str(store)]) == 0

    assert (mirror / "dss/config.json").is_file() and (mirror / dsdir.relative_to(store) / "HEAD").is_file()
    assert not (mirror / paths.COLLECTIONS).exists()
    for p in mirror.rglob("*"):
        assert u not in p.name, p
        if p.is_file():
            data = p.read_bytes()
            assert b"private-collection-name" not in data and b"secret-owner" not in data, p


# --- the API ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, sample_template: Pushed) -> Pushed:
    """A store with a private dataset (read by group lab) of two versions."""
    return copy_sample(sample_template, tmp_path_factory.mktemp("collections"))


@pytest.fixture
def client(pushed: Pushed, tmp_path: Path) -> TestClient:
    return TestClient(create_app(pushed.store, GateDouble.from_spec(_spec(pushed.dataset_id)),
                                 cache_dir=tmp_path / "cache"))


def _files(client: TestClient, p: Pushed) -> list[dict[str, Any]]:
    res = client.get(f"/v1/bundles/{p.dataset_id}?version={p.versions[0]}", headers=ALICE)
    assert res.status_code == 200, res.text
    files: list[dict[str, Any]] = res.json()["bundle"]["files"]
    return files


def _links(client: TestClient, p: Pushed) -> list[dict[str, str]]:
    f = _files(client, p)[0]
    return [{"type": "bundle", "uuid": p.dataset_id, "version": p.versions[0]},
            {"type": "file", "uuid": f["uuid"], "version": f["version"], "path": ""}]


def _body(contents: list[dict[str, str]], **over: Any) -> dict[str, Any]:
    return {"name": "my selection", "description": "for the paper", "details": {"lab": "x"},
            "contents": contents} | over


def _put(client: TestClient, body: dict[str, Any], *, uuid: str | None = None, version: str = V1,
         headers: dict[str, str] = ALICE, status: int = 201) -> str:
    uuid = uuid or _new_uuid()
    res = client.put(f"/v1/collections?replica=aws&uuid={uuid}&version={version}", json=body, headers=headers)
    assert res.status_code == status, res.text
    assert res.json() == {"uuid": uuid, "version": version}
    return uuid


def test_the_owner_puts_gets_patches_lists_and_deletes(client: TestClient, pushed: Pushed) -> None:
    links = _links(client, pushed)
    u = _put(client, _body(links))
    got = client.get(f"/v1/collections/{u}?replica=aws", headers=ALICE)
    assert got.status_code == 200
    doc = got.json()
    assert doc == {"uuid": u, "version": V1, "owner": "alice", "created": doc["created"],
                   "name": "my selection", "description": "for the paper", "details": {"lab": "x"},
                   "contents": links}
    patched = client.patch(f"/v1/collections/{u}?replica=aws&version={V1}", headers=ALICE,
                           json={"name": "renamed", "remove_contents": [links[0]],
                                 "add_contents": [{"type": "collection", "uuid": u, "version": V1}]})
    assert patched.status_code == 200, patched.text
    v2 = patched.json()["version"]
    assert patched.json() == {"uuid": u, "version": v2} and v2 > V1
    newest = client.get(f"/v1/collections/{u}", headers=ALICE).json()
    assert (newest["version"], newest["name"], newest["description"]) == (v2, "renamed", "for the paper")
    assert newest["contents"] == [links[1], {"type": "collection", "uuid": u, "version": V1}]
    assert client.get(f"/v1/collections/{u}?version={V1}", headers=ALICE).json()["name"] == "my selection"
    listed = client.get("/v1/collections?replica=aws", headers=ALICE)
    assert listed.status_code == 200
    assert {"uuid": u, "version": V1} in listed.json()["collections"]
    assert {"uuid": u, "version": v2} in listed.json()["collections"]
    gone = client.delete(f"/v1/collections/{u}?replica=aws", headers=ALICE)
    assert gone.status_code == 200 and gone.json() == {}
    assert client.get(f"/v1/collections/{u}", headers=ALICE).status_code == 404
    assert collections.versions(pushed.store, u) == []


def test_an_identical_put_is_200_and_a_different_one_409(client: TestClient, pushed: Pushed) -> None:
    body = _body(_links(client, pushed))
    u = _put(client, body)
    _put(client, body, uuid=u, status=200)
    res = client.put(f"/v1/collections?uuid={u}&version={V1}", json=body | {"name": "other"}, headers=ALICE)
    _refused(res, 409, "collection_already_exists", f"collection {u} version {V1} already exists with "
             "other content; versions never change: PUT a new version or PATCH this one")
    res = client.put(f"/v1/collections?uuid={u}&version={V2}", json=body, headers=CAROL)
    _refused(res, 409, "collection_already_exists", f"collection uuid {u} is taken; choose another uuid")
    assert collections.versions(pushed.store, u) == [V1]


def test_contents_are_deduplicated_in_their_first_order(client: TestClient, pushed: Pushed) -> None:
    a, b = _links(client, pushed)
    u = _put(client, _body([b, a, b, a, {**a}]))
    assert client.get(f"/v1/collections/{u}", headers=ALICE).json()["contents"] == [b, a]


def test_another_user_gets_404_and_an_admin_reads_and_deletes(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body(_links(client, pushed)))
    title = f"no collection {u} of bob; list yours with GET /v1/collections"
    _refused(client.get(f"/v1/collections/{u}", headers=BOB), 404, "not_found", title)
    _refused(client.patch(f"/v1/collections/{u}?version={V1}", json={"name": "x"}, headers=BOB),
             404, "not_found", title)
    _refused(client.delete(f"/v1/collections/{u}", headers=BOB), 404, "not_found", title)
    assert u not in json.dumps(client.get("/v1/collections", headers=BOB).json())
    assert client.get(f"/v1/collections/{u}", headers=ADMIN).json()["owner"] == "alice"
    _refused(client.patch(f"/v1/collections/{u}?version={V1}", json={"name": "x"}, headers=ADMIN), 403,
             "forbidden", f"collection {u} is alice's; only its owner may change it (admins may read "
             "and delete it)")
    assert collections.versions(pushed.store, u) == [V1]
    assert client.delete(f"/v1/collections/{u}", headers=ADMIN).status_code == 200
    assert collections.versions(pushed.store, u) == []


def test_a_link_to_a_collection_must_be_one_the_caller_may_read(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    link = {"type": "collection", "uuid": u, "version": V1}
    mine = _put(client, _body([link]))
    assert client.get(f"/v1/collections/{mine}", headers=ALICE).json()["contents"] == [link]
    before = _snapshot(pushed.store)
    res = client.put(f"/v1/collections?uuid={_new_uuid()}&version={V1}", json=_body([link]), headers=CAROL)
    _refused(res, 422, "invalid_link", f"contents links to collection {u} version {V1}, which does "
             "not exist or which carol may not read; link only to versions that exist and that you may read")
    assert _snapshot(pushed.store) == before


def test_the_list_is_paged_as_the_dss_pages_it(client: TestClient, pushed: Pushed) -> None:
    mine = sorted(_new_uuid() for _ in range(12))
    for u in mine:
        collections.put(pushed.store, Collection(u, V1, "paging-user", "n", "d", {}, ()))
    spec = _spec(pushed.dataset_id)
    spec["tokens"]["tok-pager"] = {"user": "paging-user", "groups": []}
    pager = TestClient(create_app(pushed.store, GateDouble.from_spec(spec)))
    pager_auth = {"Authorization": "Bearer tok-pager"}
    first = pager.get("/v1/collections?replica=aws&per_page=10", headers=pager_auth)
    assert first.status_code == 206
    assert first.json() == {"collections": [{"uuid": u, "version": V1} for u in mine[:10]]}
    assert first.headers["X-OpenAPI-Paginated-Content-Key"] == "collections"
    assert first.headers["Link"] == ('<http://testserver/v1/collections?replica=aws&per_page=10&'
                                     'start_at=10>; rel="next"')
    last = pager.get("/v1/collections?replica=aws&per_page=10&start_at=10&replica=aws",
                     headers=pager_auth)
    assert last.status_code == 200 and "Link" not in last.headers
    assert last.json() == {"collections": [{"uuid": u, "version": V1} for u in mine[10:]]}


def test_every_write_is_audited_refusals_too(pushed: Pushed, tmp_path: Path) -> None:
    gate = GateDouble.from_spec(_spec(pushed.dataset_id))
    c = TestClient(create_app(pushed.store, gate, cache_dir=tmp_path / "cache"))
    u = _put(c, _body([]))
    c.put(f"/v1/collections?uuid={u}&version={V1}", json=_body([]) | {"name": "x"}, headers=ALICE)
    c.delete(f"/v1/collections/{u}", headers=ALICE)
    got = [(r["method"], r["status"], r.get("collection"), r.get("code")) for r in gate.audited]
    assert got == [("PUT", 201, u, None), ("PUT", 409, u, "collection_already_exists"),
                   ("DELETE", 200, u, None)]
    assert all(r["identity"] == "alice" and r["write"] for r in gate.audited)


def test_the_spec_describes_every_route_as_the_hca_client_needs(client: TestClient) -> None:
    spec = client.get("/v1/swagger.json").json()["paths"]
    ops = {(path, method): op for path in ("/collections", "/collections/{uuid}")
           for method, op in spec[path].items()}
    assert set(ops) == {("/collections", "get"), ("/collections", "put"), ("/collections/{uuid}", "get"),
                        ("/collections/{uuid}", "patch"), ("/collections/{uuid}", "delete")}
    for op in ops.values():
        assert op["security"] == [{"bearer": []}] and op["responses"]
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        assert all("type" in prop for prop in body.get("properties", {}).values())
    assert "206" in ops[("/collections", "get")]["responses"]


def test_end_to_end_through_a_real_server(pushed: Pushed, tmp_path: Path) -> None:
    with api_server(pushed.store, _spec(pushed.dataset_id), tmp_path / "srv") as srv:
        files = requests.get(f"{srv.url}/v1/bundles/{pushed.dataset_id}", headers=ALICE, timeout=30)
        f = files.json()["bundle"]["files"][0]
        u = _new_uuid()
        links = [{"type": "file", "uuid": f["uuid"], "version": f["version"]}]
        put = requests.put(f"{srv.url}/v1/collections?replica=aws&uuid={u}&version={V1}", headers=ALICE,
                           json=_body(links), timeout=30)
        assert put.status_code == 201 and put.json() == {"uuid": u, "version": V1}
        patched = requests.patch(f"{srv.url}/v1/collections/{u}?replica=aws&version={V1}", headers=ALICE,
                                 json={"details": {"round": 2}}, timeout=30)
        assert patched.status_code == 200
        got = requests.get(f"{srv.url}/v1/collections/{u}?replica=aws", headers=ALICE, timeout=30).json()
        assert (got["version"], got["details"], got["contents"]) == (patched.json()["version"], {"round": 2},
                                                                     links)
        listed = requests.get(f"{srv.url}/v1/collections", headers=ALICE, timeout=30).json()["collections"]
        assert {"uuid": u, "version": V1} in listed
        assert requests.delete(f"{srv.url}/v1/collections/{u}", headers=ALICE, timeout=30).status_code == 200
        assert requests.get(f"{srv.url}/v1/collections/{u}", headers=ALICE, timeout=30).status_code == 404
        audited = [(r["method"], r["status"]) for r in srv.audited() if r.get("collection") == u]
    assert audited == [("PUT", 201), ("PATCH", 200), ("DELETE", 200)]


# --- bad input: a named test each ------------------------------------------------------------------

def _snapshot(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns)
                  for p in root.rglob("*") if not p.name.endswith(".lock"))


def _refused(res: Response | requests.Response, status: int, code: str, title: str) -> None:
    assert res.status_code == status, res.text
    assert res.json() == {"status": status, "code": code, "title": title}
    assert "Traceback" not in res.text and "/tmp/" not in res.text


@pytest.fixture
def unchanged(pushed: Pushed) -> Iterator[None]:
    """The store is the same after the test (a refused write wrote nothing)."""
    before = _snapshot(pushed.store)
    yield
    assert _snapshot(pushed.store) == before, "a refused write changed the store"


def _put_refused(client: TestClient, body: Any, status: int, code: str, title: str, *,
                 query: str | None = None, headers: dict[str, str] = ALICE) -> None:
    query = query if query is not None else f"uuid={_new_uuid()}&version={V1}"
    _refused(client.put(f"/v1/collections?{query}", json=body, headers=headers), status, code, title)


def _items(n: int, p: Pushed) -> list[dict[str, str]]:
    return [{"type": "bundle", "uuid": p.dataset_id, "version": p.versions[0], "path": f"/{i}"}
            for i in range(n)]


def test_put_with_more_than_1000_items(client: TestClient, pushed: Pushed, unchanged: None) -> None:
    _put_refused(client, _body(_items(1001, pushed)), 400, "illegal_arguments",
                 "contents has 1001 items, more than the 1000 one request may list; send the rest with "
                 "PATCH /v1/collections/UUID (add_contents)")


def test_put_of_1000_items_is_fine(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body(_items(1000, pushed)))
    assert len(client.get(f"/v1/collections/{u}", headers=ALICE).json()["contents"]) == 1000


def test_patch_adding_more_than_1000_items(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    before = _snapshot(pushed.store)
    _refused(client.patch(f"/v1/collections/{u}?version={V1}", json={"add_contents": _items(1001, pushed)},
                          headers=ALICE), 400, "illegal_arguments",
             "add_contents has 1001 items, more than the 1000 one request may list; send the rest with "
             "PATCH /v1/collections/UUID (add_contents)")
    assert _snapshot(pushed.store) == before


def test_put_with_a_version_that_does_not_parse(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([]), 400, "illegal_arguments", f"version '2026-11-22' {VERSION_HINT}",
                 query=f"uuid={_new_uuid()}&version=2026-11-22")


def test_put_with_an_item_version_that_does_not_parse(client: TestClient, pushed: Pushed,
                                                      unchanged: None) -> None:
    item = {"type": "bundle", "uuid": pushed.dataset_id, "version": "latest"}
    _put_refused(client, _body([item]), 400, "illegal_arguments",
                 f"contents[0].version 'latest' {VERSION_HINT}")


def test_patch_with_a_version_that_does_not_parse(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    before = _snapshot(pushed.store)
    _refused(client.patch(f"/v1/collections/{u}?version=..%2f..", json={"name": "x"}, headers=ALICE), 400,
             "illegal_arguments", f"version '../..' {VERSION_HINT}")
    assert _snapshot(pushed.store) == before


def test_put_without_a_version(client: TestClient, unchanged: None) -> None:
    res = client.put(f"/v1/collections?uuid={_new_uuid()}", json=_body([]), headers=ALICE)
    assert res.status_code == 400 and res.json()["title"].startswith(
        "version is required: the new collection's version, e.g. ")


def test_patch_without_a_version(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    before = _snapshot(pushed.store)
    _refused(client.patch(f"/v1/collections/{u}", json={"name": "x"}, headers=ALICE), 400,
             "illegal_arguments", "version is required: the version of the collection this patch changes")
    assert _snapshot(pushed.store) == before


@pytest.mark.parametrize("method, path", [("PUT", f"/v1/collections?uuid={PLAIN_DSID}&version={V1}"),
                                          ("GET", "/v1/collections"),
                                          ("GET", f"/v1/collections/{PLAIN_DSID}"),
                                          ("PATCH", f"/v1/collections/{PLAIN_DSID}?version={V1}"),
                                          ("DELETE", f"/v1/collections/{PLAIN_DSID}")])
def test_an_anonymous_caller_gets_401(client: TestClient, method: str, path: str, unchanged: None) -> None:
    res = client.request(method, path, json=_body([]) if method in ("PUT", "PATCH") else None)
    _refused(res, 401, "unauthorized", "collections belong to a user needs a signed-in caller: sign in with "
             "a dss token or a JWT from a trusted issuer (Authorization: Bearer ...)")
    assert "Bearer" in res.headers["www-authenticate"]


def test_a_write_to_a_read_only_server_is_503_with_retry_after(pushed: Pushed, tmp_path: Path) -> None:
    _, token = tokens.create(pushed.store, "alice", ["lab"], None)
    before = _snapshot(pushed.store)  # after the token: the refused writes are what must change nothing
    port = free_port()
    url = f"http://{HOST}:{port}"
    command = [require_tool("dss"), "serve", str(pushed.store), "--port", str(port), "--read-only",
               "--cache-dir", str(tmp_path / "cache")]
    auth = {"Authorization": f"Bearer {token}"}
    title = ("this server is read-only (dss serve --read-only): writes are refused; retry later or write "
             "through a server started without --read-only")
    with served(command, url, tmp_path / "serve.log", probe="/v1/version"):
        for res in (requests.put(f"{url}/v1/collections?uuid={_new_uuid()}&version={V1}", json=_body([]),
                                 headers=auth, timeout=30),
                    requests.patch(f"{url}/v1/collections/{PLAIN_DSID}?version={V1}", json={"name": "x"},
                                   headers=auth, timeout=30),
                    requests.delete(f"{url}/v1/collections/{PLAIN_DSID}", headers=auth, timeout=30)):
            _refused(res, 503, "read_only", title)
            assert res.headers["Retry-After"] == str(READ_ONLY_RETRY_AFTER)
        listed = requests.get(f"{url}/v1/collections", headers=auth, timeout=30)
        assert listed.status_code == 200, "reads still work"
    assert _snapshot(pushed.store) == before


def test_put_linking_a_bundle_version_that_does_not_exist(client: TestClient, pushed: Pushed,
                                                          unchanged: None) -> None:
    item = {"type": "bundle", "uuid": pushed.dataset_id, "version": NO_VERSION}
    _put_refused(client, _body([item]), 422, "invalid_link",
                 f"contents links to bundle {pushed.dataset_id} version {NO_VERSION}, which does not exist "
                 "or which alice may not read; link only to versions that exist and that you may read")


def test_put_linking_a_bundle_the_caller_may_not_read_is_refused_like_a_missing_one(
        client: TestClient, pushed: Pushed, unchanged: None) -> None:
    item = {"type": "bundle", "uuid": pushed.dataset_id, "version": pushed.versions[0]}
    _put_refused(client, _body([item]), 422, "invalid_link",
                 f"contents links to bundle {pushed.dataset_id} version {pushed.versions[0]}, which does "
                 "not exist or which bob may not read; link only to versions that exist and that you may "
                 "read", headers=BOB)


def test_put_linking_a_file_that_does_not_exist(client: TestClient, pushed: Pushed, unchanged: None) -> None:
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, "no/such/file.txt")
    item = {"type": "file", "uuid": fuuid, "version": pushed.versions[0]}
    _put_refused(client, _body([item]), 422, "invalid_link",
                 f"contents links to file {fuuid} version {pushed.versions[0]}, which does not exist "
                 "or which alice may not read; link only to versions that exist and that you may read")


def test_put_linking_a_file_the_caller_may_not_read(client: TestClient, pushed: Pushed,
                                                    unchanged: None) -> None:
    f = _files(client, pushed)[0]
    _put_refused(client, _body([{"type": "file", "uuid": f["uuid"], "version": f["version"]}]), 422,
                 "invalid_link", f"contents links to file {f['uuid']} version {f['version']}, which does not "
                 "exist or which bob may not read; link only to versions that exist and that you may read",
                 headers=BOB)


def test_put_linking_a_collection_that_does_not_exist(client: TestClient, unchanged: None) -> None:
    other = _new_uuid()
    _put_refused(client, _body([{"type": "collection", "uuid": other, "version": V1}]), 422, "invalid_link",
                 f"contents links to collection {other} version {V1}, which does not exist or which alice "
                 "may not read; link only to versions that exist and that you may read")


def test_patch_adding_a_link_that_does_not_exist(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    before = _snapshot(pushed.store)
    item = {"type": "bundle", "uuid": pushed.dataset_id, "version": NO_VERSION}
    _refused(client.patch(f"/v1/collections/{u}?version={V1}", json={"add_contents": [item]}, headers=ALICE),
             422, "invalid_link", f"add_contents links to bundle {pushed.dataset_id} version {NO_VERSION}, "
             "which does not exist or which alice may not read; link only to versions that exist and that "
             "you may read")
    assert _snapshot(pushed.store) == before


def test_put_with_a_bad_uuid(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([]), 400, "illegal_arguments", f"uuid '../../etc' {UUID_HINT}",
                 query=f"uuid=../../etc&version={V1}")


def test_put_with_an_upper_case_uuid(client: TestClient, unchanged: None) -> None:
    upper = _new_uuid().upper()
    _put_refused(client, _body([]), 400, "illegal_arguments", f"uuid '{upper}' {UUID_HINT}",
                 query=f"uuid={upper}&version={V1}")


def test_put_without_a_uuid(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([]), 400, "illegal_arguments",
                 "uuid is required: the new collection's uuid (a UUID you choose)", query=f"version={V1}")


def test_put_with_a_bad_item_uuid(client: TestClient, pushed: Pushed, unchanged: None) -> None:
    item = {"type": "bundle", "uuid": "nope", "version": pushed.versions[0]}
    _put_refused(client, _body([item]), 400, "illegal_arguments", f"contents[0].uuid 'nope' {UUID_HINT}")


def test_get_with_a_bad_uuid(client: TestClient) -> None:
    _refused(client.get("/v1/collections/not-a-uuid", headers=ALICE), 400, "illegal_arguments",
             f"uuid 'not-a-uuid' {UUID_HINT}")


def test_put_with_a_bad_type(client: TestClient, pushed: Pushed, unchanged: None) -> None:
    item = {"type": "dataset", "uuid": pushed.dataset_id, "version": pushed.versions[0]}
    _put_refused(client, _body([item]), 400, "illegal_arguments",
                 "contents[0].type 'dataset' is not one of file, bundle, collection")


def test_put_with_an_item_without_a_type(client: TestClient, pushed: Pushed, unchanged: None) -> None:
    item = {"uuid": pushed.dataset_id, "version": pushed.versions[0]}
    _put_refused(client, _body([item]), 400, "illegal_arguments",
                 "contents[0].type None is not one of file, bundle, collection")


def test_put_with_an_item_with_an_unknown_field(client: TestClient, pushed: Pushed, unchanged: None) -> None:
    item = {"type": "bundle", "uuid": pushed.dataset_id, "version": pushed.versions[0], "fragment": "/x"}
    _put_refused(client, _body([item]), 400, "illegal_arguments",
                 "contents[0]: unknown field(s) fragment; known: path, type, uuid, version")


def test_put_with_a_path_that_is_not_a_json_pointer(client: TestClient, pushed: Pushed,
                                                    unchanged: None) -> None:
    item = {"type": "bundle", "uuid": pushed.dataset_id, "version": pushed.versions[0], "path": "donor"}
    _put_refused(client, _body([item]), 400, "illegal_arguments",
                 "contents[0].path 'donor' is not a JSON pointer like /donor/organ (at most 1024 characters)")


def test_put_without_contents(client: TestClient, unchanged: None) -> None:
    body = _body([])
    del body["contents"]
    _put_refused(client, body, 400, "illegal_arguments", "contents is required")


def test_put_with_contents_that_are_not_a_list(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body({"type": "bundle"}), 400, "illegal_arguments",
                 "contents must be a list of {type, uuid, version, path?} items")


def test_put_with_details_that_are_not_an_object(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([], details="x"), 400, "illegal_arguments", "details must be a JSON object")


def test_put_with_a_name_that_is_not_a_string(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([], name=3), 400, "illegal_arguments", "name must be a string")


def test_put_with_an_unknown_field(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([], owner="mallory"), 400, "illegal_arguments",
                 "unknown field(s) owner; known: name, description, details, contents")


def test_put_with_a_body_that_is_not_an_object(client: TestClient, unchanged: None) -> None:
    _put_refused(client, ["contents"], 400, "illegal_arguments",
                 "the body must be a JSON object with name, description, details, contents")


def test_put_with_an_unknown_replica(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([]), 400, "illegal_arguments",
                 "unknown replica 'azure'; known: aws, gcp, store",
                 query=f"uuid={_new_uuid()}&version={V1}&replica=azure")


def test_put_with_an_unknown_query_parameter(client: TestClient, unchanged: None) -> None:
    _put_refused(client, _body([]), 400, "illegal_arguments",
                 "unknown query parameter 'owner'; this route takes replica, uuid, version",
                 query=f"uuid={_new_uuid()}&version={V1}&owner=bob")


def test_put_of_a_document_over_1_mib(client: TestClient, unchanged: None) -> None:
    u = _new_uuid()
    res = client.put(f"/v1/collections?uuid={u}&version={V1}", json=_body([], details={"x": "y" * (1 << 20)}),
                     headers=ALICE)
    assert res.status_code == 400 and res.json()["title"].startswith(f"collection {u} would be ")
    assert res.json()["title"].endswith("bytes, more than the 1048576 bytes a version may have; shorten "
                                        "details or split the contents over several collections")


def test_patch_with_nothing_to_change(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    before = _snapshot(pushed.store)
    _refused(client.patch(f"/v1/collections/{u}?version={V1}", json={}, headers=ALICE), 400,
             "illegal_arguments", "nothing to change: give at least one of name, description, details, "
             "add_contents, remove_contents")
    assert _snapshot(pushed.store) == before


def test_patch_of_a_version_that_does_not_exist(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    before = _snapshot(pushed.store)
    _refused(client.patch(f"/v1/collections/{u}?version={NO_VERSION}", json={"name": "x"}, headers=ALICE),
             404, "not_found", f"no collection {u} of alice; list yours with GET /v1/collections")
    assert _snapshot(pushed.store) == before


def test_get_of_a_version_that_does_not_exist(client: TestClient, pushed: Pushed) -> None:
    u = _put(client, _body([]))
    _refused(client.get(f"/v1/collections/{u}?version={NO_VERSION}", headers=ALICE), 404, "not_found",
             f"no collection {u} of alice; list yours with GET /v1/collections")


def test_delete_of_an_unknown_collection(client: TestClient, unchanged: None) -> None:
    other = _new_uuid()
    _refused(client.delete(f"/v1/collections/{other}", headers=ALICE), 404, "not_found",
             f"no collection {other} of alice; list yours with GET /v1/collections")

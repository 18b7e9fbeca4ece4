"""`/v1/subscriptions`: owners, admins, anonymous callers, secrets, the limit, bad bodies, and a push
delivered (or refused by the callback guard) through a subscription made over HTTP."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from api_server import api_server
from conftest import run, write_files
from fastapi.testclient import TestClient
from gate_double import GateDouble
from test_webhooks import listing, set_policy, wait_for
from webhook_receiver import Receiver

from dss_remote.admin.sibling import Sibling
from dss_remote.config.server_settings import ServerSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.server import subscriptions_api
from dss_remote.server.app import create_app
from dss_remote.webhooks import outbox, subscriptions

DS = "8a2b3c4d-0000-4000-8000-000000000001"
OTHER = "8a2b3c4d-0000-4000-8000-000000000002"
SECRET = "receiver-secret-1234"
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
ADMIN = {"Authorization": "Bearer tok-admin"}
SPEC = {"tokens": {"tok-alice": {"user": "alice", "groups": ["lab"]},
                   "tok-bob": {"user": "bob", "groups": ["lab", "other"]},
                   "tok-admin": {"user": "root", "groups": ["admins"]}},
        "readers": {DS: ["lab"], OTHER: ["other"]}, "admins": ["admins"]}


def _allow_private(store: Path, allow: bool = True) -> None:
    cfg = read_config(store)
    write_config(store, dataclasses.replace(cfg, server=ServerSettings(allow_private_callbacks=allow)))


@pytest.fixture
def client(store: Path) -> TestClient:
    _allow_private(store)
    return TestClient(create_app(store, GateDouble.from_spec(SPEC)))


def body(**extra: Any) -> dict[str, Any]:
    return {"callback_url": "http://127.0.0.1:9/hook", "hmac_secret_key": SECRET, "dataset": DS} | extra


def put(client: TestClient, headers: dict[str, str], **extra: Any) -> str:
    res = client.put("/v1/subscriptions?replica=aws", json=body(**extra), headers=headers)
    assert res.status_code == 201, res.text
    assert SECRET not in res.text
    uuid: str = res.json()["uuid"]
    assert res.json() == {"uuid": uuid}
    return uuid


def _bad(client: TestClient, store: Path, doc: Any, title: str, *, status: int = 400,
         headers: dict[str, str] = ALICE) -> None:
    before = listing(store)
    res = client.put("/v1/subscriptions", json=doc, headers=headers)
    assert res.status_code == status, res.text
    assert res.json() == {"status": status, "code": {400: "illegal_arguments", 401: "unauthorized",
                                                     403: "forbidden"}[status], "title": title}
    assert SECRET not in res.text
    assert listing(store) == before and subscriptions.ids(store) == set()


# --- as the owner, another user, an admin, nobody --------------------------------------------------

def test_owner_creates_lists_gets_and_deletes(client: TestClient, store: Path) -> None:
    uuid = put(client, ALICE, path="raw/*.nii", hmac_key_id="alice-key")
    saved = json.loads(subscriptions.subscription_path(store, uuid).read_text())
    assert saved["owner"] == "alice" and saved["secret"] == SECRET and saved["key_id"] == "alice-key"
    doc = {"uuid": uuid, "callback_url": "http://127.0.0.1:9/hook", "owner": "alice", "method": "POST",
           "encoding": "application/json", "hmac_key_id": "alice-key", "created": saved["created"],
           "dataset": DS, "path": "raw/*.nii"}
    listed = client.get("/v1/subscriptions?replica=aws", headers=ALICE)
    assert listed.status_code == 200 and listed.json() == {"subscriptions": [doc]}
    got = client.get(f"/v1/subscriptions/{uuid}", headers=ALICE)
    assert got.status_code == 200 and got.json() == doc
    gone = client.delete(f"/v1/subscriptions/{uuid}", headers=ALICE)
    assert gone.status_code == 200 and gone.json()["timeDeleted"].endswith("Z")
    assert subscriptions.ids(store) == set()
    assert client.get(f"/v1/subscriptions/{uuid}", headers=ALICE).status_code == 404


def test_another_user_neither_sees_nor_deletes_it(client: TestClient, store: Path) -> None:
    uuid = put(client, ALICE)
    assert client.get("/v1/subscriptions", headers=BOB).json() == {"subscriptions": []}
    for res in (client.get(f"/v1/subscriptions/{uuid}", headers=BOB),
                client.delete(f"/v1/subscriptions/{uuid}", headers=BOB)):
        assert res.status_code == 404
        assert res.json() == {"status": 404, "code": "not_found",
                              "title": f"no subscription {uuid} of bob; list yours with GET "
                                       "/v1/subscriptions"}
    assert subscriptions.ids(store) == {uuid}


def test_an_admin_sees_and_deletes_all_also_those_of_dss_subscribe(client: TestClient, store: Path) -> None:
    mine = put(client, ALICE)
    theirs = put(client, BOB, dataset=OTHER)
    by_cli = subscriptions.create(store, "https://ci.example.org/hook", "cli-secret").id
    listed = client.get("/v1/subscriptions", headers=ADMIN).json()["subscriptions"]
    assert {d["uuid"]: d["owner"] for d in listed} == {mine: "alice", theirs: "bob", by_cli: None}
    assert "cli-secret" not in json.dumps(listed) and SECRET not in json.dumps(listed)
    assert [d["uuid"] for d in client.get("/v1/subscriptions", headers=ALICE).json()["subscriptions"]
            ] == [mine], "a subscription without owner is an admin's"
    assert client.get(f"/v1/subscriptions/{by_cli}", headers=ALICE).status_code == 404
    assert client.delete(f"/v1/subscriptions/{theirs}", headers=ADMIN).status_code == 200
    assert client.delete(f"/v1/subscriptions/{by_cli}", headers=ADMIN).status_code == 200
    assert subscriptions.ids(store) == {mine}


def test_an_admin_may_subscribe_to_every_dataset(client: TestClient, store: Path) -> None:
    uuid = put(client, ADMIN, dataset=None)
    assert subscriptions.load(store, uuid).dataset is None


@pytest.mark.parametrize("method, path", [("PUT", "/v1/subscriptions"), ("GET", "/v1/subscriptions"),
                                          ("GET", "/v1/subscriptions/{uuid}"),
                                          ("DELETE", "/v1/subscriptions/{uuid}")])
def test_anonymous_callers_get_401(client: TestClient, store: Path, method: str, path: str) -> None:
    uuid = put(client, ALICE)
    res = client.request(method, path.format(uuid=uuid), json=body() if method == "PUT" else None)
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"
    assert "Bearer" in res.headers["www-authenticate"]
    assert res.json()["title"].startswith("subscriptions belong to a user: sign in")
    assert subscriptions.ids(store) == {uuid}


def test_a_bad_token_gets_401(client: TestClient, store: Path) -> None:
    res = client.get("/v1/subscriptions", headers={"Authorization": "Bearer nope"})
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"


def test_the_secret_is_in_no_response(client: TestClient, store: Path) -> None:
    uuid = put(client, ALICE, callback_url="http://hook:pa55word@127.0.0.1:9/hook")
    for res in (client.get("/v1/subscriptions", headers=ALICE),
                client.get(f"/v1/subscriptions/{uuid}", headers=ALICE),
                client.get("/v1/subscriptions", headers=ADMIN),
                client.delete(f"/v1/subscriptions/{uuid}", headers=ALICE)):
        assert res.status_code == 200
        assert SECRET not in res.text and "pa55word" not in res.text


def test_at_most_100_per_owner(client: TestClient, store: Path) -> None:
    for _ in range(subscriptions_api.LIMIT):
        subscriptions.create(store, "https://ci.example.org/hook", SECRET, DS, owner="alice")
    before = subscriptions.ids(store)
    res = client.put("/v1/subscriptions", json=body(), headers=ALICE)
    assert res.status_code == 400
    assert res.json()["title"] == ("alice has 100 subscriptions, the limit is 100; delete one "
                                   "(DELETE /v1/subscriptions/UUID) first")
    assert subscriptions.ids(store) == before
    put(client, BOB)  # another user's count is their own


# --- bad input: a named test each ------------------------------------------------------------------

def test_put_without_callback_url(client: TestClient, store: Path) -> None:
    _bad(client, store, {"hmac_secret_key": SECRET, "dataset": DS}, "callback_url is required")


def test_put_without_secret(client: TestClient, store: Path) -> None:
    _bad(client, store, {"callback_url": "https://ci.example.org/h", "dataset": DS},
         "hmac_secret_key is required")


def test_put_with_a_non_string_secret(client: TestClient, store: Path) -> None:
    _bad(client, store, body(hmac_secret_key=12), "hmac_secret_key must be a non-empty string")


def test_put_with_a_multi_line_secret(client: TestClient, store: Path) -> None:
    _bad(client, store, body(hmac_secret_key="a\nb"),
         "hmac_secret_key must be one line of at most 4096 characters")


def test_put_with_a_callback_that_is_not_http(client: TestClient, store: Path) -> None:
    _bad(client, store, body(callback_url="ftp://ci.example.org/h"),
         "webhook url 'ftp://ci.example.org/h' must start with https:// or http:// (got ftp:); give "
         "e.g. https://ci.example.org/dss-hook")


def test_put_with_an_unknown_field(client: TestClient, store: Path) -> None:
    _bad(client, store, body(colour="red"),
         "unknown field(s) colour; known: attachments, callback_url, dataset, encoding, es_query, "
         "form_fields, hmac_key_id, hmac_secret_key, jmespath_query, method, path, payload_form_field")


def test_put_with_attachments(client: TestClient, store: Path) -> None:
    _bad(client, store, body(attachments={"a": {"type": "jmespath", "expression": "x"}}),
         "attachments: not supported (deliveries carry the event and its bundle document's id); "
         "filter with jmespath_query, es_query, dataset or path")


def test_put_with_multipart_encoding(client: TestClient, store: Path) -> None:
    _bad(client, store, body(encoding="multipart/form-data"),
         "encoding 'multipart/form-data' is not supported yet; deliveries are application/json")


def test_put_with_method_put(client: TestClient, store: Path) -> None:
    _bad(client, store, body(method="PUT"), "method 'PUT' is not supported yet; deliveries are POST")


def test_put_with_a_bad_dataset_id(client: TestClient, store: Path) -> None:
    _bad(client, store, body(dataset="../x"),
         "invalid dataset id '../x': expected a DataLad dataset id like "
         "'4dc8313d-2567-4475-a4a0-17cdebad9c1d' (see `datalad.dataset.id` in .datalad/config)")


def test_put_with_a_dataset_the_caller_may_not_read(client: TestClient, store: Path) -> None:
    _bad(client, store, body(dataset=OTHER),
         f"alice may not read dataset {OTHER}; ask an admin for `dss acl set STORE ID --read GROUP`",
         status=403)


def test_put_without_dataset_by_a_non_admin(client: TestClient, store: Path) -> None:
    _bad(client, store, body(dataset=None),
         "dataset is required: name a dataset you may read (subscriptions to every dataset are for "
         "admins)")


def test_put_with_an_empty_path_glob(client: TestClient, store: Path) -> None:
    _bad(client, store, body(path=""), "path must be a non-empty string")


def test_put_with_a_body_that_is_not_an_object(client: TestClient, store: Path) -> None:
    before = listing(store)
    res = client.put("/v1/subscriptions", json=["callback_url"], headers=ALICE)
    assert res.status_code == 400 and res.json()["code"] == "illegal_arguments"
    assert listing(store) == before


def test_put_with_an_unknown_replica(client: TestClient, store: Path) -> None:
    before = listing(store)
    res = client.put("/v1/subscriptions?replica=azure", json=body(), headers=ALICE)
    assert res.status_code == 400
    assert res.json()["title"] == "unknown replica 'azure'; known: aws, gcp, store"
    assert listing(store) == before


def test_identical_repeated_replicas_are_accepted(client: TestClient) -> None:
    res = client.get("/v1/subscriptions?replica=aws&replica=aws", headers=ALICE)
    assert res.status_code == 200 and res.json() == {"subscriptions": []}


def test_conflicting_replicas_are_refused(client: TestClient, store: Path) -> None:
    before = listing(store)
    res = client.put("/v1/subscriptions?replica=aws&replica=gcp", json=body(), headers=ALICE)
    assert res.status_code == 400
    assert res.json()["title"] == ("query parameter replica is given more than once with different values "
                                   "('aws', 'gcp'); give it once")
    assert listing(store) == before


def test_get_with_a_malformed_uuid(client: TestClient) -> None:
    res = client.get("/v1/subscriptions/..%2f..%2fetc", headers=ALICE)
    assert res.status_code in (400, 404) and res.json()["code"] in ("illegal_arguments", "not_found")
    res = client.get("/v1/subscriptions/not-a-uuid", headers=ALICE)
    assert res.status_code == 400
    assert res.json()["title"] == ("subscription id 'not-a-uuid' is not a UUID like "
                                   "3f2f1b1e-4c1a-4b1a-9c1a-1a2b3c4d5e6f")


def test_delete_of_an_unknown_uuid(client: TestClient, store: Path) -> None:
    uuid = put(client, ALICE)
    res = client.delete("/v1/subscriptions/00000000-0000-4000-8000-000000000000", headers=ALICE)
    assert res.status_code == 404 and res.json()["code"] == "not_found"
    assert subscriptions.ids(store) == {uuid}


def test_put_of_a_loopback_callback_when_the_store_does_not_allow_it(store: Path) -> None:
    client = TestClient(create_app(store, GateDouble.from_spec(SPEC)))
    _bad(client, store, body(callback_url="http://127.0.0.1:9/hook"),
         "callback host 127.0.0.1 resolves to 127.0.0.1, a loopback address; give a callback on a "
         "public address, or let this store call private ones with "
         '"server.allow_private_callbacks": true in its dss/config.json')


def test_put_of_a_name_resolving_to_the_metadata_address(store: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from test_callback_guard import fake_dns
    fake_dns(monkeypatch, {"hook.example.org": ["169.254.169.254"]})
    client = TestClient(create_app(store, GateDouble.from_spec(SPEC)))
    _bad(client, store, body(callback_url="https://hook.example.org/x"),
         "callback host hook.example.org resolves to 169.254.169.254, a cloud metadata address; give "
         "a callback on a public address, or let this store call private ones with "
         '"server.allow_private_callbacks": true in its dss/config.json')


# --- end to end: a push delivered through a subscription made over HTTP ----------------------------

@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def _push(dataset: Path, files: dict[str, bytes]) -> None:
    write_files(dataset, files)
    run("datalad", "-l", "error", "save", "-m", "more", cwd=dataset)
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)


def _subscribe_over_http(url: str, dsid: str, callback: str) -> str:
    spec_token = {"Authorization": "Bearer tok-alice"}
    res = requests.put(f"{url}/v1/subscriptions?replica=aws", headers=spec_token, timeout=30,
                       json={"callback_url": callback, "hmac_secret_key": SECRET, "dataset": dsid})
    assert res.status_code == 201, res.text
    uuid: str = res.json()["uuid"]
    return uuid


def test_a_push_is_delivered_to_a_subscription_made_over_http(published: Sibling, store: Path,
                                                              dataset: Path, receiver: Receiver,
                                                              tmp_path: Path) -> None:
    _allow_private(store)
    spec = SPEC | {"readers": {published.dataset_id: ["lab"]}}
    with api_server(store, spec, tmp_path / "srv") as srv:
        uuid = _subscribe_over_http(srv.url, published.dataset_id, receiver.url())
        _push(dataset, {"new.txt": b"a new version\n"})
        wait_for(lambda: len(receiver.accepted()) >= 1, "the deliverer the hook started")
        (got,) = receiver.accepted()
        assert got.signed_ok and got.json["dataset_id"] == published.dataset_id
        assert got.json["subscription_id"] == uuid


def test_a_push_is_never_sent_when_the_store_no_longer_allows_private_callbacks(
        published: Sibling, store: Path, dataset: Path, receiver: Receiver, tmp_path: Path) -> None:
    _allow_private(store)
    spec = SPEC | {"readers": {published.dataset_id: ["lab"]}}
    with api_server(store, spec, tmp_path / "srv") as srv:
        uuid = _subscribe_over_http(srv.url, published.dataset_id, receiver.url())
    _allow_private(store, False)
    set_policy(store, (0, 0), give_up_after=0)
    _push(dataset, {"new.txt": b"a new version\n"})
    wait_for(lambda: any(True for _ in outbox.iter_failed(store)), "the deliverer to give up")
    (dead,) = outbox.iter_failed(store)
    assert dead.subscription_id == uuid and dead.attempts == 2
    assert dead.last_error is not None and dead.last_error.startswith(
        "not sent: callback host 127.0.0.1 resolves to 127.0.0.1, a loopback address")
    assert receiver.requests == []

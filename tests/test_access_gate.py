"""StoreGate: the Authorization header (Bearer dss token or JWT, Basic with a token as the
password), ACL answers, edits seen at once by every gate, and the real app's 401/403/200."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import pytest
from conftest import PLAIN_DSID
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from jwt_issuer import AUD, ISS, jwks, rsa_key, sign

from dss_remote.access import acl, audit, issuers, tokens
from dss_remote.access.gate import AuthenticationError, Identity
from dss_remote.access.issuers import make_issuer
from dss_remote.access.store_gate import MAX_AUTHORIZATION, StoreGate
from dss_remote.server.app import create_app
from dss_remote.server.caller import caller, require_read
from ria_store import store as ria

ALICE = Identity("alice", frozenset({"lab"}), "token")


@pytest.fixture
def ds(store: Path) -> Path:
    ria.create_dataset(ria.open_store(store), PLAIN_DSID, alias="sample")
    return store


@pytest.fixture
def token(ds: Path) -> str:
    return tokens.create(ds, "alice", ["lab"], None)[1]


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def _refused(gate: StoreGate, header: str) -> str:
    with pytest.raises(AuthenticationError) as e:
        gate.identify(header)
    return str(e.value)


def test_no_header_is_anonymous(ds: Path) -> None:
    assert StoreGate(ds).identify(None) is None


def test_a_bearer_dss_token_is_its_user(ds: Path, token: str) -> None:
    assert StoreGate(ds).identify(f"Bearer {token}") == ALICE
    assert StoreGate(ds).identify(f"bearer  {token} ") == ALICE


def test_basic_auth_with_the_token_as_password_is_its_user_whatever_the_login(ds: Path, token: str) -> None:
    gate = StoreGate(ds)
    assert gate.identify(_basic("alice", token)) == ALICE
    assert gate.identify(_basic("anything", token)) == ALICE, "the secret authenticates, not the login"


def test_a_bearer_jwt_is_checked_against_the_issuers_file(ds: Path) -> None:
    key = rsa_key()
    gate = StoreGate(ds)
    assert _refused(gate, f"Bearer {sign(key)}").startswith(f"JWT issuer '{ISS}' is not trusted")
    issuers.add(ds, make_issuer(ISS, AUD, jwks=jwks(key)))
    assert gate.identify(f"Bearer {sign(key)}") == Identity("ada@example.org", frozenset({"lab"}), "jwt")


def test_basic_auth_that_is_not_base64_is_refused(ds: Path) -> None:
    assert _refused(StoreGate(ds), "Basic %%%") == (
        "the Basic credential is not base64 of login:password; put the dss token in ~/.netrc as the password")


def test_basic_auth_without_a_password_is_refused(ds: Path) -> None:
    assert _refused(StoreGate(ds), _basic("alice", "")) == (
        "the Basic credential has no password; put the dss token in ~/.netrc as the password "
        "(`machine HOST login NAME password dss_...`)")


def test_basic_auth_whose_password_is_not_a_token_is_refused(ds: Path) -> None:
    assert _refused(StoreGate(ds), _basic("alice", "hunter2")) == (
        "the Basic password is not a dss token (dss_...); create one with `dss token create` and put it "
        "in ~/.netrc")


def test_basic_auth_with_a_revoked_token_is_refused(ds: Path) -> None:
    token_id, text = tokens.create(ds, "alice", [], None)
    tokens.revoke(ds, token_id)
    assert _refused(StoreGate(ds), _basic("alice", text)).startswith(f"the dss token {token_id} was revoked")


@pytest.mark.parametrize("header", ["Digest abc", "Token dss_x", "dss_abc", ""])
def test_an_unsupported_scheme_is_refused(ds: Path, header: str) -> None:
    scheme = header.partition(" ")[0]
    assert _refused(StoreGate(ds), header) == (
        f"unsupported Authorization scheme {scheme!r}; send `Bearer <dss token or JWT>` or Basic with a "
        "dss token as the password")


@pytest.mark.parametrize("credential", ["", "secret", "a.b", "a.b.c.d", "abc def"])
def test_a_bearer_credential_that_is_neither_token_nor_jwt_is_refused(ds: Path, credential: str) -> None:
    assert _refused(StoreGate(ds), f"Bearer {credential}") == (
        "the Bearer credential is neither a dss token (dss_...) nor a JWT; send one of them")


def test_an_overlong_header_is_refused_before_parsing(ds: Path) -> None:
    assert _refused(StoreGate(ds), "Bearer " + "a" * MAX_AUTHORIZATION) == (
        f"the Authorization header is longer than {MAX_AUTHORIZATION} characters; send Bearer <token>")


def test_revoke_and_acl_edits_reach_every_running_gate_at_once(ds: Path) -> None:
    token_id, text = tokens.create(ds, "alice", ["lab"], None)
    workers = [StoreGate(ds), StoreGate(ds)]
    for gate in workers:
        who = gate.identify(f"Bearer {text}")
        assert not gate.may_read(who, PLAIN_DSID) and not gate.is_admin(who)
    acl.set_dataset(ds, "~sample", read=["lab"])
    acl.set_default(ds, admin=["lab"])
    for gate in workers:
        assert gate.may_read(ALICE, PLAIN_DSID) and gate.is_admin(ALICE) and gate.may_write(ALICE, PLAIN_DSID)
    acl.set_default(ds, admin=[])
    tokens.revoke(ds, token_id)
    for gate in workers:
        assert not gate.is_admin(ALICE) and not gate.may_write(ALICE, PLAIN_DSID)
        assert _refused(gate, f"Bearer {text}").startswith(f"the dss token {token_id} was revoked")


def test_gate_audit_appends_to_the_store_log(ds: Path) -> None:
    StoreGate(ds).audit({"identity": "alice", "status": 403})
    assert [(r["identity"], r["status"]) for r in _audited(ds)] == [("alice", 403)]


def _audited(store: Path) -> list[dict[str, object]]:
    return [r for p in sorted((store / "dss/audit").glob("*.jsonl")) for r in audit.read_day(store, p.stem)]


# -- the real app, a StoreGate and a tiny route, under fastapi's TestClient

def _app(store: Path) -> FastAPI:
    app = create_app(store, StoreGate(store))

    @app.get("/v1/probe/{dsid}")
    def probe(dsid: str, request: Request, who: Annotated[Identity | None, Depends(caller)]
              ) -> dict[str, str]:
        require_read(request, who, dsid)
        return {"ok": dsid, "user": who.user if who else "-"}

    return app


def test_the_app_answers_401_403_and_200_through_a_store_gate(ds: Path, token: str) -> None:
    acl.set_dataset(ds, PLAIN_DSID, read=["lab"])
    bob = tokens.create(ds, "bob", ["other"], None)[1]
    client = TestClient(_app(ds))
    anon = client.get(f"/v1/probe/{PLAIN_DSID}")
    assert anon.status_code == 401 and "Bearer" in anon.headers["www-authenticate"]
    bad = client.get(f"/v1/probe/{PLAIN_DSID}", headers={"Authorization": "Bearer dss_nope"})
    assert bad.status_code == 401 and bad.json()["title"].startswith("the dss token is not valid")
    other = client.get(f"/v1/probe/{PLAIN_DSID}", headers={"Authorization": f"Bearer {bob}"})
    assert other.status_code == 403 and other.json()["title"].startswith("bob may not read dataset")
    ok = client.get(f"/v1/probe/{PLAIN_DSID}", headers={"Authorization": _basic("x", token)})
    assert ok.status_code == 200 and ok.json() == {"ok": PLAIN_DSID, "user": "alice"}
    assert [(r["identity"], r["status"], r["dataset"], r["method"]) for r in _audited(ds)] == [
        (None, 401, PLAIN_DSID, "GET"), (None, 401, None, "GET"), ("bob", 403, PLAIN_DSID, "GET")]
    for r in _audited(ds):
        assert r["path"] == f"/v1/probe/{PLAIN_DSID}" and str(r["time"]).endswith("Z")


def test_the_app_lets_anonymous_callers_read_a_public_dataset(ds: Path) -> None:
    acl.set_dataset(ds, "~sample", read=["public"])
    res = TestClient(_app(ds)).get(f"/v1/probe/{PLAIN_DSID}")
    assert res.status_code == 200 and res.json()["user"] == "-"


def test_a_damaged_acl_file_lets_nobody_in_and_is_logged_once(ds: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    acl.set_default(ds, admin=["lab"], read=["public"])
    gate = StoreGate(ds)
    assert gate.may_read(None, PLAIN_DSID)
    (ds / "dss/access/acl.json").write_text('{"default": {"read": "public"}}')
    with caplog.at_level("ERROR", logger="dss_remote.access.private_files"):
        for _ in range(3):
            assert not gate.may_read(None, PLAIN_DSID) and not gate.is_admin(ALICE)
    assert [r.getMessage() for r in caplog.records] == [
        f"{ds}/dss/access/acl.json: default.read must be a list of entries; fix the file or remove it and "
        "set the rules again with `dss acl`; until it is fixed, it lets nobody in"]
    (ds / "dss/access/acl.json").unlink()
    acl.set_default(ds, admin=["lab"])
    assert gate.is_admin(ALICE)


def test_a_damaged_issuers_file_trusts_no_issuer(ds: Path) -> None:
    key = rsa_key()
    issuers.add(ds, make_issuer(ISS, AUD, jwks=jwks(key)))
    gate = StoreGate(ds)
    assert gate.identify(f"Bearer {sign(key)}") is not None
    (ds / "dss/access/issuers.json").write_text("[]")
    assert _refused(gate, f"Bearer {sign(key)}").startswith(f"JWT issuer '{ISS}' is not trusted")

"""The server's shared parts: the DSS error body for every failure, the 401/403 of caller.py, the
store config's `server` section (each bad value its own one-line error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import requests
from api_server import api_server
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from gate_double import GateDouble

from dss_remote.access.gate import Identity
from dss_remote.config.server_settings import ServerSettings, parse_server
from dss_remote.config.store_config import parse_config
from dss_remote.server.app import create_app
from dss_remote.server.caller import caller, require_read
from ria_store.errors import ConfigError

DS = "8a2b3c4d-0000-4000-8000-000000000001"


def _app(tmp_path: Path, gate: GateDouble) -> FastAPI:
    app = create_app(tmp_path, gate)

    @app.get("/v1/probe/{dsid}")
    def probe(dsid: str, request: Request, who: Annotated[Identity | None, Depends(caller)]
              ) -> dict[str, str]:
        require_read(request, who, dsid)
        return {"ok": dsid}

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    @app.get("/v1/count")
    def count(n: int) -> dict[str, int]:
        return {"n": n}

    return app


@pytest.fixture
def gate() -> GateDouble:
    return GateDouble({"tok-alice": Identity("alice", frozenset({"lab"})),
                       "tok-bob": Identity("bob", frozenset({"other"}))}, readers={DS: {"lab"}})


def test_anonymous_caller_of_a_private_dataset_gets_401_with_a_challenge(tmp_path: Path,
                                                                        gate: GateDouble) -> None:
    res = TestClient(_app(tmp_path, gate)).get(f"/v1/probe/{DS}")
    assert res.status_code == 401
    assert "Bearer" in res.headers["www-authenticate"] and "Basic" in res.headers["www-authenticate"]
    body = res.json()
    assert body["status"] == 401 and body["code"] == "unauthorized" and "sign in" in body["title"]
    assert gate.audited[-1]["status"] == 401 and gate.audited[-1]["dataset"] == DS


def test_a_bad_token_is_401_and_audited(tmp_path: Path, gate: GateDouble) -> None:
    res = TestClient(_app(tmp_path, gate)).get(f"/v1/probe/{DS}", headers={"Authorization": "Bearer nope"})
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"
    assert gate.audited[-1]["status"] == 401 and gate.audited[-1]["identity"] is None


def test_a_known_caller_without_the_right_gets_403(tmp_path: Path, gate: GateDouble) -> None:
    res = TestClient(_app(tmp_path, gate)).get(f"/v1/probe/{DS}", headers={"Authorization": "Bearer tok-bob"})
    assert res.status_code == 403
    assert res.json()["title"].startswith("bob may not read dataset")
    assert gate.audited[-1]["identity"] == "bob" and gate.audited[-1]["status"] == 403


def test_a_reader_gets_through(tmp_path: Path, gate: GateDouble) -> None:
    res = TestClient(_app(tmp_path, gate)).get(f"/v1/probe/{DS}",
                                               headers={"Authorization": "Bearer tok-alice"})
    assert res.status_code == 200 and res.json() == {"ok": DS}
    assert gate.audited == []


def test_an_unexpected_failure_is_a_500_without_its_trace(tmp_path: Path, gate: GateDouble) -> None:
    res = TestClient(_app(tmp_path, gate), raise_server_exceptions=False).get("/v1/boom")
    assert res.status_code == 500
    assert res.json() == {"status": 500, "code": "unhandled_exception",
                          "title": "the server failed on this request; the error is in its log"}
    assert "passwd" not in res.text and "Traceback" not in res.text


def test_a_bad_parameter_is_a_400_in_the_dss_shape(tmp_path: Path, gate: GateDouble) -> None:
    res = TestClient(_app(tmp_path, gate)).get("/v1/count", params={"n": "x"})
    assert res.status_code == 400
    body = res.json()
    assert body["code"] == "illegal_arguments" and body["title"].startswith("n: ")


def test_an_unknown_path_is_a_404_in_the_dss_shape(tmp_path: Path, gate: GateDouble) -> None:
    res = TestClient(_app(tmp_path, gate)).get("/v1/nothing-here")
    assert res.status_code == 404 and res.json()["code"] == "not_found"


def test_cors_answers_only_the_listed_origins(tmp_path: Path, gate: GateDouble) -> None:
    (tmp_path / "dss").mkdir()
    (tmp_path / "dss/config.json").write_text(json.dumps(
        {"version": 1, "server": {"cors_origins": ["https://portal.example.org"]}}))
    client = TestClient(_app(tmp_path, gate))
    pre = {"Access-Control-Request-Method": "GET"}
    ok = client.options("/v1/count", headers=pre | {"Origin": "https://portal.example.org"})
    assert ok.headers["access-control-allow-origin"] == "https://portal.example.org"
    other = client.options("/v1/count", headers=pre | {"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


def test_the_api_server_fixture_runs_uvicorn_and_ends_it(tmp_path: Path) -> None:
    with api_server(tmp_path, {}, tmp_path / "srv") as srv:
        res = requests.get(srv.url + "/v1/nothing", timeout=10)
        assert res.status_code == 404 and res.json()["code"] == "not_found"
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/v1/nothing", timeout=2)


def test_server_settings_default_and_round_trip() -> None:
    assert parse_server({}, "c") == ServerSettings()
    s = parse_server({"cors_origins": ["https://a.example.org/"], "presign_seconds": 60,
                      "allow_private_callbacks": True}, "c")
    assert s == ServerSettings(("https://a.example.org",), 60, True)
    assert parse_config(json.dumps({"version": 1, "server": s.to_json()}), "c").server == s


@pytest.mark.parametrize(("server", "message"), [
    ([], "c: server must be a JSON object"),
    ({"cors": []}, "c: server has unknown field(s) 'cors'"),
    ({"cors_origins": "https://a.org"}, "c: server.cors_origins must be a list"),
    ({"cors_origins": ["https://a.org/path"]},
     "c: server.cors_origins entry 'https://a.org/path' is not an origin"),
    ({"cors_origins": ["ftp://a.org"]}, "c: server.cors_origins entry 'ftp://a.org' is not an origin"),
    ({"presign_seconds": 0}, "c: server.presign_seconds 0 must be a whole number of seconds from 1 to 43200"),
    ({"presign_seconds": 86400}, "c: server.presign_seconds 86400 must be"),
    ({"presign_seconds": True}, "c: server.presign_seconds True must be"),
    ({"allow_private_callbacks": "yes"}, "c: server.allow_private_callbacks must be true or false"),
])
def test_a_bad_server_section_is_named(server: object, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_server(server, "c")
    assert str(e.value).startswith(message)

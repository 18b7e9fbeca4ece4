"""The real StoreGate in uvicorn with two workers: a token from ~/.netrc (as git and DataLad send
it for ria+http) gets through, and `dss token revoke` / `dss acl set` reach every worker at once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests
from api_server import api_server
from conftest import PLAIN_DSID, require_tool

from dss_remote.access import audit
from ria_store import store as ria

ROUNDS = 12


def dss(*args: str | Path) -> str:
    res = subprocess.run([require_tool("dss"), *map(str, args)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture
def ds(store: Path) -> Path:
    ria.create_dataset(ria.open_store(store), PLAIN_DSID, alias="sample")
    return store


def test_netrc_token_revoke_and_acl_reach_every_worker(ds: Path, tmp_path: Path,
                                                       isolated_env: Path) -> None:
    token = dss("token", "create", ds, "--user", "alice", "--group", "lab").strip()
    with api_server(ds, {}, tmp_path / "srv", factory="store_gate_factory:app",
                    extra_args=("--workers", "2")) as srv:
        url = f"{srv.url}/v1/probe/{PLAIN_DSID}"
        host = srv.url.split("//", 1)[1].split(":", 1)[0]
        (isolated_env / ".netrc").write_text(f"machine {host} login alice password {token}\n")
        (isolated_env / ".netrc").chmod(0o600)

        def statuses() -> set[int]:
            return {requests.get(url, timeout=30).status_code for _ in range(ROUNDS)}

        assert statuses() == {403}, "signed in from ~/.netrc, but the dataset is closed"
        dss("acl", "set", ds, "~sample", "--read", "lab")
        answers = [requests.get(url, timeout=30) for _ in range(ROUNDS)]
        assert {a.status_code for a in answers} == {200}
        assert {a.json()["user"] for a in answers} == {"alice"}
        dss("token", "revoke", ds, token[4:20])
        answers = [requests.get(url, timeout=30) for _ in range(ROUNDS)]
        assert {a.status_code for a in answers} == {401}
        for a in answers:
            title = a.json()["title"]
            assert title.startswith(f"the dss token {token[4:20]} was revoked on ")
            assert title.endswith("; ask an admin for a new one (`dss token create`)")
    records = [r for p in sorted((ds / "dss/audit").glob("*.jsonl")) for r in audit.read_day(ds, p.stem)]
    assert sorted((str(r["identity"]), r["status"]) for r in records) == (
        [("None", 401)] * ROUNDS + [("alice", 403)] * ROUNDS), "every worker audits to the store"

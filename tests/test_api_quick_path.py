"""GET /v1/files on the event loop ("quick") when nothing may wait, else in the thread pool:
the same answers either way, and the quick path really is taken (bench/serve_load.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_data import FILES, Pushed, copy_sample
from fastapi.testclient import TestClient
from gate_double import GateDouble

from dss_remote.access.gate import Identity
from dss_remote.server import dss_mapping, files_api
from dss_remote.server.app import create_app


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, sample_template: Pushed) -> Pushed:
    return copy_sample(sample_template, tmp_path_factory.mktemp("quick"))


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests that went to the thread pool."""
    seen: list[str] = []
    real = files_api.run_in_threadpool  # type: ignore[attr-defined]

    async def counting(func, uuid, request, **kw):  # type: ignore[no-untyped-def]
        seen.append(uuid)
        return await real(func, uuid, request, **kw)

    monkeypatch.setattr(files_api, "run_in_threadpool", counting)
    return seen


def _client(p: Pushed, tmp_path: Path) -> TestClient:
    gate = GateDouble({"tok-admin": Identity("root", frozenset({"admins"}))}, public={p.dataset_id},
                      admins={"admins"})
    return TestClient(create_app(p.store, gate, cache_dir=tmp_path / "cache"))


def _dss(res: object) -> dict[str, str]:
    return {k: v for k, v in res.headers.items() if k.startswith("x-dss-")}  # type: ignore[attr-defined]


def test_a_loose_file_is_answered_on_the_event_loop_once_the_index_is_fresh(
        pushed: Pushed, tmp_path: Path, hops: list[str]) -> None:
    client = _client(pushed, tmp_path)
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, "dir/data.bin")
    first = client.get(f"/v1/files/{fuuid}", params={"replica": "aws"})
    assert hops == [fuuid]  # the index was built in the thread pool
    second = client.get(f"/v1/files/{fuuid}", params={"replica": "aws"})
    assert hops == [fuuid], "the second GET should not have left the event loop"
    assert first.status_code == second.status_code == 200
    assert first.content == second.content == FILES["dir/data.bin"]
    assert _dss(first) == _dss(second) and _dss(first)["x-dss-size"] == str(len(FILES["dir/data.bin"]))
    ranged = client.get(f"/v1/files/{fuuid}", headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, FILES["dir/data.bin"][10:20])
    assert client.get(f"/v1/files/{fuuid}", headers={"Range": "bytes=99999999-"}).status_code == 416
    assert hops == [fuuid]


def test_a_caller_with_a_jwt_or_a_git_file_goes_to_the_thread_pool(
        pushed: Pushed, tmp_path: Path, hops: list[str]) -> None:
    client = _client(pushed, tmp_path)
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, "small.txt")
    client.get(f"/v1/files/{fuuid}")  # builds the index
    hops.clear()
    res = client.get(f"/v1/files/{fuuid}", headers={"Authorization": "Bearer tok-admin"})
    assert res.status_code == 200 and hops == [fuuid]  # not a dss token: may need a JWKS fetch
    git_uuid = dss_mapping.file_uuid(pushed.dataset_id, ".datalad/config")
    res = client.get(f"/v1/files/{git_uuid}")
    assert res.status_code == 200 and p_id_in(res.content, pushed.dataset_id)
    assert hops == [fuuid, git_uuid]  # git blobs come from a subprocess


def p_id_in(config: bytes, dataset_id: str) -> bool:
    return f"id = {dataset_id}".encode() in config


def test_a_loose_object_missing_from_disk_falls_back_and_names_the_replica(
        tmp_path: Path, sample_template: Pushed, hops: list[str]) -> None:
    p = copy_sample(sample_template, tmp_path / "own")
    client = _client(p, tmp_path)
    fuuid = dss_mapping.file_uuid(p.dataset_id, "more/one.txt")
    assert client.get(f"/v1/files/{fuuid}").status_code == 200
    hops.clear()
    removed = 0
    for obj in (p.store).glob("*/*/annex/objects/*/*/*/*"):
        if obj.is_file() and obj.read_bytes() == FILES["more/one.txt"]:
            obj.parent.chmod(0o755)
            obj.unlink()
            removed += 1
    assert removed == 1
    res = client.get(f"/v1/files/{fuuid}")
    assert res.status_code == 404 and "store" in res.json()["title"]
    assert hops == [fuuid]

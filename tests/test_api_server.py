"""The DSS read API under real uvicorn with two workers (processes sharing one index), read with a
real HTTP client: both follow a push, and the paging link is absolute."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from api_data import isolated_home, push_more, push_new
from api_server import api_server

from dss_remote.server import dss_mapping

DEADLINE = 120.0  # seconds for both workers to see a push (they look once a second)


def test_two_workers_share_the_index_and_both_follow_a_push(tmp_path: Path, tools_path: str) -> None:
    with isolated_home(tmp_path / "pushing", tools_path):
        p = push_new(tmp_path / "store", tmp_path / "ds", {"a.txt": b"one\n"})
    with api_server(p.store, {"public": [p.dataset_id]}, tmp_path / "srv",
                    extra_args=("--workers", "2")) as srv:
        url = f"{srv.url}/v1/bundles/{p.dataset_id}"
        with requests.Session() as http:
            seen = {http.get(url, timeout=30).json()["bundle"]["version"] for _ in range(10)}
            assert seen == {p.versions[0]}
            with isolated_home(tmp_path / "pushing", tools_path):
                newest = push_more(p, {"a.txt": b"two\n"})
            deadline = time.monotonic() + DEADLINE
            while http.get(url, timeout=30).json()["bundle"]["version"] != newest:
                assert time.monotonic() < deadline, f"the server did not follow the push:\n{srv.output()}"
                time.sleep(0.2)
            # new connections land on either worker: every answer is the new version
            answers = {requests.get(url, timeout=30).json()["bundle"]["version"] for _ in range(20)}
            assert answers == {newest}
            fuuid = dss_mapping.file_uuid(p.dataset_id, "a.txt")
            res = requests.get(f"{srv.url}/v1/files/{fuuid}", timeout=30)
            assert res.content == b"two\n" and res.headers["X-DSS-VERSION"] == newest


def test_the_paging_link_is_absolute_and_followable(tmp_path: Path, tools_path: str) -> None:
    with isolated_home(tmp_path / "pushing", tools_path):
        files = {f"f{i:02d}.txt": f"{i}\n".encode() for i in range(15)}
        p = push_new(tmp_path / "store", tmp_path / "ds", files, data="nothing")
    with api_server(p.store, {"public": [p.dataset_id]}, tmp_path / "srv") as srv:
        first = requests.get(f"{srv.url}/v1/bundles/{p.dataset_id}", params={"per_page": 10}, timeout=30)
        assert first.status_code == 206
        following = first.links["next"]["url"]
        assert following.startswith(f"{srv.url}/v1/bundles/{p.dataset_id}?")
        second = requests.get(following, timeout=30)
        assert second.status_code == 200
        names = [f["name"] for f in first.json()["bundle"]["files"] + second.json()["bundle"]["files"]]
        assert set(files) <= set(names) and len(names) == len(set(names)) == len(files) + 3

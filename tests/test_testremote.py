"""git-annex's own conformance suite, in full (not `--fast`), against the dss remote on a POSIX
store with two mirrors.

The mirrors are directories (`file://`): every test git-annex has goes through the replica set
(parallel writes, quorum, repair queue, verified reads with fallback) on top of the POSIX store's
own code, so this one run covers a store without mirrors too (a second full run on a plain store
cost CI 160 s and tested a subset of this one). With S3 and GCS mirrors the suite runs
`testremote --fast` (tests/test_e2e_mirrors.py) and the backend contract suite; the full run
against moto_server and a GCS server is marked `long` (docs/design-notes.md): testremote's chunked
tests split every test key into ~1000 chunks, over 100,000 requests on three replicas.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require_tool, run

from dss_remote.admin.sibling import create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror


@pytest.mark.slow(280)
def test_git_annex_testremote_passes_in_full_on_a_store_with_two_mirrors(
        store: Path, dataset: Path, tmp_path: Path) -> None:
    require_tool("git-annex-remote-dss")
    mirrors = [tmp_path / name for name in ("m1", "m2")]
    for mirror in mirrors:
        mirror.mkdir()
        add_mirror(store, Mirror(url=f"file://{mirror}", name=mirror.name))
    create_sibling(dataset, "store", f"ria+file://{store}")
    # not --fast: all key sizes x chunk sizes {0, 1048, 10485, 1 MiB} x encryption {none, shared}.
    # Its "unavailable remote" group never runs our program: git-annex swaps the externaltype to
    # `!dne!` ("Cannot run git-annex-remote-!dne!"), so it tests git-annex, not our CHECKPRESENT on
    # an unmounted store; tests/test_e2e_remote_availability.py does that with real git annex.
    res = run("git", "annex", "testremote", "store-storage", cwd=dataset, check=False, timeout=1200)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    m = re.search(r"All (\d+) tests passed", out)
    assert m is not None, out[-3000:]
    assert int(m.group(1)) > 500, "the full suite runs several hundred tests"
    assert "chunksize=1048 " in out  # the non-fast chunk sizes ran
    # testremote cleans up after itself: no temporary files stay in the store or a mirror
    assert [p for root in (store, *mirrors) for p in root.rglob(".dss-tmp-*")] == []

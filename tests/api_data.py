"""Stores for the API tests: real DataLad datasets pushed to a store, so the hook records real
manifests and events. Pushing takes seconds, so the sample store is pushed once per test process
(`sample_template`, a plugin fixture) and each user gets its own copy (`copy_sample`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import require_tool, run, write_files

from dss_remote.admin.sibling import create_sibling
from dss_remote.admin.store import init_store
from dss_remote.history import bundle_store

#: the first version's files; `v2` changes one and adds one
FILES = {
    "small.txt": b"hello store\n",
    "dir/data.bin": os.urandom(70_000),
    "dir/sub/zero.dat": b"",
    "meta/sample.json": b'{"organ": "brain"}\n',
    "odd name & chars: 100%.txt": b"escaped key names\n",
    "more/one.txt": b"one\n",
    "more/two.txt": b"two\n",
}
V2_FILES = {"small.txt": b"hello again\n", "added.csv": b"a,b\n1,2\n"}


@dataclass
class Pushed:
    store: Path
    dataset: Path
    dataset_id: str
    versions: list[str] = field(default_factory=list)


@contextmanager
def isolated_home(base: Path, tools_path: str) -> Iterator[Path]:
    """HOME with a git identity and the tools on PATH, for fixtures wider than one test."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = dss tester\n\temail = dss-tester@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("PATH", tools_path)
        mp.delenv("GIT_DIR", raising=False)
        yield home


def sha256_dataset(path: Path) -> None:
    """A DataLad dataset whose annexed files get SHA256E keys (the hca client checks sha256)."""
    require_tool("datalad")
    require_tool("git-annex")
    run("datalad", "-l", "error", "create", path)
    attrs = path / ".gitattributes"
    attrs.write_text(attrs.read_text().replace("annex.backend=MD5E", "annex.backend=SHA256E"))
    run("datalad", "-l", "error", "save", "-m", "sha256 keys", cwd=path)


def push_new(store: Path, dataset: Path, files: dict[str, bytes], *, data: str = "anything") -> Pushed:
    """`files` saved in a new SHA256E dataset, pushed to `store` (a `dss init` store, made here)."""
    require_tool("git-annex-remote-dss")
    if not (store / "ria-layout-version").exists():
        init_store(store)
    sha256_dataset(dataset)
    write_files(dataset, files)
    run("datalad", "-l", "error", "save", "-m", "v1", cwd=dataset)
    sib = create_sibling(dataset, "store", f"ria+file://{store}")
    run("datalad", "-l", "error", "push", "--to", "store", "--data", data, cwd=dataset)
    return Pushed(store, dataset, sib.dataset_id, bundle_store.versions(store, sib.dataset_id))


def push_more(p: Pushed, files: dict[str, bytes]) -> str:
    """Save and push `files` as a new version; its version id."""
    for rel in files:  # an annexed file is a symlink into the annex: replace it, never write through
        (p.dataset / rel).unlink(missing_ok=True)
    write_files(p.dataset, files)
    run("datalad", "-l", "error", "save", "-m", "more", cwd=p.dataset)
    run("datalad", "-l", "error", "push", "--to", "store", cwd=p.dataset)
    p.versions = bundle_store.versions(p.store, p.dataset_id)
    return p.versions[-1]


def sample_store(base: Path, tools_path: str) -> Pushed:
    """Two versions of a dataset with a symlink and a subdataset (both left out of bundles)."""
    with isolated_home(base, tools_path):
        ds = base / "ds"
        p = push_new(base / "store", ds, FILES)
        (ds / "link-to-small").symlink_to("small.txt")
        run("datalad", "-l", "error", "create", "-d", ds, ds / "subds")
        push_more(p, V2_FILES)
        return p


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> Pushed:
    """`sample_store`, pushed once per test process; never handed out itself: see `copy_sample`."""
    return sample_store(tmp_path_factory.mktemp("sample-template"), tools_path)


def copy_sample(template: Pushed, base: Path) -> Pushed:
    """The template's store and dataset copied under `base` (`cp -a`: modes, symlinks and the
    annex's read-only directories as they are). A store holds no absolute path, so the copy is the
    same store; the dataset is for reading (its sibling still names the template's store)."""
    base.mkdir(parents=True, exist_ok=True)
    for src in (template.store, template.dataset):
        subprocess.run(["cp", "-a", str(src), str(base / src.name)], check=True)
    return Pushed(base / template.store.name, base / template.dataset.name, template.dataset_id,
                  list(template.versions))

"""Several clones writing the same store at once, each with `git annex copy -J4`."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

from conftest import require_tool, run, write_files

from ria_store import store as ria
from ria_store.layout import object_relpath

DSID = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"


def make_repo(path: Path, files: dict[str, bytes], store: Path, dsid: str = DSID) -> None:
    """A git-annex repo of `files` (SHA256E) with the dss remote `store` for dataset `dsid`."""
    run("git", "init", "-q", path)
    run("git", "annex", "init", "-q", cwd=path)
    write_files(path, files)
    run("git", "annex", "add", "-q", "--backend=SHA256E", ".", cwd=path)
    run("git", "commit", "-qm", "data", cwd=path)
    run("git", "annex", "initremote", "store", "type=external", "externaltype=dss",
        "encryption=none", f"url=ria+file://{store}", f"archive-id={dsid}", cwd=path)


def test_three_clones_copy_J4_same_and_different_keys_at_once(store: Path, tmp_path: Path) -> None:
    require_tool("git-annex-remote-dss")
    dsdir = ria.create_dataset(ria.open_store(store), DSID)
    shared = {f"shared/{i:03d}.bin": os.urandom(1000 + 997 * i) for i in range(60)}
    shared["shared/big.bin"] = os.urandom(6 << 20)  # long writes overlap with each other
    repos = []
    for n in range(3):
        own = {f"own{n}/{i:03d}.bin": os.urandom(500 + i) for i in range(20)}
        repo = tmp_path / f"clone{n}"
        make_repo(repo, {**shared, **own}, store)
        repos.append(repo)

    # each copy leads a process group of its own: git-annex, its special remotes and their git
    # children, which a timeout ends together
    procs = [subprocess.Popen(["git", "annex", "copy", "-J4", "--to", "store", "."], cwd=r,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
             for r in repos]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:  # on a timeout (or ^C) no copy goes on writing into the store
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)

    expected: dict[str, bytes] = {}
    for repo in repos:
        out = run("git", "annex", "find", "--format=${key}\\t${file}\\n", cwd=repo).stdout
        for line in out.splitlines():
            key, file = line.split("\t")
            expected[key] = (repo / file).read_bytes()
    assert len(expected) == 61 + 3 * 20
    for key, data in expected.items():
        obj = dsdir / object_relpath(key, "2")
        assert hashlib.sha256(obj.read_bytes()).digest() == hashlib.sha256(data).digest(), key
    stray = [p for p in dsdir.rglob("*") if p.is_file() and p.name.startswith(".dss-tmp-")]
    assert stray == []
    # every clone now sees every key of its own as present in the store
    for repo in repos:
        run("git", "annex", "fsck", "--from", "store", "--fast", "-q", cwd=repo)

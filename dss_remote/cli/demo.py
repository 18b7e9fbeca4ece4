"""`dss demo`: a local store, a dataset published through the dss remote, cloned, changed, pushed back."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ria_store.errors import DssError, one_line

from ..admin import tools
from ..admin.clone import clone as dss_clone
from ..admin.sibling import create_sibling
from ..admin.store import init_store

logger = logging.getLogger(__name__)

SAMPLE_FILES = {
    "README.md": b"# demo dataset\nPublished to a RIA store with the dss special remote.\n",
    "data/counts.csv": b"sample,count\n" + b"".join(b"s%03d,%d\n" % (i, i * i) for i in range(200)),
    "data/signal.bin": None,  # 3 MiB of pseudo-random bytes, generated
}
# what the clone adds and pushes back
CHANGE = ("results/summary.csv", b"sample,mean\n" + b"".join(b"s%03d,%d.5\n" % (i, i) for i in range(50)))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="publish, clone, change and push back a sample dataset",
                       description="Create a local RIA store, publish a sample DataLad dataset to "
                       "it through the dss special remote, clone it with `dss clone`, get the "
                       "content back and verify it, add a file in the clone and push it back with "
                       "`datalad push --to origin`, and get it in a second clone. Needs no cloud "
                       "account.")
    p.add_argument("--dir", type=Path, help="work here (new or empty) and keep the result")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(func=lambda a: demo_main(a.dir, a.keep))


def tool_env() -> dict[str, str]:
    """Environment for child tools: this interpreter's bin dir first (git-annex, datalad, our
    remote live there), and a git identity if the user has none."""
    env = tools.tool_env()
    has_identity = subprocess.run(["git", "config", "user.email"], capture_output=True,
                                  text=True, env=env, check=False).stdout.strip()
    if not has_identity:
        for role in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{role}_NAME", "dss demo")
            env.setdefault(f"GIT_{role}_EMAIL", "dss-demo@example.invalid")
    return env


def _sample_bytes(size: int) -> bytes:
    out, block = bytearray(), b"dss"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def run_demo(workdir: Path, say: Callable[[str], None] = print) -> dict[str, object]:
    """Run the whole demo in `workdir` (must be empty or absent); return what it measured."""
    env = tool_env()
    tools.require("git-annex", "datalad", "git-annex-remote-dss", env=env)

    def sh(*cmd: str, cwd: Path | None = None) -> str:
        res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise DssError(f"`{' '.join(cmd)}` failed: {one_line(res.stderr or res.stdout)}")
        return res.stdout

    def step(text: str) -> float:
        say(f"==> {text}")
        return time.monotonic()

    workdir.mkdir(parents=True, exist_ok=True)
    store, source, clone = workdir / "store", workdir / "source", workdir / "clone"
    second = workdir / "second-clone"
    t0 = step(f"creating a RIA store at {store} (dss init)")
    init_store(store)
    url = f"ria+file://{store}"

    step(f"creating a DataLad dataset at {source} with {len(SAMPLE_FILES)} files")
    sh("datalad", "-l", "error", "create", str(source))
    for rel, data in SAMPLE_FILES.items():
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if data is not None else _sample_bytes(3 << 20))
    sh("datalad", "-l", "error", "save", "-d", str(source), "-m", "sample data")

    step(f"dss create-sibling -d {source.name} --name store {url} --alias demo")
    sib = create_sibling(source, "store", url, alias="demo")
    say(f"    dataset id {sib.dataset_id} -> {sib.dataset_dir.relative_to(workdir)}")

    t = step("datalad push --to store (history to the bare repo, content through the dss remote)")
    sh("datalad", "-l", "error", "push", "-d", str(source), "--to", "store")
    push_s = time.monotonic() - t
    objects = sorted(p for p in (sib.dataset_dir / "annex" / "objects").rglob("*") if p.is_file())
    for p in objects:
        say(f"    {p.relative_to(store)}  ({p.stat().st_size} bytes)")

    t = step(f"dss clone {url}#~demo {clone.name}; datalad get .")
    cloned = dss_clone(f"{url}#~demo", clone, env=env)
    blocked = cloned.verification.blocked()
    if blocked is not None:
        raise blocked
    for name in cloned.verification.verified:
        say(f"    verified {name}: it points at the store cloned from, so git-annex lets the clone "
            "push back (after a plain `datalad clone` it refuses while the remote is unverified)")
    sh("datalad", "-l", "error", "get", ".", cwd=clone)
    get_s = time.monotonic() - t
    remotes = sh("git", "annex", "info", "--fast", cwd=clone)
    dss_remote = [line for line in remotes.splitlines() if "store-storage" in line]
    say(f"    clone enabled the dss remote by itself: {', '.join(s.strip() for s in dss_remote)}")

    step("checking: every file byte-identical, git annex fsck")
    for rel in SAMPLE_FILES:
        if (clone / rel).read_bytes() != (source / rel).read_bytes():
            raise DssError(f"demo failed: {rel} differs between source and clone")
    sh("git", "annex", "fsck", "--quiet", cwd=clone)

    t = step(f"in {clone.name}: add {CHANGE[0]}, datalad save, datalad push --to origin")
    (clone / CHANGE[0]).parent.mkdir(parents=True, exist_ok=True)
    (clone / CHANGE[0]).write_bytes(CHANGE[1])
    sh("datalad", "-l", "error", "save", "-d", str(clone), "-m", "results from the clone")
    sh("datalad", "-l", "error", "push", "-d", str(clone), "--to", "origin")
    pushback_s = time.monotonic() - t

    step(f"datalad clone {url}#~demo {second.name}; datalad get {CHANGE[0]}")
    sh("datalad", "-l", "error", "clone", f"{url}#~demo", str(second))
    sh("datalad", "-l", "error", "get", CHANGE[0], cwd=second)
    if (second / CHANGE[0]).read_bytes() != CHANGE[1]:
        raise DssError(f"demo failed: {CHANGE[0]} pushed from {clone.name} differs in {second.name}")
    say(f"    {second.name} has {CHANGE[0]} as pushed from {clone.name}")
    total = time.monotonic() - t0
    say(f"done in {total:.1f}s: {len(objects)} keys stored ({push_s:.1f}s push), "
        f"retrieved and verified ({get_s:.1f}s clone+get), a change pushed back from the clone "
        f"({pushback_s:.1f}s) and seen by a second clone")
    return {"keys": len(objects), "push_s": push_s, "get_s": get_s, "pushback_s": pushback_s,
            "store": store, "clone": clone, "second": second}


def demo_main(directory: Path | None, keep: bool, say: Callable[[str], None] = print) -> int:
    if directory is not None:
        if directory.exists() and any(directory.iterdir()):
            raise DssError(f"demo directory {directory} is not empty; pass a new or empty --dir")
        run_demo(directory.absolute(), say)
        say(f"left everything in {directory}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="dss-demo-"))
    try:
        run_demo(tmp, say)
    finally:
        if keep:
            say(f"kept {tmp}")
        else:
            _rmtree(tmp)
    return 0


def _rmtree(path: Path) -> None:
    for root, _dirs, _files in os.walk(path):
        os.chmod(root, 0o755)  # git-annex makes its object directories read-only
    shutil.rmtree(path)

"""Commits made straight in a bare repository, without a work tree: `git fast-import` writes the
objects (one pack, under temporary refs), then one `git update-ref --stdin` transaction moves
every branch at once, each only from the commit it was built on (compare-and-swap). A writer
that lost the race changes nothing and builds again on the new tips.
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DssError, one_line

logger = logging.getLogger(__name__)

ZERO = "0" * 40
_TMP_REFS = "refs/dss/write"


class RefMoved(DssError):
    """A branch moved since the commit was built on it: build again."""


@dataclass
class CommitSpec:
    """One commit to write on `branch`: from `parent` (None: a root commit), keeping `keep`
    (path -> (mode, blob sha) of existing blobs) and adding `files` (path -> (mode, bytes))."""

    branch: str
    parent: str | None
    message: str
    keep: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    files: Mapping[str, tuple[str, bytes]] = field(default_factory=dict)


def _run(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    res = subprocess.run(["git", f"--git-dir={repo}", *args], input=data, capture_output=True,
                         check=False)
    if res.returncode != 0:
        raise DssError(f"`git {args[0]}` in {repo} failed: "
                       f"{one_line(res.stderr.decode('utf-8', 'replace')) or res.returncode}")
    return res.stdout


def read_paths(repo: Path, commit: str | None, paths: Iterable[str]) -> dict[str, bytes]:
    """The blobs at `paths` of `commit`'s tree (absent paths are left out), in one `cat-file`."""
    wanted = list(paths)
    if commit is None or not wanted:
        return {}
    request = b"".join(f"{commit}:{p}\n".encode("utf-8", "surrogateescape") for p in wanted)
    out = _run(repo, "cat-file", "--batch", data=request)
    found: dict[str, bytes] = {}
    pos = 0
    for p in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 2 and header[1] == b"missing":
            continue
        size = int(header[2])
        found[p] = out[pos:pos + size]
        pos += size + 1
    return found


def tree_listing(repo: Path, commit: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, sha) of every non-tree entry of `commit`."""
    out = _run(repo, "ls-tree", "-r", "-z", "--full-tree", commit)
    listing: dict[str, tuple[str, str]] = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, _kind, sha = meta.decode().split()
        listing[path.decode("utf-8", "surrogateescape")] = (mode, sha)
    return listing


def blob_id(data: bytes) -> str:
    """The id git gives a blob of `data` (sha1 object format)."""
    import hashlib  # noqa: PLC0415

    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _quote(path: str) -> bytes:
    """A path as fast-import takes it (C-style quoted when it needs to be)."""
    raw = path.encode("utf-8", "surrogateescape")
    if not any(c in raw for c in b'"\\\n') and not raw.startswith(b'"'):
        return raw
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n") + b'"'


def _commit_stream(ref: str, spec: CommitSpec, ident: str, when: int) -> bytes:
    msg = spec.message.encode()
    out = [f"commit {ref}\ncommitter {ident} {when} +0000\ndata {len(msg)}\n".encode(), msg, b"\n"]
    if spec.parent:
        out.append(f"from {spec.parent}\n".encode())
    out.append(b"deleteall\n")
    for path, (mode, sha) in sorted(spec.keep.items()):
        out += [f"M {mode} {sha} ".encode(), _quote(path), b"\n"]
    for path, (mode, data) in sorted(spec.files.items()):
        out += [f"M {mode} inline ".encode(), _quote(path), f"\ndata {len(data)}\n".encode(), data, b"\n"]
    return b"".join(out)


def write_commits(repo: Path, specs: list[CommitSpec], ident: str, when: int) -> dict[str, str]:
    """Write each spec's commit (objects only: no branch moves); branch -> new commit."""
    token = uuid.uuid4().hex
    refs = {s.branch: f"{_TMP_REFS}/{token}/{i}" for i, s in enumerate(specs)}
    stream = b"".join(_commit_stream(refs[s.branch], s, ident, when) for s in specs) + b"done\n"
    try:
        _run(repo, "fast-import", "--quiet", "--done", data=stream)
        return {branch: _run(repo, "rev-parse", "--verify", ref).decode().strip()
                for branch, ref in refs.items()}
    finally:
        drop = "".join(f"delete {ref}\n" for ref in refs.values()).encode()
        subprocess.run(["git", f"--git-dir={repo}", "update-ref", "--stdin"], input=drop,
                       capture_output=True, check=False)


def move_branches(repo: Path, moves: Mapping[str, tuple[str, str | None]]) -> None:
    """branch -> (new, old): all move, each only from `old` (None: must not exist), or none
    does (RefMoved)."""
    lines = ["start"] + [f"update {b} {new} {old or ZERO}" for b, (new, old) in moves.items()]
    lines += ["prepare", "commit", ""]
    res = subprocess.run(["git", f"--git-dir={repo}", "update-ref", "--create-reflog", "--stdin"],
                         input="\n".join(lines).encode(), capture_output=True, check=False,
                         env={**os.environ, "GIT_COMMITTER_NAME": "dss",
                              "GIT_COMMITTER_EMAIL": "dss@localhost"})
    if res.returncode != 0:
        text = one_line(res.stderr.decode("utf-8", "replace"))
        if "but expected" in text or "reference already exists" in text or "is at" in text:
            raise RefMoved(f"{repo}: a branch moved while the commit was written ({text})")
        raise DssError(f"moving the branches of {repo} failed: {text}")

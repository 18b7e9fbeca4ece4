"""The bare git repository inside a dataset directory, through plain `git` plumbing."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import DssError, WriteError, one_line

logger = logging.getLogger(__name__)


def _git(*args: str) -> str:
    cmd = ["git", *args]
    logger.debug("run %s", cmd)
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise DssError("git not found on PATH (install git)") from e
    except subprocess.CalledProcessError as e:
        raise WriteError(f"`{' '.join(cmd)}` failed: {one_line(e.stderr) or e.returncode}") from e
    return out.stdout


def init_bare(path: Path, shared: str | None = None) -> None:
    """`git init --bare` in the dataset directory (idempotent; git re-init keeps what exists)."""
    _git("init", "--bare", "--quiet", *([f"--shared={shared}"] if shared else []), str(path))


def set_config(repo: Path, name: str, value: str) -> None:
    """Set a config value in the bare repo's own `config` file."""
    _git(f"--git-dir={repo}", "config", name, value)


@dataclass(frozen=True)
class TreeEntry:
    """One entry of `git ls-tree -r --long`: a blob, a symlink or a submodule commit."""

    mode: str
    kind: str  # blob | commit (a submodule: a DataLad subdataset)
    sha: str
    size: int | None  # None for a submodule
    path: str


def rev_parse(repo: Path, rev: str) -> str | None:
    """The commit `rev` names in the bare repo, or None if it names none."""
    res = subprocess.run(["git", f"--git-dir={repo}", "rev-parse", "-q", "--verify", f"{rev}^{{commit}}"],
                         capture_output=True, text=True, check=False)
    return res.stdout.strip() or None


def branches(repo: Path) -> dict[str, str]:
    """Every branch of the bare repo: full ref name -> commit."""
    out = _git(f"--git-dir={repo}", "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def tree_entries(repo: Path, commit: str) -> list[TreeEntry]:
    """Every file (recursively) of `commit`'s tree, with blob sizes, in git's path order."""
    out = subprocess.run(["git", f"--git-dir={repo}", "ls-tree", "-r", "-z", "--long", "--full-tree",
                          commit], capture_output=True, check=False)
    if out.returncode != 0:
        raise WriteError(f"`git ls-tree {commit}` in {repo} failed: "
                         f"{one_line(out.stderr.decode(errors='replace')) or out.returncode}")
    entries = []
    for rec in out.stdout.split(b"\0"):
        if not rec:
            continue
        meta, path = rec.split(b"\t", 1)
        mode, kind, sha, size = meta.decode().split()
        entries.append(TreeEntry(mode, kind, sha, None if size == "-" else int(size),
                                 path.decode("utf-8", "surrogateescape")))
    return entries


def read_blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    """The contents of many blobs through one `git cat-file --batch`."""
    if not shas:
        return {}
    res = subprocess.run(["git", f"--git-dir={repo}", "cat-file", "--batch", "--buffer"],
                         input=b"".join(s.encode() + b"\n" for s in shas), capture_output=True, check=False)
    if res.returncode != 0:
        raise WriteError(f"`git cat-file --batch` in {repo} failed: "
                         f"{one_line(res.stderr.decode(errors='replace')) or res.returncode}")
    out, pos, blobs = res.stdout, 0, {}
    for _ in shas:
        eol = out.index(b"\n", pos)
        header = out[pos:eol].decode().split()
        pos = eol + 1
        if len(header) != 3:  # "<sha> missing"
            continue
        size = int(header[2])
        blobs[header[0]] = out[pos:pos + size]
        pos += size + 1
    return blobs


def update_server_info(repo: Path) -> None:
    """Refresh `info/refs` and `objects/info/packs`, so the repo can be cloned over dumb HTTP."""
    _git(f"--git-dir={repo}", "update-server-info")


def server_info_current(repo: Path) -> bool:
    """Whether `info/refs` and `objects/info/packs` already say what `update_server_info` would
    write (every ref with its object, every pack): a store this user may not write then has
    nothing to refresh. False when either cannot be read."""
    try:
        refs = (repo / "info" / "refs").read_text(encoding="utf-8").splitlines()
        packs = (repo / "objects" / "info" / "packs").read_text(encoding="utf-8").split()
        have_packs = sorted(p.name for p in (repo / "objects" / "pack").glob("pack-*.pack"))
        want_refs = _git(f"--git-dir={repo}", "for-each-ref", "--format=%(objectname)%09%(refname)",
                         "refs/").splitlines()
    except (OSError, DssError):
        return False
    listed = [line for line in refs if not line.endswith("^{}")]  # peeled tags: implied by the tag
    return listed == want_refs and sorted(p for p in packs if p != "P") == have_packs


def reflog(repo: Path, ref: str) -> list[tuple[int, str]]:
    """(unix time, commit) of every recorded update of `ref`, oldest first; [] without a reflog."""
    res = subprocess.run(["git", f"--git-dir={repo}", "reflog", "show", "--date=unix", "--format=%H %gd",
                          ref, "--"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return []
    out = []
    for line in res.stdout.splitlines():
        sha, _, sel = line.partition(" ")
        stamp = sel[sel.rfind("@{") + 2:-1] if sel.endswith("}") else ""
        if stamp.isdigit():
            out.append((int(stamp), sha))
    return out[::-1]


@dataclass(frozen=True)
class TreeChange:
    """One path that differs between two commits: `new` is None when it was deleted."""

    path: str
    new: TreeEntry | None


def diff_trees(repo: Path, old: str, new: str) -> list[TreeChange]:
    """The paths that differ between two commits (no rename detection), with the new entries'
    sizes; git does the comparison, so the cost follows the change, not the tree."""
    res = subprocess.run(["git", f"--git-dir={repo}", "diff-tree", "-r", "-z", "--raw", "--no-renames",
                          "--no-commit-id", old, new], capture_output=True, check=False)
    if res.returncode != 0:
        raise WriteError(f"`git diff-tree {old} {new}` in {repo} failed: "
                         f"{one_line(res.stderr.decode(errors='replace')) or res.returncode}")
    fields = res.stdout.split(b"\0")
    raw: list[tuple[str, str, str]] = []  # (path, new mode, new sha); mode 000000 = deleted
    for meta, name in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        _old_mode, new_mode, _old_sha, new_sha, _status = meta[1:].decode().split()
        raw.append((name.decode("utf-8", "surrogateescape"), new_mode, new_sha))
    sizes = blob_sizes(repo, [sha for _p, mode, sha in raw if mode not in ("000000", "160000")])
    out = []
    for path, mode, sha in raw:
        if mode == "000000":
            out.append(TreeChange(path, None))
        elif mode == "160000":
            out.append(TreeChange(path, TreeEntry(mode, "commit", sha, None, path)))
        else:
            out.append(TreeChange(path, TreeEntry(mode, "blob", sha, sizes.get(sha), path)))
    return out


def blob_sizes(repo: Path, shas: list[str]) -> dict[str, int]:
    """Sizes of many blobs through one `git cat-file --batch-check`."""
    if not shas:
        return {}
    res = subprocess.run(["git", f"--git-dir={repo}", "cat-file", "--batch-check", "--buffer"],
                         input="".join(s + "\n" for s in shas).encode(), capture_output=True, check=False)
    if res.returncode != 0:
        raise WriteError(f"`git cat-file --batch-check` in {repo} failed: "
                         f"{one_line(res.stderr.decode(errors='replace')) or res.returncode}")
    out = {}
    for line in res.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            out[parts[0]] = int(parts[2])
    return out

"""Which keys a dataset still needs: those of its live bundle versions and of its branch and tag tips.

What `dss gc` must never collect. Every input must be read, or nothing is decided: a manifest
that cannot be read, or a bare repository git cannot list, raises (the dataset is then skipped),
never counts as "references nothing". A tombstone that cannot be read leaves its version live.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ria_store import bare_repo
from ria_store.errors import DssError, one_line
from ria_store.layout import dataset_relpath

from . import bundle_store, bundles, tombstones

logger = logging.getLogger(__name__)

#: refs whose tips keep their keys: branches (`synced/*` too) and tags; not `git-annex` nor
#: `synced/git-annex` (logs only)
_TIP_REFS = ("refs/heads/", "refs/tags/")
_LOG_BRANCHES = ("refs/heads/git-annex", "refs/heads/synced/git-annex")


@dataclass(frozen=True)
class References:
    """A dataset's needed keys, and where they came from (for the report)."""

    dataset: str
    keys: frozenset[str]
    live_versions: tuple[str, ...]
    dead_versions: tuple[str, ...]
    #: ref -> commit of every tip that was read
    tips: Mapping[str, str]


def live_keys(version_keys: Mapping[str, Iterable[str]], dead: Iterable[str],
              tip_keys: Iterable[Iterable[str]]) -> frozenset[str]:
    """The keys of every version not in `dead`, and of every tip (pure: the property tests' core)."""
    gone = set(dead)
    out: set[str] = set()
    for version, keys in version_keys.items():
        if version not in gone:
            out.update(keys)
    for keys in tip_keys:
        out.update(keys)
    return frozenset(out)


def referenced(store_root: Path, dsid: str) -> References:
    """Read the dataset's manifests, tombstones and ref tips; DssError if any cannot be read."""
    dead = tombstones.dead(store_root, dsid)
    versions = bundle_store.versions(store_root, dsid)
    version_keys: dict[str, list[str]] = {}
    for version in versions:
        if version in dead:
            continue
        manifest = bundle_store.load(store_root, dsid, version)  # raises: nothing is decided
        version_keys[version] = [str(f["key"]) for f in manifest.files if f.get("key")]
    repo = store_root / dataset_relpath(dsid)
    tips = _tips(repo)
    tip_keys = [_keys_of(repo, commit) for commit in sorted(set(tips.values()))]
    keys = live_keys(version_keys, dead, tip_keys)
    return References(dsid, keys, tuple(version_keys), tuple(sorted(dead)), tips)


def _tips(repo: Path) -> dict[str, str]:
    """ref -> the commit it points to (a tag: the commit it tags), for branches and tags."""
    res = subprocess.run(["git", f"--git-dir={repo}", "for-each-ref", "--format=%(refname) %(objectname) "
                          "%(*objectname)", *_TIP_REFS], capture_output=True, check=False)
    if res.returncode != 0:
        raise DssError(f"cannot list the refs of {repo} ({one_line(res.stderr.decode(errors='replace'))}); "
                       "nothing was collected: check the bare repository (`git fsck`)")
    out: dict[str, str] = {}
    for line in res.stdout.decode().splitlines():
        parts = line.split()
        # the git-annex branch (and its synced/ copy) holds logs, not a work tree
        if len(parts) >= 2 and parts[0] not in _LOG_BRANCHES:
            out[parts[0]] = parts[2] if len(parts) > 2 else parts[1]
    return out


def _keys_of(repo: Path, commit: str) -> list[str]:
    """The annex keys `commit`'s tree points to (bare_repo raises if git cannot read it)."""
    entries = bare_repo.tree_entries(repo, commit)
    contents = bare_repo.read_blobs(repo, [e.sha for e in entries if bundles.needs_content(e)])
    keys = []
    for e in entries:
        if bundles.needs_content(e):
            if e.sha not in contents:
                raise DssError(f"blob {e.sha} ({e.path}) of {commit} is missing from {repo}; nothing "
                               "was collected: repair the repository (`git fsck`) first")
            k = bundles.annex_key_of(e, contents[e.sha])
            if k is not None:
                keys.append(k.text)
    return keys

"""Share a store with a Unix group (`dss init --group`, `dss adopt --group`): who may, and how.

The store's sharing mode lives in one place, the file system: a store is shared by the group of
its root directory when that directory has the setgid bit (ria_store/sharing.py says why and what
follows from it). Sharing a store gives the root and everything in it to the group, gives every
dataset's bare repo `core.sharedRepository=group` (so git, too, writes for the group), and makes
webhook subscriptions (which hold secrets) readable by the group, and only by it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ria_store import bare_repo, sharing
from ria_store import store as ria
from ria_store.errors import ConfigError, WriteError, from_os_error
from ria_store.layout import VERSION_FILE

from ..config import paths

logger = logging.getLogger(__name__)

#: what `git config core.sharedRepository` is set to in every bare repo of a shared store
GIT_SHARED = "group"


@dataclass(frozen=True)
class Shared:
    """A store shared by a group, and how many paths sharing it changed."""

    root: Path
    gid: int
    changed: int

    @property
    def group(self) -> str:
        return sharing.group_name(self.gid)


def safe_directory_hint(root: Path) -> str:
    """The git setting other members need before git works in a repository someone else owns."""
    return (f"git config --system --add safe.directory '{root}/*' (git 2.46 or later; older git: "
            "see README, 'A store shared by a group')")


def check_group(group: str) -> int:
    """The gid of `group`, if this user may give files to it (root, or a member); else ConfigError."""
    gid = sharing.group_id(group)
    if os.geteuid() != 0 and gid != os.getegid() and gid not in os.getgroups():
        raise ConfigError(f"cannot share a store with group {group!r}: this user is not a member "
                          "(see `id -Gn`); run it as root or as a member of the group")
    return gid


def check_can_init(root: Path, gid: int) -> None:
    """Refuse `dss init --group` on a store that holds datasets and is not shared by `gid` yet:
    sharing those is `dss adopt --group`'s work (it also sets up each bare repo)."""
    if not (root / VERSION_FILE).is_file() or sharing.shared_gid(root) == gid:
        return
    store = ria.open_store(root)
    if next(ria.iter_datasets(store), None) is not None:
        name = sharing.group_name(gid)
        raise ConfigError(f"store {root} already holds datasets and is not shared by group {name}; "
                          f"share it with `dss adopt --group {name} {root}` (it also sets "
                          "core.sharedRepository in every dataset's bare repo)")


def make_shared_root(root: Path, gid: int) -> None:
    """Create a new store's root directory, given to the group with the shared directory mode."""
    try:
        root.mkdir(parents=True)
        os.chown(root, -1, gid)
        os.chmod(root, sharing.SHARED_DIR_MODE)
    except OSError as e:
        raise from_os_error(e, f"store {root}", writing=True) from e


def share_store(root: Path, gid: int) -> Shared:
    """Share an existing store with group `gid`: each bare repo, then every path (idempotent)."""
    store = ria.open_store(root)
    for dsid in ria.iter_datasets(store):
        # before the tree: git rewrites `config` with the mode of the old setting
        bare_repo.set_config(store.dataset_dir(dsid), "core.sharedRepository", GIT_SHARED)
    report = sharing.share_tree(store.path, gid, private=[store.path / paths.SUBSCRIPTIONS])
    name = sharing.group_name(gid)
    if report.failed:
        raise WriteError(f"store {root}: {len(report.failed)} path(s) could not be given to group {name} "
                         f"(first: {report.failed[0]}); run `dss adopt --group {name} {root}` as root "
                         "or as their owner")
    logger.info("store %s shared by group %s (%d changes)", root, name, report.changed)
    return Shared(store.path, gid, report.changed)

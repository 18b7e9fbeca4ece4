"""Stores shared by a Unix group: what dss creates in a shared directory is the group's too.

The one rule: a directory is shared by its group when it has the setgid bit and the group may
write it, as `dss init --group` and `dss adopt --group` leave a store's root and every directory
in it (and as git's core.sharedRepository=group leaves a bare repo's). The kernel gives what is
created in a setgid directory that directory's group (not the creator's primary group), and new
directories the setgid bit; dss gives what it creates there a mode of its own, whatever the
creator's umask: directories `SHARED_DIR_MODE`, files the mode asked for with the owner's bits
given to the group too, as git's core.sharedRepository=group does (0644 becomes 0664, 0444 stays),
except a file asked for as the owner's alone (0600: a secret), which the group may only read
(0640). Elsewhere, the umask applies as usual; a setgid directory the group may not write (a
clone's `.git` below a setgid project directory) is not shared.
"""

from __future__ import annotations

import functools
import grp
import logging
import os
import stat
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: a directory in a shared store: rwxrwsr-x (setgid, so what is made inside is the group's)
SHARED_DIR_MODE = 0o2775
#: the group bits a shared directory must have for members to create and remove entries
_GROUP_RWX = stat.S_IRWXG
# How long a member waits for a directory another member has just made to become group-writable
# (its maker chmods it right after mkdir; until then the umask's mode is on it).
_SETTLE_TRIES = 100
_SETTLE_PAUSE = 0.01


@functools.cache
def umask() -> int:
    """This process's umask (read once: setting it back at once is the only way to read it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_shared_mode(st_mode: int) -> bool:
    """Whether a directory with this mode is a shared one (setgid, and the group may write it)."""
    return stat.S_ISDIR(st_mode) and st_mode & (stat.S_ISGID | stat.S_IWGRP) == stat.S_ISGID | stat.S_IWGRP


def is_shared(directory: Path) -> bool:
    """Whether what is created in `directory` belongs to its group (False if it cannot be read)."""
    try:
        return is_shared_mode(os.stat(directory).st_mode)
    except OSError:
        return False


def shared_gid(directory: Path) -> int | None:
    """The group `directory` is shared by, or None when it is not shared (or absent)."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return st.st_gid if is_shared_mode(st.st_mode) else None


def group_name(gid: int) -> str:
    """The name of group `gid`, or the number when the machine has no name for it."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def group_id(group: str) -> int:
    """The gid of a group given by name or number; ConfigError names the fix."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as e:
        raise ConfigError(f"no Unix group {group!r} on this machine (check the name with "
                          f"`getent group {group}`, or create it with `groupadd {group}`)") from e


def file_mode(mode: int, shared: bool) -> int:
    """The mode a new file asked for as `mode` gets: less the umask in a private directory; in a
    shared one, the umask does not apply (`shared_file_mode`; asked for as 0600, it is private)."""
    if not shared:
        return mode & ~umask()
    return shared_file_mode(mode, private=not mode & 0o077)


def shared_file_mode(mode: int, *, private: bool) -> int:
    """A file's mode in a shared store: the group gets the owner's bits, as git's
    core.sharedRepository=group gives them; a private file (a secret) gets the owner's read bit
    for the group and nothing for anyone else. Applying it twice changes nothing."""
    if private:
        return (mode & ~0o077) | ((mode & 0o400) >> 3)
    return mode | ((mode & 0o700) >> 3)


def shared_dir_mode(mode: int) -> int:
    """The mode `dss adopt --group` gives an existing directory: setgid, group rwx, rest as it was."""
    return (mode & 0o7777) | stat.S_ISGID | _GROUP_RWX


def share_new_dirs(created: list[Path]) -> None:
    """Give directories just made (outermost first) the shared mode if they were made in a shared
    directory (mkdir gave them the umask's mode): one stat of the parent tells for all of them."""
    if created and is_shared(created[0].parent):
        for d in created:
            os.chmod(d, SHARED_DIR_MODE)


def open_created(path: Path, flags: int, mode: int) -> int:
    """`os.open(path, flags | O_CREAT, mode)`, giving a file this call creates the mode its directory
    asks for (`file_mode`): for files written in place, such as lock files and appended logs."""
    for _ in range(3):
        try:
            fd = settle(path.parent, lambda: os.open(path, flags | os.O_CREAT | os.O_EXCL, mode))
        except FileExistsError:
            try:
                return os.open(path, flags)
            except FileNotFoundError:  # renamed away meanwhile (a rotated log): create it again
                continue
        try:
            if is_shared(path.parent):
                os.fchmod(fd, file_mode(mode, True))
        except BaseException:
            os.close(fd)
            raise
        return fd
    return os.open(path, flags | os.O_CREAT, mode)


def _settling(directory: Path) -> bool | None:
    """For a setgid directory another member made in a shared one: True while it is not yet
    group-writable, False once it is; None for any other directory."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    if not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISGID and st.st_uid != os.geteuid()
            and is_shared(directory.parent)):
        return None
    return (st.st_mode & _GROUP_RWX) != _GROUP_RWX


def settle(directory: Path, create: Callable[[], T]) -> T:
    """`create()` something in `directory`; on EACCES while the directory is shared but not yet
    group-writable (another member has just made it and is about to chmod it), retry for a while,
    and once more when it became group-writable between the refusal and the look at it."""
    retried_settled = False
    for attempt in range(_SETTLE_TRIES):
        try:
            return create()
        except PermissionError:
            state = _settling(directory)
            if attempt == _SETTLE_TRIES - 1 or state is None or (state is False and retried_settled):
                raise
            if state:
                time.sleep(_SETTLE_PAUSE)
            else:
                retried_settled = True
    raise AssertionError("unreachable")


@dataclass
class ShareReport:
    """What `share_tree` changed, and the paths it could not change (with why)."""

    changed: int = 0
    failed: list[str] = field(default_factory=list)


def share_tree(root: Path, gid: int, private: Collection[Path] = ()) -> ShareReport:
    """Give everything under `root` (root included) to group `gid` with the shared modes.

    Directories get setgid and group rwx; files the group's share of the owner's bits, those under
    a `private` directory only the owner's read bit (`shared_file_mode`). Symlinks are given to the
    group but never followed. Idempotent; a path it may not change (another user's, when not run
    as root) is reported, not a stop.
    """
    report = ShareReport()
    secret_dirs = {str(p) for p in private}

    def one(path: str, is_private: bool) -> None:
        try:
            st = os.lstat(path)
            if st.st_gid != gid:
                os.chown(path, -1, gid, follow_symlinks=False)
                report.changed += 1
                st = os.lstat(path)  # chown may clear the setgid bit
            if stat.S_ISLNK(st.st_mode):
                return
            if stat.S_ISDIR(st.st_mode):
                want = shared_dir_mode(st.st_mode)
            elif stat.S_ISREG(st.st_mode):
                want = shared_file_mode(stat.S_IMODE(st.st_mode), private=is_private)
            else:
                return
            if stat.S_IMODE(st.st_mode) != want:
                os.chmod(path, want)
                report.changed += 1
        except FileNotFoundError:
            return  # removed meanwhile (an outbox entry delivered, a temp file renamed)
        except OSError as e:
            report.failed.append(f"{path}: {e.strerror or e}")

    one(str(root), False)
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: report.failed.append(
            f"{e.filename}: {e.strerror or e}")):
        is_private = any(dirpath == d or dirpath.startswith(d + os.sep) for d in secret_dirs)
        for name in dirnames:
            one(os.path.join(dirpath, name), is_private)
        for name in filenames:
            one(os.path.join(dirpath, name), is_private)
    logger.info("%s: shared with group %s (%d changes, %d paths not changed)", root, group_name(gid),
                report.changed, len(report.failed))
    return report

"""`dss dedup`: one inode for a key that several datasets of a POSIX store hold loose (hard links).

The same key names the same content (for a key that carries a checksum), so the loose objects
`annex/objects/<dirhash>/<KEY>/<KEY>` of one key in different datasets may share one inode.
Objects are read-only files only ever replaced by rename, so a link never changes under a
reader, and removing a key from one dataset (an unlink of its name) leaves the others' alone.

Per key held by two or more datasets in different inodes: every inode is verified once (its
size and its checksum against the key's); one that verifies is kept, and each other copy that
verifies is replaced by a link to it: a link under a temp name beside the copy (a `.dss-tmp-`
name, which listings skip and `dss sync` removes as a leftover if the process dies there), checked
to still be the kept inode while the copy is still the verified one, then renamed over the copy
(atomic) and the directory fsynced. A copy that does not verify is never linked to nor replaced:
it is reported as corrupt. Keys without a checksum (WORM, URL, chunks) are left alone, and so are
archives and mirrors (buckets bill bytes per object: nothing to gain there).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ria_store import store as ria
from ria_store.atomic import TMP_PREFIX, fsync_dir
from ria_store.errors import DssError, UnavailableError, one_line
from ria_store.keys import AnnexKey, parse_key
from ria_store.layout import OBJECTS_DIR, dataset_relpath
from ria_store.locks import FileLock

from ..backends.checksums import Digests
from ..backends.posix import PosixBackend
from ..config.paths import DEDUP_LOCK
from .fsck import key_of

logger = logging.getLogger(__name__)

#: the temp name of a link before its rename over the copy: a `.dss-tmp-` name, so listings skip
#: it and `dss sync`/`dss repair` remove it as a leftover of an interrupted write
TEMP_PREFIX = f"{TMP_PREFIX}dedup-"
#: Problem.kind values
CORRUPT, SKIPPED, FAILED = "corrupt", "skipped", "failed"

_Inode = tuple[int, int]
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Problem:
    """A copy not linked: `corrupt` (does not match its key), `skipped` (another file system,
    other permissions, changed during the run: nothing wrong) or `failed` (could not be read or
    written)."""

    kind: str
    dataset: str
    key: str
    path: str
    detail: str

    def line(self) -> str:
        if self.kind == CORRUPT:
            return (f"corrupt copy {self.path} of key {self.key} in dataset {self.dataset}: "
                    f"{self.detail}; not linked (`dss fsck --deep` reports it, `dss repair --deep` "
                    "replaces it from a replica with a good copy)")
        if self.kind == SKIPPED:
            return f"skipped {self.path} (dataset {self.dataset}): {self.detail}"
        return f"{self.path}: {self.detail}"


@dataclass
class DedupReport:
    """What a dedup (or a dry run) found and did; the numbers of a dry run are what it would do."""

    store: str
    dry_run: bool
    datasets: int = 0
    #: loose objects at their key's place, in every dataset
    objects: int = 0
    #: distinct keys with a checksum among them
    keys: int = 0
    #: objects whose key carries no checksum (WORM, URL, chunks): never linked
    no_checksum: int = 0
    #: keys held loose by two or more datasets
    groups: int = 0
    #: copies that already were a link to the copy kept
    already_linked: int = 0
    #: copies replaced by a link (or that would be)
    links: int = 0
    #: bytes and inodes freed: those of each replaced inode that has no name left elsewhere
    bytes_saved: int = 0
    inodes_saved: int = 0
    corrupt: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No corrupt copy and nothing failed (skipped copies are no problem)."""
        return not self.corrupt and not self.failed

    @property
    def problems(self) -> list[Problem]:
        return [*self.corrupt, *self.failed, *self.skipped]

    def add(self, problem: Problem) -> None:
        {CORRUPT: self.corrupt, SKIPPED: self.skipped, FAILED: self.failed}[problem.kind].append(problem)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Copy:
    """One dataset's loose object of a key, as found (lstat) when its group came up."""

    dataset: str
    path: Path
    st: os.stat_result

    @property
    def inode(self) -> _Inode:
        return self.st.st_dev, self.st.st_ino


class _Changed(Exception):
    """A copy was replaced or removed between its check and its link: left for the next run."""


def dedup(store_root: Path, *, dry_run: bool = False,
          progress: Callable[[int], None] | None = None) -> DedupReport:
    """Link the verified copies of every key several datasets of the store hold loose (with
    `dry_run`, only report what it would do); never raises for one copy: each is a Problem.
    UnavailableError if another dedup holds the store's lock."""
    store = ria.open_store(store_root)
    report = DedupReport(str(store.path), dry_run)
    lock = None if dry_run else FileLock(store.path / DEDUP_LOCK)
    if lock is not None and not lock.acquire(wait=False):
        raise UnavailableError(f"store {store.path}: another `dss dedup` is running (it holds "
                               f"{DEDUP_LOCK}); wait for it to end, then run it again")
    try:
        for key_text, found in _loose_keys(store, report).items():
            if len(found) < 2:
                continue
            report.groups += 1
            _group(parse_key(key_text), found, report, dry_run)
            if progress is not None:
                progress(len(found))
    finally:
        if lock is not None:
            lock.release()
    logger.info("dedup %s: %d link(s)%s, %d bytes and %d inodes saved", store.path, report.links,
                " to make" if dry_run else "", report.bytes_saved, report.inodes_saved)
    return report


def _loose_keys(store: ria.Store, report: DedupReport) -> dict[str, list[tuple[str, Path]]]:
    """{key: [(dataset, path), ...]} of every loose object whose key has a checksum."""
    backend = PosixBackend(store.path)
    by_key: dict[str, list[tuple[str, Path]]] = {}
    for dsid in ria.iter_datasets(store):
        report.datasets += 1
        ds_rel = dataset_relpath(dsid)
        try:
            version = ria.open_dataset(store, dsid).version
            listing = list(backend.iter_objects(f"{ds_rel}/{OBJECTS_DIR}"))
        except DssError as e:
            report.add(Problem(FAILED, dsid, "", ds_rel, f"not searched: {one_line(e)}"))
            continue
        for info in listing:
            key = key_of(info.relpath, version, ds_rel)
            if key is None:
                continue  # not a key at its place (`dss fsck` reports it): never touched
            report.objects += 1
            if key.checksum is None:
                report.no_checksum += 1
                continue
            by_key.setdefault(key.text, []).append((dsid, store.path / info.relpath))
    report.keys = len(by_key)
    return by_key


def _group(key: AnnexKey, found: list[tuple[str, Path]], report: DedupReport, dry_run: bool) -> None:
    """Verify each inode of one key's copies once, keep the best good one, link the other good ones."""
    inodes: dict[_Inode, list[_Copy]] = {}
    for dsid, path in found:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # removed since the listing: nothing to link
        except OSError as e:
            report.add(Problem(FAILED, dsid, key.text, str(path), _unreadable(e)))
            continue
        if stat.S_ISREG(st.st_mode):
            copy = _Copy(dsid, path, st)
            inodes.setdefault(copy.inode, []).append(copy)
    if len(inodes) < 2:
        report.already_linked += max(0, sum(map(len, inodes.values())) - 1)
        return
    good: list[_Inode] = []
    for inode, copies in inodes.items():
        bad = _verify(key, copies[0])
        if bad is None:
            good.append(inode)
            continue
        kind, detail = bad
        for c in copies:
            report.add(Problem(kind, c.dataset, key.text, str(c.path), detail))
    if not good:
        return
    kept = max(good, key=lambda i: _rank(inodes[i][0].st))
    report.already_linked += len(inodes[kept]) - 1
    for inode in good:
        if inode != kept:
            _replace(key, inodes[kept][0], inodes[inode], report, dry_run)


def _rank(st: os.stat_result) -> tuple[bool, int, bool]:
    """Which good copy to keep: a read-only one, then the one with the most names already (fewer
    links to make), then one of this user (a non-owner may not link another's file where
    fs.protected_hardlinks is on)."""
    return not st.st_mode & 0o222, st.st_nlink, st.st_uid == os.geteuid()


def _verify(key: AnnexKey, copy: _Copy) -> tuple[str, str] | None:
    """(kind, detail) unless the copy is still the inode found and matches the key's size and
    checksum."""
    try:
        fd = os.open(copy.path, _READ_FLAGS)
    except FileNotFoundError:
        return SKIPPED, "removed during the run; left for the next run"
    except OSError as e:
        return FAILED, _unreadable(e)
    with os.fdopen(fd, "rb") as f:
        return _check(key, copy, f)


def _check(key: AnnexKey, copy: _Copy, f: BinaryIO) -> tuple[str, str] | None:
    st = os.fstat(f.fileno())
    if (st.st_dev, st.st_ino) != copy.inode:
        return SKIPPED, "replaced during the run; left for the next run"
    expected = key.expected_size
    if expected is not None and st.st_size != expected:
        return CORRUPT, f"{st.st_size} bytes, the key says {expected}"
    checksum = key.checksum
    if checksum is None:  # the caller only groups keys that carry one
        raise ValueError(f"{key} carries no checksum to verify")
    algo, want = checksum
    try:
        got = Digests([algo]).read_from(f).hexdigests()[algo]
    except OSError as e:
        return FAILED, _unreadable(e)
    return None if got == want else (CORRUPT, f"its {algo} is {got}, the key says {want}")


def _replace(key: AnnexKey, kept: _Copy, copies: list[_Copy], report: DedupReport, dry_run: bool) -> None:
    """Replace every name of one verified inode (`copies`) by a link to `kept`; its bytes and
    inode count as saved when every name it has was replaced."""
    replaced = 0
    for c in copies:
        obstacle = _obstacle(kept, c)
        if obstacle is not None:
            report.add(Problem(SKIPPED, c.dataset, key.text, str(c.path), obstacle))
            continue
        if not dry_run:
            try:
                _link(kept, c)
            except _Changed as e:
                report.add(Problem(SKIPPED, c.dataset, key.text, str(c.path), str(e)))
                continue
            except FileNotFoundError:  # a drop, or a `dss sync` removing the temp link as a leftover
                report.add(Problem(SKIPPED, c.dataset, key.text, str(c.path),
                                   "it, the copy kept or the temp link was removed during the run; "
                                   "left for the next run"))
                continue
            except OSError as e:
                kind, detail = _link_problem(e, kept)
                report.add(Problem(kind, c.dataset, key.text, str(c.path), detail))
                continue
            logger.debug("linked %s to %s", c.path, kept.path)
        replaced += 1
        report.links += 1
    if replaced == len(copies) and copies[0].st.st_nlink == replaced:
        report.bytes_saved += copies[0].st.st_size
        report.inodes_saved += 1


def _obstacle(kept: _Copy, copy: _Copy) -> str | None:
    """Why `copy` may not become a link to `kept`, if it may not: another file system, or a
    link would change who may read it or let someone write it (it gets the kept inode's mode
    and group; objects are 0444 everywhere, so this is about stores someone changed by hand)."""
    if copy.st.st_dev != kept.st.st_dev:
        return _cross_device(kept)
    mode, kept_mode = stat.S_IMODE(copy.st.st_mode), stat.S_IMODE(kept.st.st_mode)
    readers_differ = mode & 0o7555 != kept_mode & 0o7555
    writers_gained = kept_mode & 0o222 & ~mode
    # the group matters only where its bits differ from everyone else's
    group_differs = (kept_mode >> 3) & 0o7 != kept_mode & 0o7 and copy.st.st_gid != kept.st.st_gid
    if readers_differ or writers_gained or group_differs:
        return (f"mode {mode:04o}, group {copy.st.st_gid}; the copy kept ({kept.path}) has "
                f"{kept_mode:04o}, group {kept.st.st_gid}: a link would change who may read or write "
                "it (objects are 0444; `dss adopt --group` gives a shared store's files one group)")
    return None


def _link(kept: _Copy, copy: _Copy) -> None:
    """Replace `copy` by a hard link to `kept`: link under a temp name beside it, check both are
    still the inodes verified, rename over the copy, fsync the directory. _Changed if either
    changed (nothing done), OSError as os.link raises it (EXDEV, EPERM, ...)."""
    tmp = copy.path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
    os.link(kept.path, tmp, follow_symlinks=False)
    try:
        linked = os.lstat(tmp)
        if (linked.st_dev, linked.st_ino) != kept.inode:
            raise _Changed(f"the copy kept ({kept.path}) was replaced during the run; left for the next run")
        try:
            now = os.lstat(copy.path)
        except FileNotFoundError as e:
            raise _Changed("removed during the run (a drop?); not recreated") from e
        if (now.st_dev, now.st_ino) != copy.inode:
            raise _Changed("replaced during the run; left for the next run")
        os.rename(tmp, copy.path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # rename of two names of one inode does nothing: if the copy became the kept inode meanwhile
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fsync_dir(copy.path.parent)


def _link_problem(e: OSError, kept: _Copy) -> tuple[str, str]:
    """(kind, detail) of a failed link: skipped where nothing is wrong with the store."""
    what = e.strerror or type(e).__name__
    if e.errno == errno.EXDEV:
        return SKIPPED, _cross_device(kept)
    if e.errno == errno.EPERM:
        return SKIPPED, (f"may not link to {kept.path} ({what}: with fs.protected_hardlinks only its "
                         "owner may); run `dss dedup` as its owner or as root")
    if e.errno == errno.EACCES:
        return SKIPPED, (f"cannot write its directory ({what}); run `dss dedup` as a user who may "
                         "write the store")
    if e.errno == errno.EMLINK:
        return SKIPPED, f"{kept.path} has as many links as the file system allows"
    return FAILED, f"link failed ({what}); nothing changed"


def _cross_device(kept: _Copy) -> str:
    return (f"on another file system than the copy kept ({kept.path}), which a hard link cannot "
            "cross; left as it is")


def _unreadable(e: OSError) -> str:
    return (f"cannot read it to verify ({e.strerror or type(e).__name__}); check the store's "
            "permissions and mount, then run `dss dedup` again")

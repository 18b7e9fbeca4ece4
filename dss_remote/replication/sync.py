"""`dss sync`: drain the repair queue, copy every missing key, bring the mirrors' copies of the
store's other files (layout versions, config, the bare repos' git files, archives) up to date, and
remove what interrupted writes left that is older than the safe age (leftovers.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ria_store import archive_sidecar
from ria_store.errors import DssError, NotFoundError, one_line
from ria_store.keys import parse_key
from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, VERSION_FILE, dataset_relpath
from ria_store.locks import FileLock

from ..backends.base import Backend, ObjectInfo
from ..config import paths
from . import leftovers, repair_queue
from .fsck import fsck
from .gitsync import public_git_config, upload_rank
from .repair import copy_key
from .store_replicas import StoreReplicas

logger = logging.getLogger(__name__)


#: top-level entries of a dataset dir that never leave the store: hooks run code, config may
#: hold credentials, ora-remote-*/ are DataLad's per-clone transfer dirs
_PRIVATE = ("hooks", "config")
_PRIVATE_PREFIX = "ora-remote-"
#: the member table `dss pack` saves beside an archive: a cache for readers on this file system
_ARCHIVE_TABLE = f"archives/{archive_sidecar.NAME}"
#: files up to this size are compared by content (refs change without changing size)
_COMPARE_BYTES = 64 << 10


@dataclass
class SyncReport:
    copied: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cleared: int = 0
    #: leftovers of interrupted writes removed, and how many were left alone as maybe in progress
    removed: list[str] = field(default_factory=list)
    fresh_leftovers: int = 0
    #: replicas found unreachable in this run (not asked again)
    unreachable: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.failed


def drain_queue(sr: StoreReplicas, report: SyncReport, tick: Callable[[int], None]) -> None:
    backends = [b for _, b in sr.backends]
    entries, problems = repair_queue.load(backends)
    for p in problems:
        logger.warning("repair queue: %s", p)
    names = {n for n, _ in sr.backends}
    for entry in entries:
        tick(1)
        if entry.replica not in names:
            logger.info("dropping repair entry for removed mirror %s", entry.replica)
            repair_queue.clear(backends, entry)
            report.cleared += 1
            continue
        try:
            source = copy_key(sr, entry.dataset, parse_key(entry.key), entry.replica)
        except NotFoundError:  # dropped from every replica since: nothing left to repair
            repair_queue.clear(backends, entry)
            report.cleared += 1
            continue
        except DssError as e:
            report.failed.append(f"{entry.replica}: {entry.key}: {one_line(e)}")
            continue
        repair_queue.clear(backends, entry)
        report.cleared += 1
        report.copied.append(f"{entry.replica}: {entry.key} (queued) from {source}")


def copy_missing(sr: StoreReplicas, datasets: Iterable[str], report: SyncReport,
                 tick: Callable[[int], None]) -> None:
    writable = [n for n, b in sr.backends if b.writable]  # read-only mirrors are filled elsewhere
    for f in fsck(sr, datasets, writable, verify=False):
        if f.kind == "unreachable":
            report.failed.append(f"{f.replica}: {f.detail}")
            report.unreachable.add(f.replica)
            continue
        if f.kind != "missing" or f.key is None:
            continue
        tick(1)
        try:
            source = copy_key(sr, f.dataset, parse_key(f.key), f.replica)
            report.copied.append(f"{f.replica}: {f.key} from {source}")
        except DssError as e:
            report.failed.append(f"{f.replica}: {f.key}: {one_line(e)}")


def _is_private(rel_in_ds: str) -> bool:
    top = rel_in_ds.split("/", 1)[0]
    return (top in _PRIVATE or top.startswith(_PRIVATE_PREFIX) or rel_in_ds.startswith(OBJECTS_DIR + "/")
            or rel_in_ds == _ARCHIVE_TABLE)


def _differs(src: Backend, dst: Backend, mine: ObjectInfo, theirs: ObjectInfo | None) -> bool:
    if theirs is None or theirs.size != mine.size:
        return True
    if mine.size <= _COMPARE_BYTES:
        return src.read_bytes(mine.relpath) != dst.read_bytes(mine.relpath)
    if mine.relpath.endswith(f"/{ARCHIVE_PATH}"):
        # `dss pack` replaces an archive: its 32-byte start header holds the offset, size and
        # CRC of the member table, so a different archive of the same size differs there
        return src.read_range(mine.relpath, 0, 32) != dst.read_range(mine.relpath, 0, 32)
    return False  # git packs are immutable under their names


def _listing(b: Backend, ds_rels: list[str], dsids: Iterable[str], event_days: list[str] | None
             ) -> dict[str, ObjectInfo]:
    """The files of `b` that a mirror carries besides keys: top files, git sides, bundles,
    metadata records, events."""
    out = {rel: info for rel in (VERSION_FILE, paths.CONFIG) if (info := b.info(rel)) is not None}
    for ds_rel in ds_rels:
        out.update((o.relpath, o) for o in b.iter_objects(ds_rel)
                   if not _is_private(o.relpath[len(ds_rel) + 1:]))
    prefixes = [f"{root}/{d}" for root in (paths.BUNDLES, paths.META) for d in dsids]
    if event_days is None:
        prefixes.append(paths.EVENTS)
    else:
        prefixes += [f"{paths.EVENTS}/{day}" for day in event_days]
    for prefix in prefixes:
        out.update((o.relpath, o) for o in b.iter_objects(prefix)
                   if not o.relpath.rsplit("/", 1)[-1].startswith("."))
    return out


def _read_or_none(b: Backend, rel: str) -> bytes | None:
    try:
        return b.read_bytes(rel)
    except NotFoundError:
        return None


def sync_files(sr: StoreReplicas, datasets: Iterable[str], report: SyncReport,
               tick: Callable[[int], None], event_days: list[str] | None = None) -> None:
    """Copy the store's non-key files (what makes a bucket a RIA store, plus the bundle manifests
    and the event journal) to every mirror; `event_days` limits the journal to those UTC days."""
    src = sr.primary
    root = src.local_root
    if root is None:
        return
    dsids = list(datasets)
    ds_rels = [dataset_relpath(d) for d in dsids]
    wanted = sorted(_listing(src, ds_rels, dsids, event_days).values(),
                    key=lambda o: (upload_rank(o.relpath), o.relpath))
    public = {f"{r}/config": public_git_config(root / r) for r in ds_rels}
    for name, dst in sr.backends[1:]:
        if not dst.writable:
            continue
        try:
            have = _listing(dst, ds_rels, dsids, event_days)
            for rel, data in public.items():  # before HEAD: a clone reads it right after cloning
                if _read_or_none(dst, rel) != data:
                    dst.write_bytes(rel, data)
                    report.copied.append(f"{name}: {rel}")
            for mine in wanted:
                if _differs(src, dst, mine, have.get(mine.relpath)):
                    tick(1)
                    dst.put_file(root / mine.relpath, mine.relpath)
                    report.copied.append(f"{name}: {mine.relpath}")
        except DssError as e:
            report.failed.append(f"{name}: {one_line(e)}")


@contextlib.contextmanager
def _serialised(root: Path | None) -> Iterator[None]:
    if root is None:
        yield
        return
    with FileLock(root / paths.GIT_SYNC_LOCK):
        yield


def sync(sr: StoreReplicas, datasets: list[str],
         tick: Callable[[int], None] | None = None, git_only: bool = False,
         leftover_age: timedelta | None = None) -> SyncReport:
    """Everything (`git_only`: only the given datasets' git sides, bundles and recent events, as
    the post-update hook asks for after a push). Leftovers older than `leftover_age` (default:
    the store's config) are removed. What a failed hook run missed is the hook's to catch up
    (`hook.catchup`), before this runs: `dss sync` does both."""
    report = SyncReport()
    step = tick or (lambda _n: None)
    root = sr.primary.local_root
    if git_only:
        today = datetime.now(timezone.utc)
        days = sorted({(today - timedelta(days=n)).strftime("%Y-%m-%d") for n in (0, 1)})
        with _serialised(root):  # one push's upload must not interleave with the next one's
            sync_files(sr, datasets, report, step, days)
        return report
    drain_queue(sr, report, step)
    copy_missing(sr, datasets, report, step)
    sync_files(sr, datasets, report, step)
    reachable = [n for n, _ in sr.backends if n not in report.unreachable]
    cleaned = leftovers.clean(sr, datasets, sr.config.leftover_age if leftover_age is None else leftover_age,
                              reachable)
    report.removed += cleaned.removed
    report.failed += cleaned.failed
    report.fresh_leftovers = cleaned.fresh
    return report

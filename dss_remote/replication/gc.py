"""`dss gc`: remove from every replica the content of keys a dataset no longer needs.

The caller says which keys are needed (`references`: history/references.py, the keys of live
bundle versions and of branch and tag tips), as a function, because it is asked twice: once to
plan, and again right before anything is removed; if the answer changed (a push landed meanwhile)
nothing is removed and the run says to try again. A key is collected when it is not needed and
its copy on the POSIX store is older than the grace period (a push uploads keys before it moves
the ref; a key the POSIX store does not hold has no age here and is kept). Loose copies are
removed on every writable replica; keys inside the archive are dropped by writing a new archive
without them (7-Zip copies the other members as they are), verified and renamed over the old one
under the lock `dss pack` takes, then uploaded to the mirrors.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ria_store import archive_sidecar, archive_write
from ria_store import store as ria
from ria_store.archive import load_index, local_archive
from ria_store.atomic import fsync_dir, write_bytes_atomic
from ria_store.errors import ArchiveError, DssError, one_line
from ria_store.keys import parse_key
from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, archive_members, dataset_relpath, object_relpath

from ..config import paths
from . import pack
from .fsck import key_of
from .store_replicas import StoreReplicas

logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A key to collect: its size and where it is (replica names; `archive` on the POSIX store)."""

    key: str
    size: int
    loose_on: list[str] = field(default_factory=list)
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "bytes": self.size, "replicas": self.loose_on,
                "in_archive": self.archived}


@dataclass
class GcResult:
    """What one dataset's gc collected (or, in a dry run, would)."""

    dataset: str
    dry_run: bool
    grace_seconds: float
    referenced: int = 0
    stored: int = 0
    young: int = 0
    no_age: int = 0
    collected: list[Candidate] = field(default_factory=list)
    mirrors: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(c.size for c in self.collected)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "collected"}
        out["keys"] = len(self.collected)
        out["bytes"] = self.bytes
        out["collected"] = [c.to_json() for c in self.collected]
        return out

    def line(self) -> str:
        verb = "would collect" if self.dry_run else "collected"
        out = (f"{self.dataset}: {verb} {len(self.collected)} key(s), {self.bytes} bytes; "
               f"{self.referenced} referenced, {self.stored} stored")
        if self.young:
            out += f", {self.young} unreferenced but younger than the grace period"
        if self.no_age:
            out += f", {self.no_age} unreferenced but not on the POSIX store (kept)"
        return out


def select(stored: dict[str, float | None], keep: frozenset[str], cutoff: float
           ) -> tuple[list[str], int, int]:
    """(keys to collect, how many are too young, how many have no age): pure, the property test's
    core. `stored` maps each stored key to the mtime of its POSIX copy (None: no POSIX copy)."""
    out, young, no_age = [], 0, 0
    for key, mtime in sorted(stored.items()):
        if key in keep:
            continue
        if mtime is None:
            no_age += 1
        elif mtime > cutoff:
            young += 1
        else:
            out.append(key)
    return out, young, no_age


def collect(sr: StoreReplicas, dsid: str, references: Callable[[], frozenset[str]], *,
            grace: timedelta, dry_run: bool = False, progress: Callable[[int], None] | None = None
            ) -> GcResult:
    """Collect what dataset `dsid` no longer needs (see the module docstring)."""
    root = sr.primary.local_root
    if root is None:
        raise DssError(f"{sr.primary.url} is not a directory on this machine: run `dss gc` on a node "
                       "that mounts the store")
    dataset = ria.open_dataset(ria.open_store(root), dsid)
    result = GcResult(dsid, dry_run, grace.total_seconds())
    lock = pack.dataset_lock(root, dsid)
    if not dry_run:
        pack.take(lock, dsid)
    try:
        if not dry_run:
            pack.clear_leftovers(root, dataset.path, dsid)  # what a killed pack or gc left
        keep = references()
        result.referenced = len(keep)
        stored, where = _stored(sr, dsid, dataset.path, dataset.version, result)
        result.stored = len(stored)
        chosen, result.young, result.no_age = select(stored, keep, time.time() - grace.total_seconds())
        result.collected = [where[k] for k in chosen]
        if dry_run or not chosen:
            return result
        if references() != keep:
            raise DssError(f"dataset {dsid} changed during the gc (a push?); nothing was collected: "
                           "run `dss gc` again")
        _drop_archived(sr, dsid, dataset.path, [c for c in result.collected if c.archived],
                       result=result, progress=progress)
        _remove_loose(sr, dsid, result.collected, result)
        return result
    finally:
        lock.release()


def _stored(sr: StoreReplicas, dsid: str, dsdir: Path, version: str, result: GcResult
            ) -> tuple[dict[str, float | None], dict[str, Candidate]]:
    """Every key any writable replica holds loose, or the POSIX archive holds; its POSIX age."""
    ds_rel = dataset_relpath(dsid)
    where: dict[str, Candidate] = {}
    ages: dict[str, float | None] = {}
    source = local_archive(dsdir / ARCHIVE_PATH)
    if source is not None:
        try:
            index = load_index(source)
        except ArchiveError as e:
            raise ArchiveError(f"{one_line(e)}; nothing was collected (`dss fsck --deep` then "
                               "`dss repair`)") from e
        archive_mtime = os.stat(dsdir / ARCHIVE_PATH).st_mtime
        for m in index.members.values():
            key = archive_write.member_key(m.name)
            if key is not None:
                where[key.text] = Candidate(key.text, m.size, archived=True)
                ages[key.text] = archive_mtime
    rs = sr.for_dataset(dsid)
    for name, backend in sr.backends:
        if not backend.writable or not backend.listable:
            if name != sr.backends[0][0]:
                result.mirrors[name] = "read-only or unlistable: left as it is"
            continue
        try:
            tree_version = rs.named(name).object_tree_version() if name != sr.backends[0][0] else version
            objs = list(backend.iter_objects(f"{ds_rel}/{OBJECTS_DIR}"))
        except DssError as e:
            result.problems.append(f"{name}: {one_line(e)}")
            result.mirrors[name] = f"unreachable: {one_line(e)}"
            continue
        for info in objs:
            key = key_of(info.relpath, tree_version, ds_rel)
            if key is None:
                continue
            c = where.setdefault(key.text, Candidate(key.text, info.size))
            c.loose_on.append(name)
            if name == sr.backends[0][0]:
                try:
                    mtime = os.stat(dsdir / object_relpath(key, version)).st_mtime
                except FileNotFoundError:
                    continue
                ages[key.text] = max(mtime, ages.get(key.text) or 0.0)
            else:
                ages.setdefault(key.text, None)
    return ages, where


def _drop_archived(sr: StoreReplicas, dsid: str, dsdir: Path, archived: list[Candidate], *,
                   result: GcResult, progress: Callable[[int], None] | None) -> None:
    if not archived:
        return
    archive_path = dsdir / ARCHIVE_PATH
    index = load_index(archive_path)
    drop = {n for c in archived for n in archive_members(c.key)}
    names = [n for n in index.members if n in drop]
    left = [m for m in index.members.values() if m.name not in drop
            and archive_write.member_key(m.name) is not None]
    if not left:
        archive_path.unlink()  # nothing live is packed any more: no archive (mirrors: below)
        archive_sidecar.remove(archive_path)
        fsync_dir(archive_path.parent)
    else:
        tmp = pack.temp_archive(dsdir)
        try:
            archive_write.drop_members(archive_write.sevenzip_program(), archive_path, names, tmp)
            new_index, problems = archive_write.verify(tmp, [], progress)
            gone = [n for n in names if n in new_index.members]
            if problems or gone:
                first = problems[0].line() if problems else f"{gone[0]} is still in it"
                raise ArchiveError(f"the new archive of dataset {dsid} failed verification ({first}); "
                                   "nothing was collected from the archive, the old one stays")
            pack.publish_archive(tmp, archive_path, new_index)
        finally:
            pack.unlink_quietly(tmp)
    rel = f"{dataset_relpath(dsid)}/{ARCHIVE_PATH}"
    if archive_path.exists():
        pack.to_mirrors(sr, dsid, archive_path, [], mirrors=result.mirrors, problems=result.problems)
        return
    for name, backend in sr.backends[1:]:
        if backend.writable:
            try:
                backend.remove(rel)
                result.mirrors[name] = "archive removed"
            except DssError as e:
                result.problems.append(f"mirror {name}: archive not removed: {one_line(e)}")


def _remove_loose(sr: StoreReplicas, dsid: str, collected: list[Candidate], result: GcResult) -> None:
    ds_rel = dataset_relpath(dsid)
    rs = sr.for_dataset(dsid)
    for name, backend in sr.backends:
        mine = [c for c in collected if name in c.loose_on]
        if not mine:
            continue
        try:
            version = rs.named(name).object_tree_version()
            for c in mine:
                backend.remove(f"{ds_rel}/{object_relpath(parse_key(c.key), version)}")
        except DssError as e:
            result.problems.append(f"{name}: {one_line(e)}; the rest stays: run `dss gc` again")


def write_report(store_root: Path, results: list[GcResult], when: datetime | None = None) -> Path:
    """The run's report, `dss/gc/<UTC time>.json` (never mirrored)."""
    when = when or datetime.now(timezone.utc)
    path = store_root / paths.GC_REPORTS / f"{when.strftime('%Y-%m-%dT%H%M%S.%fZ')}.json"
    doc = {"time": when.isoformat(), "datasets": [r.to_json() for r in results]}
    write_bytes_atomic(path, json.dumps(doc, indent=1).encode() + b"\n", mode=0o444)
    return path

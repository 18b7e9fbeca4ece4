"""What interrupted writes (kill -9, a full disk) left on a store's replicas: found, judged by age,
and removed once no writer can still be busy with them.

A write in progress looks exactly like a killed one, so only age tells them apart: a leftover last
written longer ago than the safe age (`leftover_age_hours` in the store's config, 6 hours by
default, or `--leftover-age`) is old; a fresher one may belong to a running writer and is left
alone. Looked for on every writable, listable replica: in each dataset's directory (temp files and
unfinished uploads anywhere, empty directories in its object tree only: a bare repo keeps empty
directories of its own) and in the store's `dss/` files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ria_store.errors import DssError, one_line
from ria_store.layout import OBJECTS_DIR, dataset_relpath

from ..backends.base import EMPTY_DIR, UPLOAD, Backend, Leftover
from ..config import paths
from .store_replicas import StoreReplicas

logger = logging.getLogger(__name__)

#: the store-level directory whose temp files count (dss's own files: config, bundles, events, ...)
_DSS_DIR = paths.CONFIG.partition("/")[0]


@dataclass(frozen=True)
class Found:
    """One leftover on one replica, and how long ago it was last written."""

    replica: str
    dataset: str
    leftover: Leftover
    age: timedelta

    def line(self) -> str:
        return f"{self.replica}: {self.leftover.relpath} ({self.leftover.kind}, {age_text(self.age)} old)"


@dataclass
class Cleaned:
    """What `clean` removed, could not remove, and left alone as maybe in progress."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    fresh: int = 0


def age_text(age: timedelta) -> str:
    """An age for people: minutes, hours, or days."""
    seconds = max(0.0, age.total_seconds())
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def dataset_leftovers(backend: Backend, dsid: str) -> list[Leftover]:
    """The leftovers in one dataset's directory on one backend."""
    ds_rel = dataset_relpath(dsid)
    objects = f"{ds_rel}/{OBJECTS_DIR}"
    # two listings: empty directories count only below the object tree's top, anything else anywhere
    found = [lo for lo in backend.iter_leftovers(objects) if lo.kind == EMPTY_DIR]
    found += [lo for lo in backend.iter_leftovers(ds_rel) if lo.kind != EMPTY_DIR]
    return found


def store_leftovers(backend: Backend) -> list[Leftover]:
    """The temp files and unfinished uploads of the store's own `dss/` files."""
    return [lo for lo in backend.iter_leftovers(_DSS_DIR) if lo.kind != EMPTY_DIR]


def scanned(sr: StoreReplicas, names: Iterable[str] | None) -> list[tuple[str, Backend]]:
    """The replicas among `names` (all by default) that dss writes and can list."""
    wanted = None if names is None else set(names)
    return [(n, b) for n, b in sr.backends
            if (wanted is None or n in wanted) and b.writable and b.listable]


def find(sr: StoreReplicas, datasets: Iterable[str], names: Iterable[str] | None = None,
         now: datetime | None = None) -> tuple[list[Found], list[tuple[str, str, DssError]]]:
    """Every leftover in `datasets` (and the store's `dss/`) on the named replicas, with its age;
    and (replica, dataset, error) for each listing that failed."""
    now = now or datetime.now(timezone.utc)
    found: list[Found] = []
    errors: list[tuple[str, str, DssError]] = []
    dsids = list(datasets)
    for name, backend in scanned(sr, names):
        jobs: list[tuple[str, Leftover]] = []
        try:
            jobs += [("", lo) for lo in store_leftovers(backend)]
            for dsid in dsids:
                jobs += [(dsid, lo) for lo in dataset_leftovers(backend, dsid)]
        except DssError as e:
            errors.append((name, "", e))
        found += [Found(name, dsid, lo, now - lo.touched) for dsid, lo in jobs]
    return found, errors


def describe(f: Found, max_age: timedelta) -> tuple[str, str]:
    """(fsck finding kind, detail): "leftover" when old enough to remove, else "in-progress"."""
    age = age_text(f.age)
    if f.leftover.kind == UPLOAD:
        what = f"{f.leftover.kind} (its parts are billed until it is aborted), started {age} ago"
    else:
        what = f"{f.leftover.kind} of an interrupted write, last written {age} ago"
    if f.age >= max_age:
        return "leftover", f"{what}; `dss sync` or `dss repair` removes it"
    return "in-progress", (f"{what}: maybe a write in progress, left alone (removed once older than "
                           f"{age_text(max_age)})")


def clean(sr: StoreReplicas, datasets: Iterable[str], max_age: timedelta,
          names: Iterable[str] | None = None, now: datetime | None = None) -> Cleaned:
    """Remove every leftover older than `max_age` (listed afresh, so the age is current)."""
    out = Cleaned()
    found, errors = find(sr, datasets, names, now)
    for name, _dsid, e in errors:
        out.failed.append(f"{name}: listing leftovers: {one_line(e)}")
    for f in found:
        if f.age < max_age:
            out.fresh += 1
            continue
        try:
            sr.named(f.replica).remove_leftover(f.leftover)
        except DssError as e:
            out.failed.append(f"{f.line()}: {one_line(e)}")
            continue
        logger.info("removed leftover %s", f.line())
        out.removed.append(f.line())
    return out

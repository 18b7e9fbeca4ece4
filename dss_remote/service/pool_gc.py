"""The file pool's share of `dss gc`: deposits and direct uploads nobody finished with.

A pool object older than the grace period goes, from the mirrors first, then from the store: a
bundle that took it holds its key in its dataset already (on every replica), and a deposit no
bundle took within the grace is abandoned
(its record stays, so a bundle naming it later is told to deposit it again). A direct upload not
written to for longer than the grace goes too. Ages are the files' mtimes (a pool object's is
when its content was written).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..config import paths
from . import pool_mirrors

logger = logging.getLogger(__name__)


@dataclass
class PoolGc:
    """What went (or would go, in a dry run)."""

    objects: list[tuple[str, int]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    #: objects a mirror could not remove, one line each (kept everywhere for the next `dss gc`)
    failed: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(size for _key, size in self.objects)

    def line(self) -> str:
        return (f"file pool: {len(self.objects)} deposited object(s), {self.bytes} bytes, and "
                f"{len(self.uploads)} unfinished upload(s) older than the grace period")

    def to_json(self) -> dict[str, Any]:
        return {"objects": [{"key": k, "size": s} for k, s in self.objects], "uploads": self.uploads,
                "bytes": self.bytes, "failed": self.failed}


def _old(path: Path, cutoff: float) -> os.stat_result | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st if st.st_mtime < cutoff else None


def collect(root: Path, grace: timedelta, *, dry_run: bool, now: float) -> PoolGc:
    """Remove (unless `dry_run`) pool objects and unfinished uploads older than `grace`."""
    cutoff = now - grace.total_seconds()
    out = PoolGc()
    objects = root / paths.FILE_POOL / "objects"
    old: list[tuple[Path, int]] = []
    for path in sorted(objects.glob("*/*/*")):
        st = _old(path, cutoff)
        if st is not None and not path.name.startswith("."):
            old.append((path, st.st_size))
    failed = {} if dry_run else pool_mirrors.remove(root, [p.relative_to(root).as_posix() for p, _ in old])
    for path, size in old:
        why = failed.get(path.relative_to(root).as_posix())
        if why:  # kept here too, so the next `dss gc` removes it from that mirror
            out.failed.append(why)
            continue
        out.objects.append((path.name, size))
        if not dry_run:
            path.unlink(missing_ok=True)
            logger.info("file pool: removed %s (%d bytes)", path.name, size)
    uploads = root / paths.UPLOADS
    for meta in sorted(uploads.glob("*.json")):
        part = meta.with_suffix(".part")
        if (_old(part, cutoff) if part.exists() else _old(meta, cutoff)) is None:
            continue
        out.uploads.append(meta.stem)
        if not dry_run:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            logger.info("file pool: removed unfinished upload %s", meta.stem)
    return out

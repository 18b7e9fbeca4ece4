"""The repair queue: one small JSON object per (replica, dataset, key) that missed a write.

An entry is written to every replica that did take the write (so whichever replica a node can
reach tells it what to repair) under `dss/repair-queue/<replica>/<dataset-id>/<escaped key>`,
and removed from all of them once `dss sync`/`dss repair` has copied the key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from ria_store.errors import DssError, NotFoundError, one_line
from ria_store.keys import parse_key, sanitize_key
from ria_store.layout import check_dataset_id

from ..backends.base import Backend
from ..config import paths

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class RepairEntry:
    """A key that replica `replica` (a mirror name, or "store") is missing."""

    replica: str
    dataset: str
    key: str
    reason: str = ""
    time: float = 0.0

    @property
    def relpath(self) -> str:
        return f"{paths.REPAIR_QUEUE}/{self.replica}/{self.dataset}/{sanitize_key(self.key)}"

    def dumps(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def parse_entry(data: bytes, where: str) -> RepairEntry:
    try:
        raw = json.loads(data)
        entry = RepairEntry(replica=str(raw["replica"]), dataset=check_dataset_id(raw["dataset"]),
                            key=parse_key(raw["key"]).text, reason=str(raw.get("reason", "")),
                            time=float(raw.get("time", 0)))
    except (ValueError, KeyError, TypeError, DssError) as e:
        raise DssError(f"repair-queue entry {where} is unreadable ({one_line(e)}); delete it and run "
                       "`dss fsck` to find what it was about") from e
    return entry


def record(backends: Iterable[Backend], replica: str, dataset: str, key: str, reason: str) -> int:
    """Write the entry to each of `backends`; return on how many it landed (best effort: a queue
    entry that cannot be written is logged, as the write error itself reaches the user)."""
    entry = RepairEntry(replica, dataset, key, one_line(reason), time.time())
    landed = 0
    for b in backends:
        try:
            b.write_bytes(entry.relpath, entry.dumps())
            landed += 1
        except DssError as e:
            logger.warning("could not queue repair of %s on %s in %s: %s", key, replica, b.url, e)
    return landed


def load(backends: Iterable[Backend]) -> tuple[list[RepairEntry], list[str]]:
    """Every entry found on any reachable backend (deduplicated), and the problems met."""
    seen: dict[str, RepairEntry] = {}
    problems: list[str] = []
    for b in backends:
        if not b.listable:
            continue  # never written there, and nothing to list with
        try:
            for entry in _iter_backend(b):
                seen.setdefault(entry.relpath, entry)
        except DssError as e:
            problems.append(one_line(e))
    return sorted(seen.values(), key=lambda e: (e.time, e.relpath)), problems


def _iter_backend(b: Backend) -> Iterator[RepairEntry]:
    for info in b.iter_objects(paths.REPAIR_QUEUE):
        try:
            yield parse_entry(b.read_bytes(info.relpath), f"{b.url}/{info.relpath}")
        except NotFoundError:
            continue  # drained by someone else meanwhile


def clear(backends: Iterable[Backend], entry: RepairEntry) -> None:
    for b in backends:
        if not b.writable:
            continue
        try:
            b.remove(entry.relpath)
        except DssError as e:
            logger.warning("could not remove repair-queue entry %s from %s: %s", entry.relpath, b.url, e)

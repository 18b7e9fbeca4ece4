"""The store's event journal: one immutable JSON file per event under `dss/events/<UTC day>/`.

Event ids start with the event's UTC time in the DSS version form, so sorting the day directories
and then the names inside each replays events in the order they happened.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ria_store.atomic import create_exclusive
from ria_store.errors import DssError, from_os_error
from ria_store.listing import list_dir

from ..config import paths
from . import bundles, times

logger = logging.getLogger(__name__)

BUNDLE_CREATED = "bundle.created"
#: a bundle version was tombstoned (`dss bundles delete`); the event carries the reason
BUNDLE_DELETED = "bundle.deleted"
#: `dss gc` removed content of a dataset's keys no live version needs; the event says how much
KEYS_COLLECTED = "keys.collected"
#: `dss meta set` added store-side metadata to a dataset (version "") or to one bundle version
META_UPDATED = "meta.updated"
_ID_RE = re.compile(r"(\d{4}-\d\d-\d\d)T\d{6}\.\d{6}Z\.[0-9a-z.\-]+")
DAY_RE = re.compile(r"\d{4}-\d\d-\d\d")


@dataclass(frozen=True)
class Event:
    """Something that happened in the store; what subscribers receive."""

    event_id: str
    type: str
    dataset_id: str
    version: str
    commit: str
    ref: str
    time: str
    #: why a version was deleted (bundle.deleted only; left out of the file when empty, so the
    #: files of other events keep their bytes)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not out["reason"]:
            del out["reason"]
        return out


def bundle_created(dsid: str, version: str, commit: str, ref: str) -> Event:
    """The event of a new bundle version. Its id and time derive from the version, so the event of a
    version is always the same file: `dss sync` can tell whether it was written, and rewriting it
    is a no-op. (A version rebuilt later by `dss sync` keeps its push time, so its event sorts
    among those of that time; webhook subscribers still get it.)"""
    return Event(f"{version}.{dsid}", BUNDLE_CREATED, dsid, version, commit, ref,
                 times.format_utc(bundles.parse_version(version)))


def bundle_deleted(dsid: str, version: str, commit: str, ref: str, *, reason: str, when: datetime
                   ) -> Event:
    """The event of a tombstone written at `when` (the tombstone keeps its id, so `dss sync` can
    write a missing one again with the same bytes)."""
    return Event(f"{bundles.format_version(when)}.{dsid}", BUNDLE_DELETED, dsid, version, commit, ref,
                 times.format_utc(when), reason)


def keys_collected(dsid: str, *, summary: str, when: datetime) -> Event:
    """The event of a `dss gc` run that collected keys of `dsid` (no version: `summary` says what
    went, and which report under `dss/gc/` lists the keys)."""
    return Event(f"{bundles.format_version(when)}.{dsid}", KEYS_COLLECTED, dsid, "", "", "",
                 times.format_utc(when), summary)


def meta_updated(dsid: str, version: str, *, summary: str, when: datetime) -> Event:
    """The event of a metadata record written at `when` for `dsid` (all its versions when
    `version` is empty); `summary` names the keys set and unset."""
    return Event(f"{bundles.format_version(when)}.{dsid}", META_UPDATED, dsid, version, "", "",
                 times.format_utc(when), summary)


def event_path(store_root: Path, event_id: str) -> Path:
    """Where an event's file is (or would be)."""
    day = check_event_id(event_id)[:10]
    return store_root / paths.EVENTS / day / f"{event_id}.json"


def check_event_id(event_id: str) -> str:
    if not _ID_RE.fullmatch(event_id):
        raise DssError(f"bad event id {event_id!r}: expected <UTC time>.<dataset id>, e.g. "
                       "2026-11-22T031533.123456Z.<id> (see `dss events STORE`)")
    return event_id


def append(store_root: Path, event: Event) -> Path:
    """Write the event's file, exclusively: an event is written once and never changed."""
    path = event_path(store_root, event.event_id)
    data = json.dumps(event.to_json(), sort_keys=True).encode() + b"\n"
    try:
        if not create_exclusive(path, data, mode=0o444) and path.read_bytes() != data:
            raise DssError(f"event {event.event_id} already exists with other content")
    except OSError as e:
        raise from_os_error(e, str(path), writing=True) from e
    return path


def load(path: Path) -> Event:
    try:
        return Event(**json.loads(path.read_bytes()))
    except (ValueError, TypeError) as e:
        raise DssError(f"event file {path} is corrupt ({e}); restore it from a mirror (`dss sync`)") from e


def since_key(since: str | None) -> str:
    """A `--since` value (an event id, or a time: ISO 8601 or DSS form) as a name to compare with.

    Events whose id sorts after the key are newer."""
    if not since:
        return ""
    if _ID_RE.fullmatch(since):
        return since
    try:
        when = bundles.parse_version(since)
    except DssError:
        try:
            when = times.parse_utc(since)
        except ValueError as e:
            raise DssError(f"--since {since!r} is neither an event id nor a time; give e.g. "
                           "2026-11-22T03:15:33Z or an event id from `dss events`") from e
    return bundles.format_version(when)  # sorts before any event id at that time


def iter_events(store_root: Path, since: str | None = None) -> Iterator[tuple[Event | None, Path]]:
    """Events after `since`, oldest first; a corrupt file yields (None, path) rather than stop."""
    key = since_key(since)
    root = store_root / paths.EVENTS
    for day in list_dir(root):
        if not DAY_RE.fullmatch(day) or (key and day < key[:10]):
            continue
        for name in list_dir(root / day):
            if name.startswith(".") or not name.endswith(".json") or name[:-5] <= key:
                continue
            path = root / day / name
            try:
                yield load(path), path
            except DssError as e:
                logger.warning("%s", e)
                yield None, path

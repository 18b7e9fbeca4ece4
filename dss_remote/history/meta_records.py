"""Store-side metadata (`dss meta set`): immutable records under `dss/meta/<dataset id>/`.

A record is `<record id>.json` = {format, dataset_id, version, set, unset, by, at, event_id}: it
sets keys to JSON values and unsets others, for one bundle version or (`version` null) for every
version of the dataset. A version's metadata is every record that applies to it, replayed in
record order (dataset-wide and version records interleaved by time), so a DOI minted later is one
new record, the history stays, and the `meta.updated` event it names tells indexes and subscribers.
Records are written once and mirrored like the manifests; the search index is only a cache of them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ria_store.atomic import create_exclusive
from ria_store.errors import DssError, from_os_error
from ria_store.layout import check_dataset_id
from ria_store.listing import list_dir
from ria_store.locks import FileLock

from ..config import paths
from . import bundles, events, times

logger = logging.getLogger(__name__)

FORMAT = "dss-meta/1"
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*")
#: a record's JSON must stay small: it is read for every document of the dataset
MAX_RECORD_BYTES = 64 * 1024


@dataclass(frozen=True)
class MetaRecord:
    dataset_id: str
    version: str | None
    set: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    by: str = ""
    at: str = ""
    event_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def applies_to(self, version: str) -> bool:
        return self.version is None or self.version == version


def meta_dir(store_root: Path, dsid: str) -> Path:
    return store_root / paths.META / check_dataset_id(dsid)


def check_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key) or len(key) > 200:
        raise DssError(f"metadata key {key!r} is not a dotted name like doi or funding.grant "
                       "(letters, digits, _ and -, parts separated by dots)")
    return key


def parse_assignments(items: Sequence[str], unset_keys: Sequence[str] = ()
                      ) -> tuple[dict[str, Any], list[str]]:
    """`key=value` (a string) and `key:=json` (any JSON value) as the keys to set, with the keys
    to unset checked."""
    out: dict[str, Any] = {}
    unset = [check_key(k) for k in unset_keys]
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise DssError(f"metadata {item!r} is neither key=value nor key:=JSON; e.g. "
                           "doi=10.5281/zenodo.123 or year:=2026")
        if key.endswith(":"):
            key = key[:-1]
            try:
                out[check_key(key)] = json.loads(value)
            except ValueError as e:
                raise DssError(f"metadata {item!r}: the value after := is not JSON ({e}); quote a "
                               "string (key:='\"text\"') or use key=text") from e
        else:
            out[check_key(key)] = value
    both = sorted(set(out) & set(unset))
    if both:
        raise DssError(f"metadata key(s) {', '.join(both)} both set and unset; give each once")
    if not out and not unset:
        raise DssError("no metadata given: name at least one key=value")
    return out, unset


def _load(path: Path) -> MetaRecord:
    try:
        obj = json.loads(path.read_bytes())
        if not isinstance(obj, dict) or obj.pop("format", None) != FORMAT:
            raise ValueError(f"not {FORMAT}")
        return MetaRecord(**obj)
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    except (ValueError, TypeError) as e:
        raise DssError(f"metadata record {path} is damaged ({e}); restore it from a mirror "
                       "(`dss sync`)") from e


def records(store_root: Path, dsid: str) -> list[MetaRecord]:
    """The dataset's metadata records in the order written; a damaged one is a warning."""
    directory = meta_dir(store_root, dsid)
    out = []
    for name in list_dir(directory):
        if name.startswith(".") or not name.endswith(".json"):
            continue
        try:
            out.append(_load(directory / name))
        except DssError as e:
            logger.warning("%s", e)
    return out


def merged(recs: Sequence[MetaRecord], version: str) -> dict[str, Any]:
    """The metadata of one bundle version: its records replayed in order (keys sorted)."""
    out: dict[str, Any] = {}
    for r in recs:
        if r.applies_to(version):
            out.update(r.set)
            for k in r.unset:
                out.pop(k, None)
    return dict(sorted(out.items()))


def expand(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested objects (`funding.grant` → {"funding": {"grant": …}}), as documents
    and queries see them."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        node[last] = value
    return out


def _summary(values: Mapping[str, Any], unset: Sequence[str]) -> str:
    return ", ".join([f"set {k}" for k in values] + [f"unset {k}" for k in unset])


def event_of(rec: MetaRecord) -> events.Event:
    """The record's `meta.updated` event, as `add` made it (`dss sync` writes a missing one)."""
    event = events.meta_updated(rec.dataset_id, rec.version or "", summary=_summary(rec.set, rec.unset),
                                when=times.parse_utc(rec.at))
    if event.event_id != rec.event_id:
        raise DssError(f"metadata record of {rec.dataset_id} at {rec.at} names event {rec.event_id}, "
                       f"but its time makes {event.event_id}")
    return event


def add(store_root: Path, dsid: str, version: str | None, values: Mapping[str, Any],
        unset: Sequence[str], *, who: str, now: datetime | None = None) -> tuple[MetaRecord, events.Event]:
    """Write a new record and return it with its `meta.updated` event (the caller publishes it:
    a missing event is written again by `dss index`/`dss sync` from the record's `event_id`)."""
    if version is not None:
        bundles.parse_version(version)
    directory = meta_dir(store_root, dsid)
    summary = _summary(values, unset)
    with FileLock(store_root / paths.META / f".{dsid}.lock"):
        when = now or times.now()
        while (directory / f"{bundles.format_version(when)}.json").exists() or events.event_path(
                store_root, f"{bundles.format_version(when)}.{dsid}").exists():
            when += timedelta(microseconds=1)
        event = events.meta_updated(dsid, version or "", summary=summary, when=when)
        rec = MetaRecord(dsid, version, dict(values), list(unset), who, times.format_utc(when),
                         event.event_id)
        data = json.dumps(rec.to_json(), sort_keys=True, indent=1).encode() + b"\n"
        if len(data) > MAX_RECORD_BYTES:
            raise DssError(f"metadata record is {len(data)} bytes; keep one record under "
                           f"{MAX_RECORD_BYTES} (store large metadata as a JSON file in the dataset)")
        p = directory / f"{bundles.format_version(when)}.json"
        try:
            if not create_exclusive(p, data, mode=0o444):
                raise DssError(f"{p} appeared while writing; run `dss meta set` again")
        except OSError as e:
            raise from_os_error(e, str(p), writing=True) from e
    logger.info("dataset %s: metadata %s (%s) by %s", dsid, summary, version or "all versions", who)
    return rec, event

"""One webhook outbox entry file: its format, reading it strictly, and writing it atomically.

`dss/outbox/<subscription id>/<event id>.json` holds the event, the delivery id and how the
attempts went; dead letters (`dss/outbox-dead/…`) use the same format plus `reason` and `dead_at`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ria_store.atomic import write_bytes_atomic
from ria_store.errors import DssError, from_os_error
from ria_store.listing import list_dir

from ..config import paths
from ..history import times
from ..history.events import Event, check_event_id
from . import subscriptions

FORMAT = "dss-outbox/1"
#: delivery ids are uuid5(this, "<subscription id>/<event id>"): the same on every retry
DELIVERY_NAMESPACE = uuid.UUID("5b0e4c0e-3f0e-4d8e-9f3a-6c1d2a7b9e41")
_REQUIRED = {"format", "subscription_id", "delivery_id", "event", "attempts", "enqueued", "next_attempt"}
_OPTIONAL = {"first_attempt", "last_attempt", "last_error", "reason", "dead_at"}


class CorruptEntryError(DssError):
    """An outbox file that is not a readable delivery entry."""


def delivery_id(subscription_id: str, event_id: str) -> str:
    """The X-DSS-Delivery id of an event for a subscriber; receivers deduplicate on it."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{subscription_id}/{event_id}"))


def _timestamp(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"time {value!r} is not a string")
    return times.parse_utc(value).timestamp()


def _opt_timestamp(value: Any) -> float | None:
    return None if value is None else _timestamp(value)


@dataclass(frozen=True)
class Entry:
    """One pending delivery: an event for one subscriber, and how its attempts went."""

    path: Path
    subscription_id: str
    event: Event
    delivery_id: str
    attempts: int
    enqueued: float
    next_attempt: float
    first_attempt: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "subscription_id": self.subscription_id,
                "delivery_id": self.delivery_id, "event": self.event.to_json(),
                "attempts": self.attempts, "enqueued": times.format_utc(self.enqueued),
                "next_attempt": times.format_utc(self.next_attempt),
                "first_attempt": None if self.first_attempt is None else times.format_utc(self.first_attempt),
                "last_attempt": None if self.last_attempt is None else times.format_utc(self.last_attempt),
                "last_error": self.last_error}


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n"


def entry_path(store_root: Path, subscription_id: str, event_id: str) -> Path:
    return store_root / paths.OUTBOX / subscription_id / f"{event_id}.json"


def load_entry(path: Path) -> Entry:
    """Read an outbox (or dead-letter) file; CorruptEntryError says what is wrong with it."""
    try:
        obj = json.loads(path.read_bytes())
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        missing = _REQUIRED - set(obj)
        unknown = set(obj) - _REQUIRED - _OPTIONAL
        if missing or unknown:
            raise ValueError(f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        if obj["format"] != FORMAT:
            raise ValueError(f"format {obj['format']!r}, not {FORMAT}")
        if not isinstance(obj["event"], dict):
            raise ValueError("event is not an object")
        event = Event(**obj["event"])
        if not all(isinstance(v, str) for v in event.to_json().values()):
            raise ValueError("event fields must be strings")
        check_event_id(event.event_id)
        sub_id = obj["subscription_id"]
        if sub_id != path.parent.name or not subscriptions.is_subscription_id(sub_id):
            raise ValueError(f"subscription id {sub_id!r} does not match its directory")
        if path.name != f"{event.event_id}.json":
            raise ValueError(f"event id {event.event_id!r} does not match the file name")
        if obj["delivery_id"] != delivery_id(sub_id, event.event_id):
            raise ValueError(f"delivery id {obj['delivery_id']!r} is not this event's")
        attempts = obj["attempts"]
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            raise ValueError(f"attempts {attempts!r} is not a count")
        last_error = obj.get("last_error")
        if last_error is not None and not isinstance(last_error, str):
            raise ValueError("last_error is not a string")
        return Entry(path, sub_id, event, obj["delivery_id"], attempts, _timestamp(obj["enqueued"]),
                     _timestamp(obj["next_attempt"]), _opt_timestamp(obj.get("first_attempt")),
                     _opt_timestamp(obj.get("last_attempt")), last_error)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    except (ValueError, TypeError, DssError) as e:
        raise CorruptEntryError(f"outbox entry {path} is corrupt ({e})") from e


def entry_files(directory: Path, subscription_id: str | None = None) -> list[Path]:
    """The entry files `<directory>/<subscription id>/<event id>.json` (the outbox, the dead
    letters or the quarantine), by subscription then event (oldest first); only those of
    `subscription_id` if given."""
    out = []
    for d in list_dir(directory):
        if d.startswith(".") or (subscription_id is not None and d != subscription_id):
            continue
        if not (directory / d).is_dir():  # a stray file beside the subscription directories
            continue
        out += [directory / d / n for n in list_dir(directory / d)
                if n.endswith(".json") and not n.startswith(".")]
    return out


def pending_paths(store_root: Path, subscription_id: str | None = None) -> list[Path]:
    """Every outbox entry file (of one subscription if given), by subscription then event."""
    return entry_files(store_root / paths.OUTBOX, subscription_id)


def save(entry: Entry) -> None:
    """Rewrite an entry after an attempt (atomically: the old or the new file, never a mix)."""
    try:
        write_bytes_atomic(entry.path, dumps(entry.to_json()))
    except OSError as e:
        raise from_os_error(e, str(entry.path), writing=True) from e


def remove(entry: Entry) -> None:
    """Forget a delivered entry."""
    try:
        entry.path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise from_os_error(e, str(entry.path), writing=True) from e

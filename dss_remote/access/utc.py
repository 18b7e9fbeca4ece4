"""UTC times in the form the store writes them everywhere (`history/times.py`, which `access` may
not import): ISO 8601 ending in `Z`."""

from __future__ import annotations

from datetime import datetime, timezone


def format_utc(when: datetime) -> str:
    """`when` (aware) as ISO 8601 in UTC with microseconds, ending in `Z`."""
    return when.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time ending in `Z` or an offset as an aware UTC datetime; ValueError otherwise."""
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return when.astimezone(timezone.utc)

"""UTC times as the store writes them (ISO 8601 ending in `Z`, and the compact form of version ids)
and reads them (`Z` or `+00:00`: manifests written by 0.1 end in `+00:00`)."""

from __future__ import annotations

from datetime import datetime, timezone

#: bundle version ids and event ids: the HCA Data Store's form, colons dropped (`2026-11-22T031533.123456Z`)
COMPACT_FORMAT = "%Y-%m-%dT%H%M%S.%fZ"


def now() -> datetime:
    return datetime.now(timezone.utc)


def format_utc(when: datetime | float, timespec: str = "microseconds") -> str:
    """`when` (an aware datetime, or seconds since the epoch) as ISO 8601 in UTC ending in `Z`,
    e.g. `2026-11-22T03:15:33.123456Z` (`timespec` as for `datetime.isoformat`)."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(f"time {when} has no time zone; give an aware datetime")
        when = when.astimezone(timezone.utc)
    else:
        when = datetime.fromtimestamp(when, timezone.utc)
    return when.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time (ending in `Z`, an offset such as `+00:00`, or nothing, which means UTC) as
    an aware UTC datetime; ValueError if `text` is not one."""
    if text[-1:] in ("Z", "z"):  # datetime.fromisoformat takes `Z` only from Python 3.11 on
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def format_compact(when: datetime) -> str:
    """`when` in the compact form of version ids (UTC, colons dropped, microseconds)."""
    return when.astimezone(timezone.utc).strftime(COMPACT_FORMAT)


def parse_compact(text: str) -> datetime:
    """The aware UTC time of a compact-form `text`; ValueError if it is not in that form."""
    return datetime.strptime(text, COMPACT_FORMAT).replace(tzinfo=timezone.utc)

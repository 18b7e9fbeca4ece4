"""Lifetimes as admins type them: `90d`, `12h`, `30m`, `3600s`, `2w`, or `never`."""

from __future__ import annotations

import re
from datetime import timedelta

from ria_store.errors import ConfigError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=36525)
_DURATION_RE = re.compile(r"([1-9][0-9]{0,6})([smhdw])")


def parse_duration(text: str) -> timedelta | None:
    """The lifetime `text` names; None for `never`; ConfigError naming the accepted forms."""
    if text == "never":
        return None
    m = _DURATION_RE.fullmatch(text.strip())
    if not m:
        raise ConfigError(f"lifetime {text!r} is not a number with a unit s, m, h, d or w "
                          "(e.g. 90d, 12h) or `never`")
    try:
        span = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    except OverflowError:
        span = MAX_DURATION + MAX_DURATION
    if span > MAX_DURATION:
        raise ConfigError(f"lifetime {text!r} is longer than 100 years; use `never` instead")
    return span

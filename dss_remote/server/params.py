"""Query parameters as the DSS takes them: each named once (identical repeats are fine: the hca
client re-sends them when it follows a `Link`), checked against its form, a 400 naming it if not."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import Request

from ria_store.errors import DssError

from ..history.bundles import parse_version
from .dss_mapping import UUID_RE
from .errors import ApiError
from .replicas import served_replicas

_PREFIX_RE = re.compile(r"[0-9a-f-]{0,36}")


def bad(title: str) -> ApiError:
    return ApiError(400, "illegal_arguments", title)


def single(request: Request, name: str) -> str | None:
    """The value of query parameter `name` (None if absent); 400 if it is given with two values."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(set(values)) > 1:
        raise bad(f"query parameter {name} is given more than once with different values "
                  f"({', '.join(repr(v) for v in sorted(set(values))[:3])}); give it once")
    return values[0]


def check_known(request: Request, known: Iterable[str]) -> None:
    """400 for a query parameter this route does not take (a typo would otherwise be ignored)."""
    allowed = set(known)
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise bad(f"unknown query parameter {unknown[0]!r}; this route takes "
                  f"{', '.join(sorted(allowed)) or 'none'}")


def check_uuid(value: str, what: str = "uuid") -> str:
    """A lower-case UUID, else 400 (this also refuses `..`, `/` and any other path)."""
    if not UUID_RE.fullmatch(value):
        raise bad(f"{what} {value[:80]!r} is not a UUID like 4dc8313d-2567-4475-a4a0-17cdebad9c1d")
    return value


def version(request: Request, name: str = "version") -> str | None:
    """A DSS version id (`2026-11-22T031533.123456Z`), else 400."""
    value = single(request, name)
    if value is None:
        return None
    try:
        parse_version(value)
    except DssError as e:
        raise bad(f"{name} {value[:80]!r} is not a version like 2026-11-22T031533.123456Z") from e
    return value


def replica(request: Request) -> str | None:
    """The `replica` parameter as given: absent, `aws`, `gcp` or a replica's dss name (one rule
    for every route: server/replicas.py), else 400 naming the known ones."""
    value = single(request, "replica")
    if value is not None:
        served_replicas(request.app.state.store_root).resolve(value)
    return value


def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole number from `low` to `high`, else 400."""
    value = single(request, name)
    if value is None:
        return default
    if not re.fullmatch(r"\d{1,9}", value) or not low <= int(value) <= high:
        raise bad(f"{name} {value[:80]!r} must be a whole number from {low} to {high}")
    return int(value)


def uuid_prefix(request: Request) -> str:
    """The `prefix` of /bundles/all: the start of a UUID (lower-case hex and dashes)."""
    value = single(request, "prefix") or ""
    if not _PREFIX_RE.fullmatch(value):
        raise bad(f"prefix {value[:80]!r} must be the start of a UUID (0-9, a-f and -)")
    return value


def bundle_fqid(value: str, name: str) -> tuple[str, str]:
    """`<uuid>.<version>` (a paging token), else 400."""
    dsid, _, ver = value.partition(".")
    if not UUID_RE.fullmatch(dsid):
        raise bad(f"{name} {value[:80]!r} is not <bundle uuid>.<version>")
    try:
        parse_version(ver)
    except DssError as e:
        raise bad(f"{name} {value[:80]!r} is not <bundle uuid>.<version>") from e
    return dsid, ver

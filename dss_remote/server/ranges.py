"""The `Range` header of a GET (RFC 9110 byte ranges): which bytes of a body of known size to send."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .errors import ApiError

logger = logging.getLogger(__name__)

_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
#: more ranges than this in one request are refused (each is a part of a multipart answer)
MAX_RANGES = 16


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` inclusive of a body of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def unsatisfiable(size: int, why: str) -> ApiError:
    """416 with the `Content-Range: bytes */SIZE` RFC 9110 asks for, and a DSS error body."""
    return ApiError(416, "range_not_satisfiable", f"Range {why}; this file has {size} bytes, so ask "
                    f"for bytes=FIRST-LAST with FIRST < {size}, bytes=FIRST- or bytes=-COUNT",
                    {"Content-Range": f"bytes */{size}"})


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range `header` asks for; None for the whole body (no header, or several ranges,
    which we answer with the whole body as RFC 9110 allows); ApiError 416 for a malformed or
    unsatisfiable one."""
    if header is None:
        return None
    unit, eq, specs = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        raise unsatisfiable(size, f"{header!r} is not a byte range (bytes=FIRST-LAST)")
    parts = specs.split(",")
    if len(parts) > MAX_RANGES:
        raise unsatisfiable(size, f"asks for {len(parts)} ranges, more than {MAX_RANGES}")
    if len(parts) > 1:
        for part in parts:  # each must be one a single-range request may ask for
            try:
                parse_range(f"bytes={part}", size)
            except ApiError:
                raise unsatisfiable(size, f"{header!r} holds a malformed or unsatisfiable range "
                                    f"{part.strip()!r}") from None
        return None
    m = _SPEC.fullmatch(specs)
    if m is None or (not m[1] and not m[2]):
        raise unsatisfiable(size, f"{header!r} is malformed")
    first, last = m[1], m[2]
    if not first:  # suffix: the last COUNT bytes
        count = int(last)
        if count == 0 or size == 0:
            raise unsatisfiable(size, f"{header!r} asks for no bytes")
        return ByteRange(max(0, size - count), size - 1, size)
    start = int(first)
    end = size - 1 if not last else int(last)
    if last and end < start:
        raise unsatisfiable(size, f"{header!r} ends before it starts")
    if start >= size:
        raise unsatisfiable(size, f"{header!r} starts at or after the end of the file")
    return ByteRange(start, min(end, size - 1), size)

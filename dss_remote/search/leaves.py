"""A document as its leaves: (field, scalar) pairs, the unit every index and evaluator works on.

Arrays are transparent (every element's leaves sit at the array's field), nulls and empty
containers give none. `file_part` splits a field under `files.<name>.` so `files.*.X` queries
can find X in any indexed file (file names never hold a dot: documents.file_field).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .query import ANY_FILE, QueryError, Scalar

_TOKEN_RE = re.compile(r"[^\W_]+")


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Scalar]]:
    """Every (dotted field, scalar) of a JSON value, depth first, in document order."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v, prefix)
    elif isinstance(value, (str, int, float)) and prefix:  # bool is an int
        yield prefix, value


def sub_field(field: str) -> str | None:
    """The part of a field below its file (`files.a_json.x.y` → `x.y`, `files.a_json` → ``);
    None for a field that is not inside an indexed file."""
    parts = field.split(".", 2)
    if len(parts) < 2 or parts[0] != "files":
        return None
    return parts[2] if len(parts) == 3 else ""


def split_pattern(field: str) -> tuple[str, str | None]:
    """A query field as (field, None), or ("files.*", sub) for `files.*.sub` (sub "" for
    `files.*` alone); QueryError for `*` anywhere else."""
    parts = field.split(".")
    if ANY_FILE not in parts:
        return field, None
    if parts[0] == "files" and parts[1] == ANY_FILE and ANY_FILE not in parts[2:]:
        return "files.*", ".".join(parts[2:])
    raise QueryError(f"field {field!r}: '*' may only stand for the file in files.*.<field> "
                     "(e.g. files.*.species)", clause=field)


#: identifier fields, matched whole (as Elasticsearch `keyword` fields): full text skips them, and
#: `match` on one is a `term`. Every row field of `manifest.files` is one too, except `path`.
KEYWORD_FIELDS = frozenset({"uuid", "version", "bundle_fqid", "dataset_id", "created", "ref", "commit"})
_TEXT_ROW_FIELDS = frozenset({"manifest.files.path"})


def is_text(field: str) -> bool:
    """Whether a field's strings are full text (tokenized) rather than identifiers."""
    if field in KEYWORD_FIELDS:
        return False
    if field.startswith("manifest."):
        return field in _TEXT_ROW_FIELDS
    return True


def tokens(text: str) -> list[str]:
    """Full-text tokens: runs of letters and digits, case-folded (as SQLite's unicode61)."""
    return _TOKEN_RE.findall(text.casefold())

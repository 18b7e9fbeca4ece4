"""What a search index is: the small contract a site's own engine implements to replace ours.

An index consumes the store's events and answers queries (query.py's tree and semantics):

- `apply(event)`: bring the index up to date with one journal event (`bundle.created`,
  `bundle.deleted`, `meta.updated`; others may be ignored). It must be idempotent and may look
  at the store (the event names the version; `documents.build` makes its document), so events
  applied twice or out of order leave the same index.
- `search(query, allowed=…, sort=…, limit=…, offset=…, after=…, with_docs=…)`: `Results`.
  `allowed` (dataset ids, or None for all) is enforced by the index, so a page never holds what
  the caller may not read and `total` never counts it.
- `rebuild()`: the whole index again from the store's manifests, tombstones and metadata
  records alone, replacing the old one atomically.
- `catch_up()`: `apply` every journal event not yet applied (how `dss index` and `dss serve`
  keep it current).

`sqlite_index.SqliteIndex` is the embedded default; docs/search.md describes an OpenSearch one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..history.events import Event
from .query import Query, Sort


@dataclass(frozen=True)
class Hit:
    bundle_fqid: str
    dataset_id: str
    version: str
    #: the whole document, when asked for (`with_docs`)
    doc: dict[str, Any] | None = None


@dataclass(frozen=True)
class Results:
    #: every match the caller may see, not only this page
    total: int
    hits: list[Hit]


class SearchIndex(Protocol):
    def apply(self, event: Event) -> Any: ...

    def catch_up(self) -> Any: ...

    def rebuild(self) -> Any: ...

    def search(self, query: Query, *, allowed: Collection[str] | None = None, sort: Sort | None = None,
               limit: int = 100, offset: int = 0, after: str | None = None,
               with_docs: bool = False) -> Results: ...

    def close(self) -> None: ...


def open_index(store_root: Path, *, retry_missing_every: float = 0.0) -> SearchIndex:
    """The store's index (the embedded one; a site's engine would be chosen here).
    `retry_missing_every`: how often a catch-up looks again for indexed files whose content was
    not in the store yet (seconds; 0: every catch-up)."""
    from .sqlite_index import SqliteIndex  # noqa: PLC0415

    return SqliteIndex(store_root, retry_missing_every=retry_missing_every)

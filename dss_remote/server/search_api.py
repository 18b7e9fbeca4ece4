"""`POST /v1/search`: the HCA DSS metadata search (an Elasticsearch query) over the store's search index.

The body is `{"es_query": {...}}` (search/es_dsl.py's subset; none, or `{}`, is everything). Results are
bundle versions the caller may read, by bundle fqid, paged as the DSS pages them: `206` with an absolute
`Link` whose `search_after` is the last fqid of the page (the hca client re-POSTs the same body to it).
Search is not a write: a `--read-only` server answers it, as the DSS's read-only mode did.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from ria_store.errors import DssError

from ..access.gate import Identity
from ..history import bundle_store
from ..search import es_dsl
from ..search.engine import Hit, Results, SearchIndex, open_index
from ..search.query import Query, QueryError, Sort
from . import params
from .app_state import store_root
from .caller import caller, gate_of
from .errors import ApiError
from .paging import base_url, page

logger = logging.getLogger(__name__)

router = APIRouter()

Caller = Annotated[Identity | None, Depends(caller)]

#: per_page: least, most, default (the DSS's: a raw page carries whole documents, so at most 10)
SUMMARY_PAGE = (10, 500, 100)
RAW_PAGE = (1, 10, 10)
OUTPUT_FORMATS = ("summary", "raw")
#: a search catches the index up first when the last catch-up is older than this (seconds)
REFRESH_SECONDS = 1.0
#: how often a catch-up looks again for JSON content pushed after its commit
RETRY_MISSING_SECONDS = 60.0
#: the largest search body read
MAX_BODY = 1 << 20
_ORDER = Sort("bundle_fqid", descending=False)
_EXAMPLE = '{"es_query": {"query": {"match": {"files.sample_json.species": "mouse"}}}}'


class ServedIndex:
    """The store's search index as one server process uses it: caught up from the journal at start and
    then before a search whose last catch-up is older than `refresh_seconds` (one catch-up at a time;
    other searches wait for it, so they see what it applied), searched by each thread through its own
    connection. An index this process may not write (a store it may only read) is searched as it is,
    with one warning."""

    def __init__(self, store_root: Path, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store_root = store_root
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._caught_up_at: float | None = None
        self._warned = False
        self._readers = threading.local()
        self._writer: SearchIndex | None = None

    def _due(self) -> bool:
        last = self._caught_up_at
        return last is None or time.monotonic() - last >= self.refresh_seconds

    def catch_up(self) -> None:
        """Apply the journal's new events, unless that was done less than `refresh_seconds` ago."""
        if not self._due():
            return
        with self._lock:
            if not self._due():  # another thread did while this one waited
                return
            # one writer for the process: a catch-up reads aliases, metadata and the store's search
            # settings afresh, and keeps the parsed JSON files (content-addressed) for the next one
            if self._writer is None:
                self._writer = open_index(self.store_root, retry_missing_every=RETRY_MISSING_SECONDS)
            writer = self._writer
            try:
                writer.catch_up()
            except Exception as e:  # best effort: a search answers from what the index holds
                if not self._warned:
                    expected = isinstance(e, (DssError, OSError, sqlite3.Error))
                    logger.warning("search index of %s cannot be brought up to date (%s); searching what "
                                   "it holds (run `dss index %s` as a user who may write the store)",
                                   self.store_root, e, self.store_root, exc_info=not expected)
                    self._warned = True
                else:
                    logger.debug("search index catch-up failed again: %s", e)
            else:
                self._warned = False
            self._caught_up_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def start(self) -> None:
        """Catch up in the background (at server start: a first build may take a while, and every
        other route answers meanwhile; a search waits for it)."""
        threading.Thread(target=self.catch_up, name="search-index-catch-up", daemon=True).start()

    def search(self, query: Query, **options: Any) -> Results:
        reader: SearchIndex | None = getattr(self._readers, "index", None)
        if reader is None:
            reader = self._readers.index = open_index(self.store_root)
        return reader.search(query, **options)


def stop(app: FastAPI) -> None:
    """At shutdown: close the catch-up's writer (its connection, and any replicas it opened)."""
    index: ServedIndex = app.state.search_index
    index.close()


def served_index(request: Request) -> ServedIndex:
    index: ServedIndex = request.app.state.search_index
    return index


def start(app: FastAPI) -> None:
    """What the app's lifespan runs at start: the index catches up. Not on a `--read-only` server,
    which writes nothing to the store of its own accord (its first search catches up)."""
    if getattr(app.state, "read_only", False):
        return
    index: ServedIndex = app.state.search_index
    index.start()


@router.post("/v1/search")
async def post_search(request: Request, who: Caller) -> Response:
    """Bundle versions matching `es_query` that the caller may read, by bundle fqid, paged."""
    raw = await _bounded_body(request)
    return await anyio.to_thread.run_sync(_search, request, who, raw)


async def _bounded_body(request: Request) -> bytes:
    """The request body, refused with 413 past MAX_BODY (a query is small; memory is not free)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, "too_large", f"the search body is {declared} bytes; a search takes at most "
                       f"{MAX_BODY} (an es_query is small: send the query, not data)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "too_large", f"the search body is over {MAX_BODY} bytes; a search "
                           "takes at most that (an es_query is small: send the query, not data)")
        chunks.append(chunk)
    return b"".join(chunks)


def _search(request: Request, who: Identity | None, raw: bytes) -> Response:
    params.check_known(request, ("replica", "output_format", "per_page", "search_after"))
    replica = params.replica(request)
    output = params.single(request, "output_format") or "summary"
    if output not in OUTPUT_FORMATS:
        raise params.bad(f"output_format {output[:80]!r} must be summary or raw")
    per_page = _per_page(request, output)
    after = params.single(request, "search_after")
    if after is not None:
        params.bundle_fqid(after, "search_after")
    es_query = _es_query(raw)
    try:
        query = es_dsl.parse_es(es_query)
    except QueryError as e:
        raise params.bad(str(e)) from e
    logger.debug("search %s (per_page %d, after %s)", query, per_page, after)
    results = _run(request, who, query, per_page=per_page, after=after, with_docs=output == "raw")
    hits = results.hits[:per_page]
    base = base_url(request)
    found = [_result(base, hit, replica, output) for hit in hits]
    following = ({"replica": replica, "output_format": output, "per_page": per_page,
                  "search_after": hits[-1].bundle_fqid} if len(results.hits) > per_page else None)
    body = {"es_query": es_query, "results": found, "total_hits": results.total}
    return page(request, body, "results", following)


def _per_page(request: Request, output: str) -> int:
    low, high, default = RAW_PAGE if output == "raw" else SUMMARY_PAGE
    try:
        return params.integer(request, "per_page", default, low, high)
    except ApiError as e:
        if output == "raw":
            raise params.bad(f"{e.title} with output_format raw (whole documents: the DSS's limit)") from e
        raise


def _es_query(raw: bytes) -> Any:
    """The body's `es_query` (`{}` when there is no body or no es_query); 400 for anything else."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError as e:
        raise params.bad("the body is not JSON this server reads: it is nested too deeply") from e
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise params.bad(f"the body is not JSON ({e}); send an object like {_EXAMPLE}") from e
    if not isinstance(body, dict):
        raise params.bad(f"the body must be a JSON object like {_EXAMPLE}, got {_kind(body)}")
    unknown = sorted(set(body) - {"es_query"})
    if unknown:
        raise params.bad(f"unknown body field {unknown[0][:80]!r}; a search takes es_query")
    return body.get("es_query", {})


def _kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _run(request: Request, who: Identity | None, query: Query, *, per_page: int, after: str | None,
         with_docs: bool) -> Results:
    """One page (and one more hit, to tell whether there is a next page) of the caller's results."""
    gate = gate_of(request)
    # the index enforces `allowed`: hidden datasets are neither listed nor counted in total_hits
    allowed = [d for d in bundle_store.datasets(store_root(request)) if gate.may_read(who, d)]
    index = served_index(request)
    index.catch_up()
    try:
        return index.search(query, allowed=allowed, sort=_ORDER, limit=per_page + 1, after=after,
                            with_docs=with_docs)
    except QueryError as e:
        raise params.bad(str(e)) from e
    except (DssError, OSError, sqlite3.Error) as e:  # no index and none could be built, or unreadable
        logger.warning("search failed: %s", e)  # the details name server paths: the log has them
        raise ApiError(503, "unavailable", "search is not available: the store's search index is missing or "
                       "unreadable (an admin of the server can build it with `dss index STORE`)") from e


def _result(base: str, hit: Hit, replica: str | None, output: str) -> dict[str, Any]:
    query = urlencode([(k, v) for k, v in (("version", hit.version), ("replica", replica)) if v])
    item: dict[str, Any] = {"bundle_fqid": hit.bundle_fqid,
                            "bundle_url": f"{base}/v1/bundles/{hit.dataset_id}?{query}",
                            "search_score": None}
    if output == "raw":
        item["metadata"] = hit.doc
    return item

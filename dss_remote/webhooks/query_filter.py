"""Query subscriptions: checking a subscription's query, and running it on an event's bundle document.

A subscription may carry one query over the bundle document of `search.documents` (docs/search.md,
"Query subscriptions"): `query` (`dss search`'s language), `jmespath_query` (the DSS v2 API's:
it matches when `jmespath.search` gives a truthy value) or `es_query` (the DSS v1 API's, the
Elasticsearch subset of `search.es_dsl`). The document a query sees is the version's search
document plus the DSS's `event_type` (CREATE, TOMBSTONE, or our UPDATE for `meta.updated`) and
`bundle_info` {uuid, version}, so a DSS subscriber's `event_type=='CREATE'` works here too.

Which version an event is about: `bundle.created` and `bundle.deleted` name it (a deleted
version's manifest stays, so subscribers learn that a version they got is gone); `meta.updated`
names it, or, dataset-wide, means the dataset's latest live version. `keys.collected` is about no
version and never matches a query. A document that cannot be built (an unreadable manifest or
config) matches: the event is delivered and a warning logged, since a subscriber who misses a
version cannot tell, and one who gets an extra one can. A query that fails on a document (a
JMESPath type error, as the DSS) does not match, with a warning. Annexed files are read loose
from the store only (nothing from replicas: this runs inside `git push`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions

from ria_store.errors import DssError

from ..config.store_config import read_config
from ..history import bundle_store, events, meta_records, tombstones
from ..search import documents, evaluate, query_language
from ..search.es_dsl import parse_es
from ..search.query import Query, QueryError

logger = logging.getLogger(__name__)

#: the DSS's event_type of each of our events a query can match
EVENT_TYPES = {events.BUNDLE_CREATED: "CREATE", events.BUNDLE_DELETED: "TOMBSTONE",
               events.META_UPDATED: "UPDATE"}
JMESPATH_EXAMPLE = "files.meta_sample_json.species == 'mouse'"
_JMESPATH_SYNTAX = "https://jmespath.org/specification.html"


# -- checking (at subscribe time) -------------------------------------------------------------

def check_query(text: str) -> Query:
    """`dss search`'s language; QueryError (one line, with the position) otherwise."""
    if not text.strip():
        raise QueryError("the query is empty; give one like meta.species:mouse (an empty query "
                         "would match every version: leave the query out instead)", position=0)
    return query_language.parse(text)


def check_es_query(obj: Any) -> Query:
    """An `es_query` object; QueryError naming the JSON path of the problem otherwise."""
    return parse_es(obj)


def check_jmespath(text: str) -> Any:
    """A compiled JMESPath expression; DssError naming the problem and its position otherwise.

    Unknown functions and wrong argument counts are refused here too (JMESPath itself finds them
    only when it runs the expression)."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        compiled = jmespath.compile(text)
    except jmespath_errors.EmptyExpressionError as e:
        raise DssError(f"the JMESPath expression is empty; give one like {JMESPATH_EXAMPLE}") from e
    except jmespath_errors.ParseError as e:
        if isinstance(e, jmespath_errors.IncompleteExpressionError):
            problem = "the expression is incomplete"
        elif isinstance(e, jmespath_errors.LexerError):
            problem = str(e.message)
        else:
            problem = str(e.msg)
        problem = problem[:1].lower() + problem[1:]
        raise DssError(f"JMESPath expression {shown!r} does not parse at position {e.lex_position} "
                       f"({problem}); see {_JMESPATH_SYNTAX}") from e
    except jmespath_errors.JMESPathError as e:
        raise DssError(f"JMESPath expression {shown!r} does not parse ({e}); see "
                       f"{_JMESPATH_SYNTAX}") from e
    bad_call = _function_problem(compiled.parsed)
    if bad_call:
        raise DssError(f"JMESPath expression {shown!r} {bad_call}; see {_JMESPATH_SYNTAX}"
                       "#built-in-functions")
    return compiled


def _function_problem(node: Any) -> str | None:
    """The first call in a parsed expression of a function JMESPath lacks, or with the wrong
    number of arguments."""
    if not isinstance(node, dict):
        return None
    children = node.get("children") or []
    if node.get("type") == "function_expression":
        name = str(node.get("value"))
        spec = jmespath_functions.Functions.FUNCTION_TABLE.get(name)
        if spec is None:
            return f"calls {name}(), which JMESPath does not have"
        signature = spec["signature"]
        variadic = bool(signature) and bool(signature[-1].get("variadic"))
        if (len(children) < len(signature)) if variadic else (len(children) != len(signature)):
            wanted = f"at least {len(signature)}" if variadic else str(len(signature))
            return f"calls {name}() with {len(children)} arguments; it takes {wanted}"
    for child in children:
        problem = _function_problem(child)
        if problem:
            return problem
    return None


# -- matching (at publish time) ---------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _query_test(text: str) -> Callable[[Mapping[str, Any]], bool]:
    parsed = query_language.parse(text)
    return lambda doc: evaluate.matches(parsed, doc)


@functools.lru_cache(maxsize=256)
def _es_test(canonical: str) -> Callable[[Mapping[str, Any]], bool]:
    parsed = parse_es(json.loads(canonical))
    return lambda doc: evaluate.matches(parsed, doc)


@functools.lru_cache(maxsize=256)
def _jmespath_test(text: str) -> Callable[[Mapping[str, Any]], bool]:
    compiled = check_jmespath(text)
    return lambda doc: bool(compiled.search(doc))


def passes(*, query: str | None = None, jmespath_query: str | None = None,
           es_query: Mapping[str, Any] | None = None, doc: Mapping[str, Any]) -> bool:
    """Whether `doc` matches the one query given; a query that fails is no match (DssError says
    why, for the caller's warning)."""
    try:
        if query is not None:
            test = _query_test(query)
        elif jmespath_query is not None:
            test = _jmespath_test(jmespath_query)
        elif es_query is not None:
            test = _es_test(json.dumps(es_query, sort_keys=True))
        else:
            return True
        return test(doc)
    except jmespath_errors.JMESPathError as e:
        why = " ".join(str(e).split())  # it may quote a large part of the document
        raise DssError(f"JMESPath expression failed on the document "
                       f"({why if len(why) <= 200 else why[:197] + '...'})") from e
    except RecursionError as e:
        raise DssError("the query nests too deeply to run") from e


def subscription_passes(sub_id: str, document: EventDocument, *, query: str | None = None,
                        jmespath_query: str | None = None,
                        es_query: Mapping[str, Any] | None = None) -> bool:
    """Whether the event of `document` goes to the query subscription `sub_id` (module docstring)."""
    if not document.has_version:
        return False
    doc = document.get()
    if doc is None:
        return True
    try:
        return passes(query=query, jmespath_query=jmespath_query, es_query=es_query, doc=doc)
    except DssError as e:
        logger.warning("subscription %s: its query cannot run on event %s (%s); not delivered",
                       sub_id, document.event.event_id, e)
        return False


class EventDocument:
    """The document an event's query subscriptions see, built on first use and then kept."""

    def __init__(self, store_root: Path, event: events.Event) -> None:
        self.store_root, self.event = store_root, event
        self._built = False
        self._doc: dict[str, Any] | None = None

    @property
    def has_version(self) -> bool:
        """Whether the event is about a bundle version at all (keys.collected is not)."""
        return self.event.type in EVENT_TYPES

    def get(self) -> dict[str, Any] | None:
        """The document; None when it cannot be built (logged once: deliver anyway)."""
        if not self._built:
            self._built = True
            try:
                self._doc = self._build()
            except (DssError, OSError) as e:
                logger.warning("event %s: cannot build the bundle document for query subscriptions "
                               "(%s); they get the event unfiltered", self.event.event_id, e)
        return self._doc

    def _version(self) -> str:
        ev = self.event
        if ev.version:
            return ev.version
        known = bundle_store.versions(self.store_root, ev.dataset_id)
        dead = tombstones.dead(self.store_root, ev.dataset_id)
        live = [v for v in known if v not in dead]
        if not (live or known):
            raise DssError(f"dataset {ev.dataset_id} has no bundle versions")
        return (live or known)[-1]

    def _build(self) -> dict[str, Any]:
        root, dsid = self.store_root, self.event.dataset_id
        manifest = bundle_store.load(root, dsid, self._version())
        doc, problems = documents.build(
            root, manifest, settings=read_config(root).search,
            aliases=documents.dataset_aliases(root).get(dsid, []),
            meta=meta_records.records(root, dsid))
        for p in problems:
            logger.info("event %s: %s is in the document without its content (%s)",
                        self.event.event_id, p.path, p.reason)
        head = manifest.head
        return doc | {"event_type": EVENT_TYPES[self.event.type],
                      "bundle_info": {"uuid": head.dataset_id, "version": head.version}}

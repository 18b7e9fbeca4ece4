"""`POST /v1/search {"es_query": ...}`: the Elasticsearch query DSL subset, parsed (no I/O) into the tree
of `search.query`.

The subset, as Elasticsearch 5 to 7 writes it (docs/search.md, "The Elasticsearch subset", says it for
users): `es_query` is `{}` (everything) or `{"query": CLAUSE}`, `_source` ignored; a CLAUSE is an object
with one key, one of `match_all`, `match`, `term`, `terms`, `range`, `wildcard`, `exists`, `bool`,
`constant_score`. `boost` is accepted and ignored wherever Elasticsearch allows it (we filter, we do
not score). Field names ending in `.keyword` (Elasticsearch's keyword sub-field) lose the suffix.

Anything else is a `QueryError` whose message names the JSON path below `es_query`
(`query.bool.must[1].prefix`) and whose `clause` names the clause (or top-level key) at fault.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .query import (
    ANY_FILE,
    Bool,
    Exists,
    Match,
    MatchAll,
    Query,
    QueryError,
    Range,
    Scalar,
    Term,
    Wildcard,
    any_of,
    negate,
)

SUPPORTED_CLAUSES = ("match_all", "match", "term", "terms", "range", "wildcard", "exists", "bool",
                     "constant_score")

#: clauses nested deeper than this are refused (rather than exhausting the stack)
MAX_DEPTH = 100

_KEYWORD_SUFFIX = ".keyword"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.*@-]+")
_BOOL_LISTS = ("must", "should", "must_not", "filter")


def parse_es(obj: Any) -> Query:
    """The query tree of an `es_query` value (already decoded from JSON)."""
    if not isinstance(obj, dict):
        raise QueryError(f'es_query must be an object like {{"query": {{"match_all": {{}}}}}}, got '
                         f"{_kind(obj)}")
    for key in obj:
        if key not in ("query", "_source"):
            raise QueryError(f"es_query.{_show(key)} is not supported; supported: query", clause=str(key))
    if "query" not in obj:
        return MatchAll()
    return _clause(obj["query"], "query", 0)


def _clause(node: Any, path: str, depth: int) -> Query:
    if depth >= MAX_DEPTH:
        raise QueryError(f"es_query {path}: clauses nested more than {MAX_DEPTH} deep (simplify the query)")
    if not isinstance(node, dict) or len(node) != 1:
        got = f"an object with {len(node)} keys" if isinstance(node, dict) else _kind(node)
        raise QueryError(f'es_query {path}: a clause is an object with one key, its name (e.g. {{"term": '
                         f'{{"alias": "raw"}}}}), got {got} (combine clauses with bool)')
    ((name, body),) = node.items()
    here = f"{path}.{_show(name)}"
    if name == "bool":
        return _bool(body, here, depth)
    if name == "constant_score":
        options = _options(body, here, name, ("filter",))
        if "filter" not in options:
            raise QueryError(f"es_query {here}: 'constant_score' needs a 'filter' clause", clause=name)
        return _clause(options["filter"], f"{here}.filter", depth + 1)
    leaf = _LEAVES.get(name)
    if leaf is None:
        why = " (phrases are not positional here: use match with operator and)"
        raise QueryError(f"es_query clause {_quote(name)} at {here} is not supported"
                         f"{why if name == 'match_phrase' else ''}; supported: "
                         f"{', '.join(SUPPORTED_CLAUSES)}", clause=str(name))
    return leaf(body, here)


def _match_all(body: Any, here: str) -> Query:
    _options(body, here, "match_all", ())
    return MatchAll()


def _match(body: Any, here: str) -> Query:
    field, value, where = _one_field(body, here, "match")
    operator: Any = "or"
    if isinstance(value, dict):
        options = _options(value, where, "match", ("query", "operator"))
        if "query" not in options:
            raise QueryError(f"es_query {where}: 'match' needs 'query' (the text)", clause="match")
        value, operator = options["query"], options.get("operator", "or")
        if not isinstance(operator, str) or operator.lower() not in ("or", "and"):
            raise QueryError(f"es_query {where}.operator: {_brief(operator)} is not or/and", clause="match")
    text = _scalar(value, where, "match")
    if isinstance(text, str):
        return Match(field, text, operator.lower())
    return Term(field, text)


def _term(body: Any, here: str) -> Query:
    field, value, where = _one_field(body, here, "term")
    if isinstance(value, dict):
        options = _options(value, where, "term", ("value",))
        if "value" not in options:
            raise QueryError(f"es_query {where}: 'term' needs 'value'", clause="term")
        value = options["value"]
    return Term(field, _scalar(value, where, "term"))


def _terms(body: Any, here: str) -> Query:
    field, values, where = _one_field(body, here, "terms", ignored=("boost",))
    if not isinstance(values, list):
        raise QueryError(f"es_query {where}: 'terms' takes a list of values, got {_kind(values)} "
                         "(terms lookup is not supported)", clause="terms")
    if not values:
        return negate(MatchAll())
    return any_of(*(Term(field, _scalar(v, f"{where}[{i}]", "terms")) for i, v in enumerate(values)))


def _range(body: Any, here: str) -> Query:
    field, value, where = _one_field(body, here, "range")
    if not isinstance(value, dict):
        raise QueryError(f"es_query {where}: 'range' takes an object of bounds (gt, gte, lt, lte), got "
                         f"{_kind(value)}", clause="range")
    for key in value:
        if key in ("from", "to", "include_lower", "include_upper"):
            raise QueryError(f"es_query {where}.{key} is not supported: use gt/gte/lt/lte", clause="range")
        if key == "format":
            raise QueryError(f"es_query {where}.format is not supported: give bounds as stored (dates "
                             "compare as ISO strings)", clause="range")
    options = _options(value, where, "range", ("gt", "gte", "lt", "lte"))
    bounds: dict[str, Scalar] = {}
    for key, bound in options.items():
        if bound is None:  # Elasticsearch's "unbounded"
            continue
        if isinstance(bound, bool) or not isinstance(bound, (str, int, float)):
            raise QueryError(f"es_query {where}.{key}: a bound is a string or a number, got {_kind(bound)}",
                             clause="range")
        bounds[key] = _scalar(bound, f"{where}.{key}", "range")
    if not bounds:
        raise QueryError(f"es_query {where}: 'range' needs a bound: gt, gte, lt or lte", clause="range")
    if len({isinstance(b, str) for b in bounds.values()}) > 1:
        raise QueryError(f"es_query {where}: 'range' mixes number and string bounds (a range compares "
                         "numbers with numbers or strings with strings)", clause="range")
    return Range(field, **bounds)


def _wildcard(body: Any, here: str) -> Query:
    field, value, where = _one_field(body, here, "wildcard")
    if isinstance(value, dict):
        options = _options(value, where, "wildcard", ("value", "wildcard"))
        if len(options) != 1:
            raise QueryError(f"es_query {where}: 'wildcard' needs one of 'value' or 'wildcard'",
                             clause="wildcard")
        ((key, value),) = options.items()
        where = f"{where}.{key}"
    if not isinstance(value, str):
        raise QueryError(f"es_query {where}: a wildcard pattern is a string, got {_kind(value)}",
                         clause="wildcard")
    return Wildcard(field, value)


def _exists(body: Any, here: str) -> Query:
    options = _options(body, here, "exists", ("field",))
    if "field" not in options:
        raise QueryError(f"es_query {here}: 'exists' needs 'field'", clause="exists")
    return Exists(_field(options["field"], f"{here}.field", "exists"))


_LEAVES = {"match_all": _match_all, "match": _match, "term": _term, "terms": _terms, "range": _range,
           "wildcard": _wildcard, "exists": _exists}


def _bool(body: Any, here: str, depth: int) -> Query:
    options = _options(body, here, "bool", (*_BOOL_LISTS, "minimum_should_match"))
    lists: dict[str, tuple[Query, ...]] = {}
    for key in _BOOL_LISTS:
        value = options.get(key, [])
        if isinstance(value, list):
            lists[key] = tuple(_clause(c, f"{here}.{key}[{i}]", depth + 1) for i, c in enumerate(value))
        else:
            lists[key] = (_clause(value, f"{here}.{key}", depth + 1),)
    msm = options.get("minimum_should_match")
    if msm is None:
        return Bool(**lists)
    if isinstance(msm, bool) or msm not in (1, "1"):
        raise QueryError(f"es_query {here}.minimum_should_match: only 1 is supported, got {_brief(msm)}",
                         clause="bool")
    # at least one should clause must match, even beside must/filter; none to match: nothing matches
    one_of = any_of(*lists["should"]) if lists["should"] else negate(MatchAll())
    return Bool(must=(*lists["must"], one_of), must_not=lists["must_not"], filter=lists["filter"])


def _options(body: Any, here: str, clause: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """`body`, an object of options among `allowed` (and `boost`, dropped)."""
    if not isinstance(body, dict):
        raise QueryError(f"es_query {here}: {clause!r} takes an object, got {_kind(body)}", clause=clause)
    for key in body:
        if key not in allowed and key != "boost":
            known = f"supported: {', '.join(allowed)}" if allowed else f"{clause!r} takes none"
            raise QueryError(f"es_query {here}: option {_quote(key)} of {clause!r} is not supported; {known}",
                             clause=clause)
    return {k: v for k, v in body.items() if k != "boost"}


def _one_field(body: Any, here: str, clause: str, ignored: tuple[str, ...] = ()) -> tuple[str, Any, str]:
    """The one field of `{field: value}`, its value, and the value's path."""
    if not isinstance(body, dict):
        raise QueryError(f"es_query {here}: {clause!r} takes an object {{field: ...}}, got {_kind(body)}",
                         clause=clause)
    fields = [k for k in body if k not in ignored]
    if len(fields) != 1:
        raise QueryError(f"es_query {here}: {clause!r} takes one field, got {len(fields)} (combine clauses "
                         "with bool)", clause=clause)
    where = f"{here}.{_show(fields[0])}"
    return _field(fields[0], where, clause), body[fields[0]], where


def _field(name: Any, where: str, clause: str) -> str:
    """A document field: a non-empty dotted path, `*` only as `files.*.FIELD`, `.keyword` dropped."""
    if not isinstance(name, str) or not name:
        raise QueryError(f"es_query {where}: a field name is a non-empty string, got {_brief(name)}",
                         clause=clause)
    field: str = name
    if field.endswith(_KEYWORD_SUFFIX) and len(field) > len(_KEYWORD_SUFFIX):
        field = field[: -len(_KEYWORD_SUFFIX)]
    parts = field.split(".")
    if "" in parts:
        raise QueryError(f"es_query {where}: field {field!r} has an empty part (write parts joined by single "
                         "dots, e.g. files.sample_json.species)", clause=clause)
    stars = [i for i, part in enumerate(parts) if ANY_FILE in part]
    if stars and not (stars == [1] and parts[0] == "files" and parts[1] == ANY_FILE):
        raise QueryError(f"es_query {where}: field {field!r} uses '*' other than as files.*.FIELD (that "
                         "field of any indexed JSON file)", clause=clause)
    return field


def _scalar(value: Any, where: str, clause: str) -> Scalar:
    if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise QueryError(f"es_query {where}: a value is a string, number or boolean, got {_brief(value)}",
                     clause=clause)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _brief(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return _kind(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _show(key: Any) -> str:
    """A JSON key as it reads in a path: plain keys bare, others quoted (messages stay on one line)."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return str(key)
    return repr(key)[:40]


def _quote(key: Any) -> str:
    """A JSON key as it reads in quotes."""
    shown = _show(key)
    return f"'{shown}'" if shown == key else shown

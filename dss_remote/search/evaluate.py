"""Run a query on one document in memory: what query subscriptions use on each new version.

The same semantics as the index (query.py's docstring); tests hold both to a brute-force oracle.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any

from . import leaves as lv
from .query import Bool, Exists, Match, MatchAll, Query, QueryError, Range, Scalar, Term, Wildcard


class _Doc:
    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.by_field: dict[str, list[Scalar]] = {}
        for f, v in lv.leaves(doc):
            self.by_field.setdefault(f, []).append(v)

    def values(self, field: str, below: bool = False) -> list[Scalar]:
        base, sub = lv.split_pattern(field)
        out: list[Scalar] = []
        for f, vs in self.by_field.items():
            if sub is None:
                hit = f == base or (below and f.startswith(base + "."))
            else:
                s = lv.sub_field(f)
                hit = s is not None and (s == sub or (below and (sub == "" or s.startswith(sub + "."))))
            if hit:
                out.extend(vs)
        return out


def _kind(v: Scalar) -> str:
    return "b" if isinstance(v, bool) else "s" if isinstance(v, str) else "n"


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern.replace("[", "[[]")), re.DOTALL)


def matches(query: Query, doc: Mapping[str, Any]) -> bool:
    return _eval(query, _Doc(doc))


def _eval(q: Query, d: _Doc) -> bool:  # noqa: PLR0911  (one branch per clause kind)
    if isinstance(q, MatchAll):
        return True
    if isinstance(q, Term):
        return any(_kind(v) == _kind(q.value) and v == q.value for v in d.values(q.field))
    if isinstance(q, Range):
        bounds = [b for b in (q.gt, q.gte, q.lt, q.lte) if b is not None]
        if not bounds:
            raise QueryError(f"range on {q.field!r} has no bound", clause="range")
        kind = _kind(bounds[0])
        vals = [v for v in d.values(q.field) if _kind(v) == kind and kind != "b"]
        return any((q.gt is None or v > q.gt) and (q.gte is None or v >= q.gte)  # type: ignore[operator]
                   and (q.lt is None or v < q.lt) and (q.lte is None or v <= q.lte)  # type: ignore[operator]
                   for v in vals)
    if isinstance(q, Wildcard):
        rx = _glob(q.pattern)
        return any(isinstance(v, str) and rx.fullmatch(v) for v in d.values(q.field))
    if isinstance(q, Exists):
        return bool(d.values(q.field, below=True))
    if isinstance(q, Match):
        return _match(q, d)
    if isinstance(q, Bool):
        if not all(_eval(c, d) for c in (*q.must, *q.filter)):
            return False
        if any(_eval(c, d) for c in q.must_not):
            return False
        if q.should and not q.must and not q.filter:
            return any(_eval(c, d) for c in q.should)
        return True
    raise QueryError(f"unknown query clause {type(q).__name__}")


def _match(q: Match, d: _Doc) -> bool:
    if not isinstance(q.text, str) or (q.field is not None and not lv.is_text(q.field)):
        if q.field is None:
            raise QueryError("full text needs text", clause="match")
        return _eval(Term(q.field, q.text), d)
    wanted = lv.tokens(q.text)
    if not wanted:
        return False
    if q.field is None:
        texts = [v for f, vs in d.by_field.items() if lv.is_text(f) for v in vs if isinstance(v, str)]
    else:
        texts = [v for v in d.values(q.field) if isinstance(v, str)]
    have: set[str] = set()
    for t in texts:
        have.update(lv.tokens(t))
    hits = [w in have for w in wanted]
    return all(hits) if q.operator == "and" else any(hits)

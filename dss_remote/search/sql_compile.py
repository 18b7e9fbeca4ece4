"""A query tree as an SQL condition over the embedded index's tables (sqlite_index.py).

Every leaf clause is `d.id IN (SELECT doc FROM leaves WHERE …)`: an uncorrelated subquery SQLite
runs once per search and probes by the (field, kind, value) index, so a query costs what its
clauses select, not documents times clauses. Full text goes through the FTS5 table `leaf_text`,
whose rows are the string leaves of text fields (same rowid; `leaves.is_text`).
"""

from __future__ import annotations

from typing import Any

from . import leaves as lv
from .query import Bool, Exists, Match, MatchAll, Query, QueryError, Range, Scalar, Term, Wildcard

#: SQLite's INTEGER range; larger JSON integers are stored (and compared) as REAL
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def kind_of(v: Scalar) -> str:
    return "b" if isinstance(v, bool) else "s" if isinstance(v, str) else "n"


def stored(v: Scalar) -> Any:
    """A scalar as the `value` column holds it."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int) and not _INT_MIN <= v <= _INT_MAX:
        return float(v)
    return v


def glob_of(pattern: str) -> str:
    """An ES wildcard (`*`, `?`) as an SQLite GLOB, `[` made literal."""
    return pattern.replace("[", "[[]")


def fts_phrase(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


class Compiler:
    """Builds the condition and its parameters (`compile` returns both)."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def compile(self, q: Query) -> tuple[str, list[Any]]:
        return self._q(q), self.params

    def _field(self, field: str, *, below: bool = False, alias: str = "") -> str:
        base, sub = lv.split_pattern(field)
        col, name = (f"{alias}sub", sub) if sub is not None else (f"{alias}field", base)
        if sub is not None and sub == "":
            return f"{alias}sub IS NOT NULL" if below else f"{alias}sub = ''"
        if below:
            self.params += [name, name + ".", name + "/"]  # '/' sorts right after '.'
            return f"({col} = ? OR ({col} >= ? AND {col} < ?))"
        self.params.append(name)
        return f"{col} = ?"

    def _leaf(self, field: str, cond: str, values: list[Any]) -> str:
        where = self._field(field)
        self.params += values
        return f"d.id IN (SELECT doc FROM leaves WHERE {where} AND {cond})"

    def _q(self, q: Query) -> str:  # noqa: PLR0911  (one branch per clause kind)
        if isinstance(q, MatchAll):
            return "1"
        if isinstance(q, Term):
            return self._leaf(q.field, "kind = ? AND value = ?", [kind_of(q.value), stored(q.value)])
        if isinstance(q, Range):
            return self._range(q)
        if isinstance(q, Wildcard):
            return self._leaf(q.field, "kind = 's' AND value GLOB ?", [glob_of(q.pattern)])
        if isinstance(q, Exists):
            where = self._field(q.field, below=True)
            return f"d.id IN (SELECT doc FROM leaves WHERE {where})"
        if isinstance(q, Match):
            return self._match(q)
        if isinstance(q, Bool):
            return self._bool(q)
        raise QueryError(f"unknown query clause {type(q).__name__}")

    def _range(self, q: Range) -> str:
        bounds = [(op, b) for op, b in ((">", q.gt), (">=", q.gte), ("<", q.lt), ("<=", q.lte))
                  if b is not None]
        if not bounds:
            raise QueryError(f"range on {q.field!r} has no bound", clause="range")
        kinds = {kind_of(b) for _, b in bounds}
        if len(kinds) != 1 or "b" in kinds:
            raise QueryError(f"range on {q.field!r} mixes bound types or uses true/false; give "
                             "numbers or strings", clause="range")
        cond = "kind = ? AND " + " AND ".join(f"value {op} ?" for op, _ in bounds)
        return self._leaf(q.field, cond, [kinds.pop(), *[stored(b) for _, b in bounds]])

    def _match(self, q: Match) -> str:
        if not isinstance(q.text, str) or (q.field is not None and not lv.is_text(q.field)):
            if q.field is None:
                raise QueryError("full text needs text", clause="match")
            return self._q(Term(q.field, q.text))
        toks = lv.tokens(q.text)
        if not toks:
            return "0"
        parts = []
        for t in dict.fromkeys(toks):
            sql = ("d.id IN (SELECT l.doc FROM leaf_text JOIN leaves l ON l.id = leaf_text.rowid "
                   "WHERE leaf_text MATCH ?")
            self.params.append(fts_phrase(t))
            if q.field is not None:
                sql += " AND " + self._field(q.field, alias="l.")
            parts.append(sql + ")")
        return "(" + (" AND " if q.operator == "and" else " OR ").join(parts) + ")"

    def _bool(self, q: Bool) -> str:
        parts = [self._q(c) for c in (*q.must, *q.filter)]
        parts += [f"NOT {self._q(c)}" for c in q.must_not]
        if q.should and not q.must and not q.filter:
            parts.append("(" + " OR ".join(self._q(c) for c in q.should) + ")")
        return "(" + " AND ".join(parts) + ")" if parts else "1"

"""`dss search STORE 'QUERY'`: the query language, parsed (no I/O) into the tree of `search.query`.

Grammar (docs/search.md, "The query language", says it for users)::

    query   := or? (empty or only whitespace: everything)
    or      := and ("OR" and)*
    and     := not (["AND"] not)*            juxtaposition is AND
    not     := ("NOT" | "-") not | primary   "-" right before a term, no space
    primary := "(" or ")" | "phrase" | FIELD ":" value | FIELD OP bound | word
    OP      := ">" | ">=" | "<" | "<="       also written FIELD ":" OP bound (GitHub's form)

Precedence NOT > AND > OR; AND, OR and NOT are operators only in upper case. A chain `a AND b c`
is one `Bool` with three musts (`all_of`), `a OR b OR c` one with three shoulds (`any_of`).

- word: runs to a space or parenthesis, `Match(None, word)` (full text, any field).
- "phrase": `Match(None, phrase, "and")`: every token occurs somewhere, in any order (it is not
  positional). Backslash escapes `\\"` and `\\\\` in any quoted text; another backslash is literal.
- `FIELD:value`: `FIELD:*` is `Exists`; a value with `*` or `?` a `Wildcard`; a bare JSON number
  `any_of(Term(number), Term(text))` and bare `true`/`false` `any_of(Term(bool), Term(text))`
  (metadata may hold either); anything else, and any quoted value, a string `Term`.
- `FIELD>bound`: a `Range`; a bare bound that is a JSON number is a number, else a string (so
  `created>=2026-06-01` compares ISO strings).
- On the size field (`size`, `manifest.files.size`) a bare value or bound must be a size: a number
  with an optional unit B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (of 1024), any
  case, optional decimals, giving an int (`size:4KiB` is `Term(size, 4096)`).
- FIELD: the shortcuts of `FIELD_SHORTCUTS`; `meta.X` means `meta.X` (store metadata) or
  `files.*.X` (field X of any indexed JSON file); any other dotted name is a document path as is.
  Parts are letters, digits, `_` and `-`; `*` only as `files.*.X`.

Errors are `QueryError`s with `position`, the 0-based offset of the problem, in a one-line message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .query import (
    ANY_FILE,
    SORT_FIELDS,
    Exists,
    Match,
    MatchAll,
    Query,
    QueryError,
    Range,
    Scalar,
    Sort,
    Term,
    Wildcard,
    all_of,
    any_of,
    negate,
)

#: short field names and the document paths they stand for
FIELD_SHORTCUTS = {
    "path": "manifest.files.path",
    "name": "manifest.files.path",
    "size": "manifest.files.size",
    "type": "manifest.files.content_type",
    "content_type": "manifest.files.content_type",
    "key": "manifest.files.key",
    "dataset": "dataset_id",
    "dataset_id": "dataset_id",
    "alias": "alias",
    "version": "version",
    "created": "created",
    "uuid": "uuid",
    "bundle_fqid": "bundle_fqid",
}

#: the field whose bare values are sizes with units
SIZE_FIELD = "manifest.files.size"

SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_UNIT_NAMES = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"

#: parentheses and NOTs nested deeper than this are refused (rather than exhausting the stack)
MAX_DEPTH = 100

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.*")
_NAME_PART = re.compile(r"[A-Za-z0-9_-]+")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]+)")
_KEYWORDS = ("AND", "OR", "NOT")
_RANGE_KEYS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_UNKNOWN_FIELD_HINT = ("(a field of any indexed JSON file or store metadata), files.<file>.{name}, "
                       "or one of path, size, type, key, dataset, alias, version, created")


def parse(text: str) -> Query:
    """The query tree of a `dss search` query; an empty query matches every document."""
    if not text.strip():
        return MatchAll()
    return _Parser(text).parse()


def parse_sort(text: str) -> Sort:
    """`FIELD` or `FIELD:asc` (ascending), `-FIELD` or `FIELD:desc` (descending); FIELD one of
    `SORT_FIELDS`."""
    start = len(text) - len(text.lstrip())
    spec = text.strip()
    fields = ", ".join(SORT_FIELDS)
    if not spec:
        raise QueryError(f"sort needs a field: one of {fields} (add :desc for descending)", position=0)
    descending = spec.startswith("-")
    field, colon, direction = spec.removeprefix("-").partition(":")
    field_at = start + (1 if descending else 0)
    if colon:
        if descending:
            raise QueryError(f"sort {spec!r} gives a direction twice: write -{field} or {field}:desc",
                             position=start)
        if direction.lower() not in ("asc", "desc"):
            raise QueryError(f"sort direction {direction!r} is not asc or desc: write {field}:asc or "
                             f"{field}:desc", position=field_at + len(field) + 1)
        descending = direction.lower() == "desc"
    if field not in SORT_FIELDS:
        raise QueryError(f"cannot sort by {field!r}: sort by one of {fields} (add :desc for descending)",
                         position=field_at)
    return Sort(field, descending)


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "-", "word", "phrase", "field", "end"
    pos: int
    text: str = ""  # word, phrase or field value (unescaped)
    field: str = ""  # field name as written
    op: str = ""  # ":", ">", ">=", "<", "<="
    quoted: bool = False  # the field value was quoted
    value_pos: int = 0


_TERM_STARTS = frozenset({"(", "NOT", "-", "word", "phrase", "field"})


def _error(text: str, pos: int, problem: str) -> QueryError:
    near = f"near {text[pos:pos + 20]!r}" if pos < len(text) else "at the end"
    return QueryError(f"query does not parse at position {pos} ({near}): {problem}", position=pos)


class _Lexer:
    """Tokens one at a time, so the first error in the text is the one reported."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def next(self) -> _Token:
        text, n = self.text, len(self.text)
        while self.i < n and text[self.i].isspace():
            self.i += 1
        i = self.i
        if i >= n:
            return _Token("end", n)
        c = text[i]
        if c in "()":
            self.i = i + 1
            return _Token(c, i)
        if c == '"':
            phrase, self.i = self._quoted(i)
            return _Token("phrase", i, phrase)
        if c == "-":
            if i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")":
                raise _error(text, i, "'-' needs a term right after it (no space: -alias:scratch)")
            self.i = i + 1
            return _Token("-", i)
        j = i
        while j < n and text[j] in _NAME_CHARS:
            j += 1
        if j < n and text[j] in ":<>":
            if j == i:
                raise _error(text, i, f"{c!r} needs a field name before it (e.g. path:raw/* or size>1GB)")
            return self._field(i, text[i:j], j)
        word, self.i = self._bare(i, "put the text in quotes")
        return _Token(word if word in _KEYWORDS else "word", i, word)

    def _field(self, start: int, name: str, j: int) -> _Token:
        text = self.text
        op = text[j]
        k = j + 1
        if op in "<>" and text.startswith("=", k):
            op += "="
            k += 1
        if op == ":":  # FIELD:>bound as GitHub writes it
            for alias in (">=", "<=", ">", "<"):
                if text.startswith(alias, k):
                    op = alias
                    k += len(alias)
                    break
        written = text[start:k]
        if k < len(text) and text[k] == '"':
            value, self.i = self._quoted(k)
            if op != ":" and not value:
                raise _error(text, k, f"{written!r} needs a bound, not an empty string (e.g. size>1GB)")
            return _Token("field", start, value, name, op, True, k)
        value, self.i = self._bare(k, f"quote the value: {name}{op}\"...\"")
        if not value:
            problem = (f"{written!r} needs a value ({name}:VALUE, or {name}:* for any value)" if op == ":"
                       else f"{written!r} needs a bound (e.g. size>1GB, created>=2026-06-01)")
            raise _error(text, k, problem)
        return _Token("field", start, value, name, op, False, k)

    def _bare(self, i: int, fix: str) -> tuple[str, int]:
        """The bare text from i to a space, a parenthesis or the end, and where it ends."""
        text, n = self.text, len(self.text)
        j = i
        while j < n and not text[j].isspace() and text[j] not in '()"':
            j += 1
        if j < n and text[j] == '"':
            raise _error(text, j, f"a quote inside a word ({fix})")
        if j < n and text[j] == "(" and j > i and text[i:j] not in _KEYWORDS:
            raise _error(text, j, f"a parenthesis right after a word (put a space before it, or {fix})")
        return text[i:j], j

    def _quoted(self, i: int) -> tuple[str, int]:
        """The text of the quoted string opening at i (escapes resolved), and where it ends."""
        text, n = self.text, len(self.text)
        out: list[str] = []
        j = i + 1
        while j < n:
            c = text[j]
            if c == "\\" and j + 1 < n and text[j + 1] in '"\\':
                out.append(text[j + 1])
                j += 2
            elif c == '"':
                end = j + 1
                if end < n and not text[end].isspace() and text[end] not in "()":
                    raise _error(text, end, "text right after a closing quote (put a space before it)")
                return "".join(out), end
            else:
                out.append(c)
                j += 1
        raise _error(text, i, 'unterminated quote (close it with ", and write \\" for a quote inside)')


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lexer = _Lexer(text)
        self.tok = self.lexer.next()

    def advance(self) -> _Token:
        tok = self.tok
        self.tok = self.lexer.next()
        return tok

    def error(self, pos: int, problem: str) -> QueryError:
        return _error(self.text, pos, problem)

    def parse(self) -> Query:
        query = self.parse_or(0)
        if self.tok.kind == ")":
            raise self.error(self.tok.pos, "')' has no '(' before it (remove it or add a '(')")
        return query

    def parse_or(self, depth: int) -> Query:
        clauses = [self.parse_and(depth)]
        while self.tok.kind == "OR":
            op = self.advance()
            self.need_term(op, "OR")
            clauses.append(self.parse_and(depth))
        return any_of(*clauses)

    def parse_and(self, depth: int) -> Query:
        clauses = [self.parse_not(depth)]
        while True:
            if self.tok.kind == "AND":
                op = self.advance()
                self.need_term(op, "AND")
            elif self.tok.kind not in _TERM_STARTS:
                return all_of(*clauses)
            clauses.append(self.parse_not(depth))

    def parse_not(self, depth: int) -> Query:
        if self.tok.kind in ("NOT", "-"):
            op = self.advance()
            self.check_depth(op, depth)
            self.need_term(op, op.kind)
            return negate(self.parse_not(depth + 1))
        return self.parse_primary(depth)

    def parse_primary(self, depth: int) -> Query:
        tok = self.advance()
        if tok.kind == "(":
            self.check_depth(tok, depth)
            if self.tok.kind == ")":
                raise self.error(tok.pos, "empty parentheses (put a term inside or remove them)")
            if self.tok.kind == "end":
                raise self.error(tok.pos, "'(' is never closed (add a ')')")
            query = self.parse_or(depth + 1)
            if self.tok.kind != ")":
                raise self.error(tok.pos, "'(' is never closed (add a ')')")
            self.advance()
            return query
        if tok.kind == "word":
            return Match(None, tok.text)
        if tok.kind == "phrase":
            return Match(None, tok.text, "and")
        if tok.kind == "field":
            return self.field_clause(tok)
        if tok.kind in ("AND", "OR"):
            raise self.error(tok.pos, f"{tok.kind!r} needs a term before it (remove it or add a term)")
        if tok.kind == ")":
            raise self.error(tok.pos, "')' has no '(' before it (remove it or add a '(')")
        raise self.error(tok.pos, "a term is missing here")

    def need_term(self, op: _Token, name: str) -> None:
        if self.tok.kind not in _TERM_STARTS:
            raise self.error(op.pos, f"{name!r} needs a term after it (remove it or add a term)")

    def check_depth(self, tok: _Token, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise self.error(tok.pos, f"parentheses and NOTs nested more than {MAX_DEPTH} deep "
                                      "(simplify the query)")

    def field_clause(self, tok: _Token) -> Query:
        fields = self.resolve(tok.field, tok.pos)
        value, on_size = tok.text, fields == [SIZE_FIELD]
        if tok.op != ":":
            bound: Scalar = value
            if not tok.quoted:
                number = self.size(tok) if on_size else _number(value)
                bound = value if number is None else number
            key = _RANGE_KEYS[tok.op]
            return any_of(*(Range(field, **{key: bound}) for field in fields))
        if value == "*" and not tok.quoted:
            return any_of(*(Exists(field) for field in fields))
        if "*" in value or "?" in value:
            return any_of(*(Wildcard(field, value) for field in fields))
        typed: Scalar | None = None
        if not tok.quoted:
            typed = (value == "true") if value in ("true", "false") else _number(value)
            if typed is None and on_size:
                return Term(SIZE_FIELD, self.size(tok))
        if typed is None:
            return any_of(*(Term(field, value) for field in fields))
        return any_of(*(any_of(Term(field, typed), Term(field, value)) for field in fields))

    def size(self, tok: _Token) -> int | float:
        number = _number(tok.text)
        if number is not None:
            return number
        m = _SIZE.fullmatch(tok.text)
        if m is None:
            raise self.error(tok.value_pos, f"{tok.text!r} is not a size (a number with an optional unit: "
                                            f"{_UNIT_NAMES}, e.g. size>1.5GB)")
        unit = SIZE_UNITS.get(m.group(2).lower())
        if unit is None:
            raise self.error(tok.value_pos + len(m.group(1)),
                             f"unknown size unit {m.group(2)!r} (use one of {_UNIT_NAMES})")
        return int((Decimal(m.group(1)) * unit).to_integral_value(ROUND_HALF_UP))

    def resolve(self, name: str, pos: int) -> list[str]:
        """The document fields a field name stands for."""
        parts = name.split(".")
        for part in parts:
            if part != ANY_FILE and not _NAME_PART.fullmatch(part):
                raise self.error(pos, f"bad field name {name!r} (dotted parts of letters, digits, _ and -, "
                                      "e.g. files.sample_json.species)")
        if ANY_FILE in parts and (parts[0] != "files" or parts.index(ANY_FILE) != 1
                                  or parts.count(ANY_FILE) > 1):
            raise self.error(pos, f"bad field name {name!r} ('*' only as files.*.FIELD: that field of any "
                                  "indexed JSON file)")
        if name in FIELD_SHORTCUTS:
            return [FIELD_SHORTCUTS[name]]
        if parts[0] == "meta" and len(parts) > 1:
            rest = name.removeprefix("meta.")
            return [name, f"files.{ANY_FILE}.{rest}"]
        if len(parts) > 1:
            return [name]
        raise QueryError(f"unknown field {name!r} at position {pos}: use meta.{name} "
                         + _UNKNOWN_FIELD_HINT.format(name=name), position=pos)


def _number(text: str) -> int | float | None:
    """The JSON number `text` spells (finite), else None."""
    m = _JSON_NUMBER.fullmatch(text)
    if m is None:
        return None
    if m.group(1) is None and m.group(2) is None:
        return int(text)
    value = float(text)
    return value if math.isfinite(value) else None

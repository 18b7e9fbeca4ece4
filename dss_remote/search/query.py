"""The one query tree every search runs: `dss search`'s language and the ES DSL subset parse into
it, the embedded index compiles it to SQL, and `evaluate` runs it on one document (subscriptions).

Semantics (the contract an index implements; docs/search.md says it for users):
- A *field* is a dotted path into a bundle document, e.g. `files.meta_sample_json.species`.
  Arrays are transparent: `manifest.files.path` names the `path` of every row. A field may use
  `*` as its second part under `files` (`files.*.species`): any indexed JSON file's field.
- The *values* of a field are the scalars (strings, numbers, booleans) found at that path;
  nulls, empty arrays and empty objects have none.
- `Term`: some value equals `value` exactly, same JSON type (no coercion; case-sensitive).
- `Range`: some value of the bound's type lies within every given bound (numbers numerically,
  strings by code point, so ISO dates compare as dates). Booleans are never in a range.
- `Wildcard`: some string value matches the glob (`*` any run, `?` one character, nothing else
  is special; case-sensitive).
- `Exists`: the field, or some field below it, has a value.
- `Match`: full text. The text's tokens (runs of letters and digits, case-folded) must occur in
  string values of the field (of any *text* field when `field` is None): any one token with
  operator "or", every token (each in some value) with "and". A text with no token matches
  nothing. A non-string `Match` value, or a `Match` on an identifier field, is a `Term`.
- Text fields are all but the identifiers (as Elasticsearch's `text` and `keyword`): `uuid`,
  `version`, `bundle_fqid`, `dataset_id`, `created`, `ref`, `commit`, and every field of a
  manifest row except `manifest.files.path` (keys, checksums, content types: matched whole).
- `Bool`: every `must` and `filter` clause, no `must_not` clause, and, when there is no `must`
  and no `filter`, at least one `should` clause (as Elasticsearch; with must/filter present,
  `should` only ranks). A Bool with no clause matches everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ria_store.errors import DssError


class QueryError(DssError):
    """A query that cannot be run: it does not parse (`position` is the 0-based offset of the
    problem in the query text) or uses something outside the supported subset (`clause`)."""

    def __init__(self, message: str, *, position: int | None = None, clause: str | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.clause = clause


Scalar = Union[str, int, float, bool]

#: the second part of a field that means "any indexed JSON file" (`files.*.species`)
ANY_FILE = "*"


@dataclass(frozen=True)
class MatchAll:
    pass


@dataclass(frozen=True)
class Term:
    field: str
    value: Scalar


@dataclass(frozen=True)
class Range:
    field: str
    gt: Scalar | None = None
    gte: Scalar | None = None
    lt: Scalar | None = None
    lte: Scalar | None = None


@dataclass(frozen=True)
class Wildcard:
    field: str
    pattern: str


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class Match:
    field: str | None
    text: str
    operator: str = "or"  # "or" | "and"


@dataclass(frozen=True)
class Bool:
    must: tuple[Query, ...] = ()
    should: tuple[Query, ...] = ()
    must_not: tuple[Query, ...] = ()
    filter: tuple[Query, ...] = ()


Query = Union[MatchAll, Term, Range, Wildcard, Exists, Match, Bool]


def all_of(*clauses: Query) -> Query:
    return clauses[0] if len(clauses) == 1 else Bool(must=tuple(clauses))


def any_of(*clauses: Query) -> Query:
    return clauses[0] if len(clauses) == 1 else Bool(should=tuple(clauses))


def negate(clause: Query) -> Query:
    return Bool(must_not=(clause,))


@dataclass(frozen=True)
class Sort:
    """Order of results: a document column (`SORT_FIELDS`) and direction; ties by bundle fqid."""

    field: str = "version"
    descending: bool = True


#: what results can be sorted by: columns every document has
SORT_FIELDS = ("version", "created", "dataset_id", "alias", "uuid", "bundle_fqid", "size", "file_count")

"""The embedded index and the in-memory evaluator against a brute-force oracle written here:
random documents, random queries from the supported subset, the same answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dss_remote.search import evaluate
from dss_remote.search.query import Bool, Exists, Match, MatchAll, Query, Range, Sort, Term, Wildcard
from dss_remote.search.sqlite_index import SqliteIndex

WORDS = ["mouse", "Mouse", "rat", "T1w", "7", "a b", "", "mouse cortex", "x-y", "annex", "raw"]
KEYS = ["species", "age", "scan"]
FIELDS = ["files.a_json.species", "files.a_json.age", "files.*.species", "files.*.age", "files.*.scan",
          "files.*.scan.age", "files.a_json.scan", "manifest.files.path", "manifest.files.size",
          "meta.doi", "alias", "files.*", "files.b_json", "manifest.files.type", "dataset_id"]

#: fields most documents have: where equality and full text find something
HOT = ["files.*.species", "files.*.age", "files.a_json.species", "files.*.scan.age"]

scalars = st.one_of(st.sampled_from(WORDS), st.integers(0, 4), st.sampled_from([0.5, 7.0, 1.0]),
                    st.booleans(), st.none())
inner_values = st.one_of(scalars, st.lists(scalars, max_size=3),
                         st.dictionaries(st.sampled_from(KEYS), scalars, min_size=1, max_size=2))
json_values = st.one_of(st.dictionaries(st.sampled_from(KEYS), inner_values, min_size=1, max_size=4),
                        st.lists(st.dictionaries(st.sampled_from(KEYS), scalars, max_size=2), max_size=2),
                        scalars)
rows = st.fixed_dictionaries({
    "path": st.sampled_from(["raw/a.nii.gz", "raw/b.txt", "meta/a.json", "x[1].json"]),
    "size": st.integers(0, 5000), "type": st.sampled_from(["annex", "git"])})


@st.composite
def documents(draw: st.DrawFn, n: int) -> dict[str, Any]:
    fqid = f"00000000-0000-4000-8000-{n:012d}.2026-06-0{1 + n % 9}T000000.000000Z"
    doc: dict[str, Any] = {
        "uuid": fqid[:36], "dataset_id": fqid[:36], "version": fqid[37:], "bundle_fqid": fqid,
        "created": f"2026-06-0{1 + n % 9}T00:00:00.000000Z",
        "manifest": {"files": draw(st.lists(rows, max_size=3))},
        "files": draw(st.dictionaries(st.sampled_from(["a_json", "b_json"]), json_values, min_size=1,
                                      max_size=2))}
    if draw(st.booleans()):
        doc["alias"] = draw(st.sampled_from(["mouse", "t1w", "a b"]))
    if draw(st.booleans()):
        doc["meta"] = {"doi": draw(st.sampled_from(["10.1/x", "10.2/y"]))}
    return doc


leaf_queries = st.one_of(
    st.builds(Term, st.sampled_from(FIELDS), scalars.filter(lambda v: v is not None)),
    st.builds(Term, st.sampled_from(HOT), st.sampled_from([True, 1, 1.0, 0, False, "mouse", "Mouse"])),
    st.builds(lambda f, lo, hi: Range(f, gte=lo, lt=hi), st.sampled_from(FIELDS),
              st.integers(0, 4), st.integers(0, 5)),
    st.builds(lambda f, b: Range(f, lte=b), st.sampled_from(FIELDS), st.sampled_from([0.5, 3, 1000])),
    st.builds(lambda f, b: Range(f, gt=b), st.sampled_from(FIELDS), st.sampled_from(["T", "m", "a b", "7"])),
    st.builds(Wildcard, st.sampled_from(FIELDS), st.sampled_from(["*", "m*", "*o*", "?at", "raw/*.nii.gz",
                                                                  "x[1]*", "T1?"])),
    st.builds(Exists, st.sampled_from(FIELDS)),
    st.builds(Match, st.sampled_from([None, *FIELDS]), st.sampled_from(WORDS),
              st.sampled_from(["or", "and"])),
    st.builds(Match, st.sampled_from([None, *HOT]), st.sampled_from(["mouse cortex", "rat mouse", "a b"]),
              st.sampled_from(["or", "and"])),
    st.builds(MatchAll),
)
queries = st.recursive(leaf_queries, lambda inner: st.builds(
    Bool, st.lists(inner, max_size=2).map(tuple), st.lists(inner, max_size=2).map(tuple),
    st.lists(inner, max_size=1).map(tuple), st.lists(inner, max_size=1).map(tuple)), max_leaves=5)


# -- the oracle: written from query.py's docstring, sharing no code with the index ------------------
IDENTIFIERS = {"uuid", "version", "bundle_fqid", "dataset_id", "created", "ref", "commit"}


def _walk(node: Any, parts: list[str]) -> Iterator[Any]:
    """The nodes at `parts` below `node`, arrays transparent."""
    if isinstance(node, list):
        for x in node:
            yield from _walk(x, parts)
    elif not parts:
        yield node
    elif isinstance(node, dict) and parts[0] in node:
        yield from _walk(node[parts[0]], parts[1:])


def _nodes(doc: dict[str, Any], field: str) -> list[Any]:
    parts = field.split(".")
    if parts[:2] == ["files", "*"]:
        return [n for content in doc.get("files", {}).values() for n in _walk(content, parts[2:])]
    return list(_walk(doc, parts))


def _scalars(node: Any) -> Iterator[Any]:
    if isinstance(node, list):
        for x in node:
            yield from _scalars(x)
    elif node is not None and not isinstance(node, dict):
        yield node


def _all_scalars(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _all_scalars(v)
    elif isinstance(node, list):
        for v in node:
            yield from _all_scalars(v)
    elif node is not None:
        yield node


def _same_type(a: Any, b: Any) -> bool:
    def t(v: Any) -> str:
        return "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "num"
    return t(a) == t(b)


def _toks(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def oracle(q: Query, doc: dict[str, Any]) -> bool:  # noqa: PLR0911
    if isinstance(q, MatchAll):
        return True
    if isinstance(q, Term):
        return any(_same_type(v, q.value) and v == q.value for n in _nodes(doc, q.field) for v in _scalars(n))
    if isinstance(q, Range):
        bound = next(b for b in (q.gt, q.gte, q.lt, q.lte) if b is not None)
        vals = [v for n in _nodes(doc, q.field) for v in _scalars(n)
                if _same_type(v, bound) and not isinstance(v, bool)]
        return any((q.gt is None or v > q.gt) and (q.gte is None or v >= q.gte) and
                   (q.lt is None or v < q.lt) and (q.lte is None or v <= q.lte) for v in vals)
    if isinstance(q, Wildcard):
        rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in q.pattern)
        return any(isinstance(v, str) and re.fullmatch(rx, v, re.DOTALL)
                   for n in _nodes(doc, q.field) for v in _scalars(n))
    if isinstance(q, Exists):
        return any(True for n in _nodes(doc, q.field) for _ in _all_scalars(n))
    if isinstance(q, Match):
        row_field = (q.field or "").startswith("manifest.") and q.field != "manifest.files.path"
        if q.field is not None and (q.field in IDENTIFIERS or row_field):
            return oracle(Term(q.field, q.text), doc)
        if q.field is None:  # every text field: all but the identifiers and the rows' other fields
            text_view = {k: v for k, v in doc.items() if k not in IDENTIFIERS and k != "manifest"}
            text_view["paths"] = [r["path"] for r in doc["manifest"]["files"]]
        nodes = [text_view] if q.field is None else _nodes(doc, q.field)
        have: set[str] = set()
        for n in nodes:
            for v in (_all_scalars(n) if q.field is None else _scalars(n)):
                if isinstance(v, str):
                    have |= _toks(v)
        want = _toks(q.text)
        if not want:
            return False
        return want <= have if q.operator == "and" else bool(want & have)
    assert isinstance(q, Bool)
    required = (*q.must, *q.filter)
    ok = all(oracle(c, doc) for c in required) and not any(oracle(c, doc) for c in q.must_not)
    if q.should and not required:
        ok = ok and any(oracle(c, doc) for c in q.should)
    return ok


def _clauses(q: Query) -> list[Query]:
    if not isinstance(q, Bool):
        return [q]
    return [c for part in (*q.must, *q.should, *q.must_not, *q.filter) for c in _clauses(part)] + [q]


@st.composite
def corpora(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(documents(i)) for i in range(draw(st.integers(2, 7)))]


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
@given(docs=corpora(), qs=st.lists(queries, min_size=1, max_size=4))
def test_the_index_and_the_evaluator_answer_as_the_oracle(tmp_path: Path, docs: list[dict[str, Any]],
                                                          qs: list[Query]) -> None:
    path = tmp_path / f"ix-{len(list(tmp_path.iterdir()))}.sqlite"
    index = SqliteIndex(tmp_path, path)
    try:
        index.put_documents(docs)
        for q in [c for top in qs for c in _clauses(top)]:  # every clause alone, then combined
            expected = sorted(d["bundle_fqid"] for d in docs if oracle(q, d))
            got = index.search(q, sort=Sort("bundle_fqid", descending=False), limit=100)
            assert [h.bundle_fqid for h in got.hits] == expected, q
            assert got.total == len(expected)
            assert sorted(d["bundle_fqid"] for d in docs if evaluate.matches(q, d)) == expected, q
    finally:
        index.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=corpora(), q=queries, allowed=st.sets(st.integers(0, 7)), limit=st.integers(1, 3))
def test_pages_and_allowed_datasets_never_show_more(tmp_path: Path, docs: list[dict[str, Any]], q: Query,
                                                    allowed: set[int], limit: int) -> None:
    path = tmp_path / f"ix-{len(list(tmp_path.iterdir()))}.sqlite"
    index = SqliteIndex(tmp_path, path)
    try:
        index.put_documents(docs)
        ids = {f"00000000-0000-4000-8000-{n:012d}" for n in allowed}
        expected = sorted(d["bundle_fqid"] for d in docs if d["dataset_id"] in ids and oracle(q, d))
        seen: list[str] = []
        after = None
        while True:
            page = index.search(q, allowed=ids, sort=Sort("bundle_fqid", descending=False), limit=limit,
                                after=after)
            assert page.total == len(expected)
            if not page.hits:
                break
            seen += [h.bundle_fqid for h in page.hits]
            after = page.hits[-1].bundle_fqid
        assert seen == expected
    finally:
        index.close()

"""The Elasticsearch DSL subset of `POST /v1/search`: the exact tree of every clause, and each refusal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dss_remote.search.es_dsl import MAX_DEPTH, parse_es
from dss_remote.search.query import (
    Bool,
    Exists,
    Match,
    MatchAll,
    QueryError,
    Range,
    Term,
    Wildcard,
)

SUPPORTED = "supported: match_all, match, term, terms, range, wildcard, exists, bool, constant_score"
NOTHING = Bool(must_not=(MatchAll(),))


def q(clause: dict[str, Any]) -> dict[str, Any]:
    return {"query": clause}


def error_of(obj: Any) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse_es(obj)
    assert "\n" not in str(info.value)
    return info.value


# --- top level -------------------------------------------------------------------------------------


def test_empty_es_query_matches_all() -> None:
    assert parse_es({}) == MatchAll()


def test_source_is_ignored() -> None:
    assert parse_es({"_source": ["uuid"], "query": {"match_all": {}}}) == MatchAll()
    assert parse_es({"_source": False}) == MatchAll()


# --- leaf clauses ----------------------------------------------------------------------------------


def test_match_all() -> None:
    assert parse_es(q({"match_all": {}})) == MatchAll()
    assert parse_es(q({"match_all": {"boost": 1.2}})) == MatchAll()


def test_match_text() -> None:
    assert parse_es(q({"match": {"files.a_json.title": "mouse brain"}})) == Match("files.a_json.title",
                                                                                  "mouse brain", "or")


@pytest.mark.parametrize("operator", ["and", "AND", "And"])
def test_match_operator_and(operator: str) -> None:
    got = parse_es(q({"match": {"t": {"query": "a b", "operator": operator, "boost": 2}}}))
    assert got == Match("t", "a b", "and")


def test_match_operator_or() -> None:
    assert parse_es(q({"match": {"t": {"query": "a b", "operator": "OR"}}})) == Match("t", "a b", "or")
    assert parse_es(q({"match": {"t": {"query": "a b"}}})) == Match("t", "a b", "or")


@pytest.mark.parametrize("value", [3, 2.5, True, False])
def test_match_non_string_is_term(value: Any) -> None:
    assert parse_es(q({"match": {"n": value}})) == Term("n", value)
    assert parse_es(q({"match": {"n": {"query": value}}})) == Term("n", value)


@pytest.mark.parametrize("value", ["raw", 3, 2.5, True])
def test_term(value: Any) -> None:
    assert parse_es(q({"term": {"alias": value}})) == Term("alias", value)
    assert parse_es(q({"term": {"alias": {"value": value, "boost": 1}}})) == Term("alias", value)


def test_term_keyword_subfield_is_stripped() -> None:
    assert parse_es(q({"term": {"files.*.species.keyword": "mouse"}})) == Term("files.*.species", "mouse")
    assert parse_es(q({"term": {"keyword": "x"}})) == Term("keyword", "x")


def test_terms() -> None:
    assert parse_es(q({"terms": {"alias": ["a", 1, True]}})) == Bool(should=(
        Term("alias", "a"), Term("alias", 1), Term("alias", True)))


def test_terms_one_value_is_a_term() -> None:
    assert parse_es(q({"terms": {"alias": ["a"], "boost": 1.0}})) == Term("alias", "a")


def test_terms_empty_matches_nothing() -> None:
    assert parse_es(q({"terms": {"alias": []}})) == NOTHING


def test_range() -> None:
    assert parse_es(q({"range": {"manifest.files.size": {"gt": 1, "lte": 2.5}}})) == Range(
        "manifest.files.size", gt=1, lte=2.5)
    assert parse_es(q({"range": {"created": {"gte": "2026-06-01", "lt": "2027", "boost": 1}}})) == Range(
        "created", gte="2026-06-01", lt="2027")


def test_range_null_bound_is_unbounded() -> None:
    assert parse_es(q({"range": {"n": {"gt": 1, "lt": None}}})) == Range("n", gt=1)


def test_wildcard() -> None:
    assert parse_es(q({"wildcard": {"manifest.files.path": "raw/*.nii?"}})) == Wildcard("manifest.files.path",
                                                                                          "raw/*.nii?")
    assert parse_es(q({"wildcard": {"p": {"value": "a*", "boost": 1}}})) == Wildcard("p", "a*")
    assert parse_es(q({"wildcard": {"p": {"wildcard": "a*"}}})) == Wildcard("p", "a*")


def test_exists() -> None:
    assert parse_es(q({"exists": {"field": "files.*.species"}})) == Exists("files.*.species")


# --- compound clauses ------------------------------------------------------------------------------


def test_bool_lists_and_single_clauses() -> None:
    got = parse_es(q({"bool": {
        "must": [{"term": {"a": 1}}, {"match": {"b": "x"}}],
        "should": {"term": {"c": 2}},
        "must_not": [{"exists": {"field": "d"}}],
        "filter": {"range": {"e": {"gte": 0}}},
        "boost": 3,
    }}))
    assert got == Bool(must=(Term("a", 1), Match("b", "x")), should=(Term("c", 2),),
                       must_not=(Exists("d"),), filter=(Range("e", gte=0),))


def test_empty_bool_matches_all() -> None:
    assert parse_es(q({"bool": {}})) == Bool()


@pytest.mark.parametrize("msm", [1, "1"])
def test_minimum_should_match_one(msm: Any) -> None:
    got = parse_es(q({"bool": {"must": {"term": {"a": 1}}, "filter": [{"term": {"f": 0}}],
                               "should": [{"term": {"b": 2}}, {"term": {"c": 3}}],
                               "must_not": {"term": {"d": 4}}, "minimum_should_match": msm}}))
    assert got == Bool(must=(Term("a", 1), Bool(should=(Term("b", 2), Term("c", 3)))),
                       must_not=(Term("d", 4),), filter=(Term("f", 0),))


def test_minimum_should_match_one_without_should_matches_nothing() -> None:
    got = parse_es(q({"bool": {"must": {"term": {"a": 1}}, "minimum_should_match": 1}}))
    assert got == Bool(must=(Term("a", 1), NOTHING))


def test_minimum_should_match_null_is_default() -> None:
    assert parse_es(q({"bool": {"should": {"term": {"b": 2}}, "minimum_should_match": None}})) == Bool(
        should=(Term("b", 2),))


def test_constant_score() -> None:
    assert parse_es(q({"constant_score": {"filter": {"term": {"a": 1}}, "boost": 2}})) == Term("a", 1)


def test_nested_dss_style_query() -> None:
    got = parse_es({"query": {"bool": {"must": [
        {"match": {"files.donor_organism_json.biomaterial_core.ncbi_taxon_id": 9606}},
        {"range": {"manifest.files.size": {"gte": 1000}}},
        {"bool": {"should": [{"wildcard": {"manifest.files.path": "*.fastq.gz"}},
                             {"term": {"manifest.files.content_type.keyword": "application/gzip"}}]}},
    ]}}})
    assert got == Bool(must=(
        Term("files.donor_organism_json.biomaterial_core.ncbi_taxon_id", 9606),
        Range("manifest.files.size", gte=1000),
        Bool(should=(Wildcard("manifest.files.path", "*.fastq.gz"),
                     Term("manifest.files.content_type", "application/gzip"))),
    ))


# --- refusals --------------------------------------------------------------------------------------


def test_error_es_query_not_an_object() -> None:
    err = error_of([{"match_all": {}}])
    assert str(err) == 'es_query must be an object like {"query": {"match_all": {}}}, got a list'


@pytest.mark.parametrize("key", ["sort", "from", "size", "aggs"])
def test_error_other_top_level_keys(key: str) -> None:
    err = error_of({"query": {"match_all": {}}, key: 1})
    assert str(err) == f"es_query.{key} is not supported; supported: query"
    assert err.clause == key


@pytest.mark.parametrize("name", ["query_string", "prefix", "nested", "fuzzy", "regexp", "ids", "script",
                                  "multi_match", "simple_query_string", "dis_max"])
def test_error_unsupported_clause(name: str) -> None:
    err = error_of({"query": {"bool": {"must": [{"match_all": {}}, {name: {"a": "b"}}]}}})
    assert str(err) == (f"es_query clause '{name}' at query.bool.must[1].{name} is not supported; "
                        f"{SUPPORTED}")
    assert err.clause == name


def test_error_match_phrase() -> None:
    err = error_of(q({"match_phrase": {"title": "mouse brain"}}))
    assert str(err) == ("es_query clause 'match_phrase' at query.match_phrase is not supported (phrases are "
                        f"not positional here: use match with operator and); {SUPPORTED}")
    assert err.clause == "match_phrase"


def test_error_unsupported_clause_path_in_filter() -> None:
    err = error_of(q({"constant_score": {"filter": {"bool": {"filter": {"prefix": {"a": "b"}}}}}}))
    assert "at query.constant_score.filter.bool.filter.prefix is not supported" in str(err)


def test_error_clause_with_two_keys() -> None:
    err = error_of(q({"term": {"a": 1}, "match": {"b": "x"}}))
    assert str(err) == ('es_query query: a clause is an object with one key, its name (e.g. {"term": '
                        '{"alias": "raw"}}), got an object with 2 keys (combine clauses with bool)')


def test_error_clause_not_an_object() -> None:
    assert str(error_of(q({"bool": {"must": ["x"]}}))).startswith(
        "es_query query.bool.must[0]: a clause is an object with one key")


def test_error_match_option() -> None:
    err = error_of(q({"match": {"title": {"query": "x", "fuzziness": 2}}}))
    assert str(err) == ("es_query query.match.title: option 'fuzziness' of 'match' is not supported; "
                        "supported: query, operator")
    assert err.clause == "match"


def test_error_match_operator() -> None:
    err = error_of(q({"match": {"title": {"query": "x", "operator": "xor"}}}))
    assert str(err) == "es_query query.match.title.operator: 'xor' is not or/and"


def test_error_match_without_query() -> None:
    assert "'match' needs 'query'" in str(error_of(q({"match": {"t": {"operator": "and"}}})))


def test_error_match_two_fields() -> None:
    err = error_of(q({"match": {"a": "x", "b": "y"}}))
    assert str(err) == "es_query query.match: 'match' takes one field, got 2 (combine clauses with bool)"


def test_error_match_null() -> None:
    err = error_of(q({"match": {"a": None}}))
    assert str(err) == "es_query query.match.a: a value is a string, number or boolean, got null"


def test_error_term_list_value() -> None:
    err = error_of(q({"term": {"a": [1]}}))
    assert str(err) == "es_query query.term.a: a value is a string, number or boolean, got a list"
    assert err.clause == "term"


def test_error_term_without_value() -> None:
    assert "'term' needs 'value'" in str(error_of(q({"term": {"a": {"boost": 1}}})))


def test_error_term_option() -> None:
    err = error_of(q({"term": {"a": {"value": "x", "case_insensitive": True}}}))
    assert "option 'case_insensitive' of 'term' is not supported; supported: value" in str(err)


def test_error_terms_not_a_list() -> None:
    err = error_of(q({"terms": {"a": "x"}}))
    assert str(err) == ("es_query query.terms.a: 'terms' takes a list of values, got a string (terms lookup "
                        "is not supported)")
    assert err.clause == "terms"


def test_error_terms_bad_value() -> None:
    assert str(error_of(q({"terms": {"a": ["x", {}]}}))) == (
        "es_query query.terms.a[1]: a value is a string, number or boolean, got an object")


@pytest.mark.parametrize("key", ["from", "to", "include_lower", "include_upper"])
def test_error_range_old_syntax(key: str) -> None:
    err = error_of(q({"range": {"n": {key: 1}}}))
    assert str(err) == f"es_query query.range.n.{key} is not supported: use gt/gte/lt/lte"
    assert err.clause == "range"


def test_error_range_format() -> None:
    err = error_of(q({"range": {"created": {"gte": "01/06/2026", "format": "dd/MM/yyyy"}}}))
    assert str(err) == ("es_query query.range.created.format is not supported: give bounds as stored (dates "
                        "compare as ISO strings)")


def test_error_range_other_option() -> None:
    assert "option 'time_zone' of 'range' is not supported; supported: gt, gte, lt, lte" in str(
        error_of(q({"range": {"n": {"gt": 1, "time_zone": "+01:00"}}})))


def test_error_range_without_bound() -> None:
    err = error_of(q({"range": {"n": {"gt": None}}}))
    assert str(err) == "es_query query.range.n: 'range' needs a bound: gt, gte, lt or lte"


def test_error_range_mixed_bounds() -> None:
    err = error_of(q({"range": {"n": {"gt": 1, "lt": "9"}}}))
    assert str(err) == ("es_query query.range.n: 'range' mixes number and string bounds (a range compares "
                        "numbers with numbers or strings with strings)")


@pytest.mark.parametrize("bound", [True, [1], {"a": 1}])
def test_error_range_bad_bound(bound: Any) -> None:
    assert "es_query query.range.n.gt: a bound is a string or a number" in str(
        error_of(q({"range": {"n": {"gt": bound}}})))


def test_error_range_not_an_object() -> None:
    assert "'range' takes an object of bounds" in str(error_of(q({"range": {"n": 5}})))


def test_error_wildcard_not_a_string() -> None:
    err = error_of(q({"wildcard": {"p": 5}}))
    assert str(err) == "es_query query.wildcard.p: a wildcard pattern is a string, got a number"


def test_error_wildcard_value_and_wildcard() -> None:
    assert "needs one of 'value' or 'wildcard'" in str(
        error_of(q({"wildcard": {"p": {"value": "a*", "wildcard": "b*"}}})))


def test_error_exists_without_field() -> None:
    err = error_of(q({"exists": {}}))
    assert str(err) == "es_query query.exists: 'exists' needs 'field'"
    assert err.clause == "exists"


def test_error_exists_empty_field() -> None:
    assert str(error_of(q({"exists": {"field": ""}}))) == (
        "es_query query.exists.field: a field name is a non-empty string, got ''")


def test_error_match_all_option() -> None:
    err = error_of(q({"match_all": {"x": 1}}))
    assert str(err) == ("es_query query.match_all: option 'x' of 'match_all' is not supported; 'match_all' "
                        "takes none")


def test_error_bool_unknown_key() -> None:
    err = error_of(q({"bool": {"must": [], "adjust_pure_negative": True}}))
    assert str(err) == ("es_query query.bool: option 'adjust_pure_negative' of 'bool' is not supported; "
                        "supported: must, should, must_not, filter, minimum_should_match")
    assert err.clause == "bool"


@pytest.mark.parametrize("msm", [2, "2", "50%", -1, 0, True])
def test_error_minimum_should_match(msm: Any) -> None:
    err = error_of(q({"bool": {"should": [{"term": {"a": 1}}], "minimum_should_match": msm}}))
    assert str(err).startswith("es_query query.bool.minimum_should_match: only 1 is supported, got ")
    assert err.clause == "bool"


def test_error_constant_score_without_filter() -> None:
    assert str(error_of(q({"constant_score": {"boost": 1}}))) == (
        "es_query query.constant_score: 'constant_score' needs a 'filter' clause")


def test_error_constant_score_query() -> None:
    assert "option 'query' of 'constant_score' is not supported; supported: filter" in str(
        error_of(q({"constant_score": {"query": {"match_all": {}}}})))


def test_error_star_outside_files() -> None:
    err = error_of(q({"term": {"dataset_id.*": "x"}}))
    assert str(err) == ("es_query query.term.dataset_id.*: field 'dataset_id.*' uses '*' other than as "
                        "files.*.FIELD (that field of any indexed JSON file)")


def test_error_empty_field_part() -> None:
    assert "field 'a..b' has an empty part" in str(error_of(q({"term": {"a..b": 1}})))


def test_error_odd_key_stays_on_one_line() -> None:
    assert "query.bool.must.'a\\nb'" in str(error_of(q({"bool": {"must": {"a\nb": {}}}})))


def test_error_too_deep() -> None:
    clause: dict[str, Any] = {"match_all": {}}
    for _ in range(MAX_DEPTH + 1):
        clause = {"bool": {"must": clause}}
    assert "nested more than" in str(error_of(q(clause)))


_NAMES = st.sampled_from(["query", "bool", "must", "should", "filter", "must_not", "match", "term", "terms",
                          "range", "gt", "lt", "wildcard", "value", "exists", "field", "constant_score",
                          "minimum_should_match", "operator", "boost", "files.*.x", "a.keyword", "",
                          "prefix"])
_JSON = st.recursive(
    st.sampled_from([None, True, 1, 1.5, float("nan"), "x", "1"]) | _NAMES,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_NAMES, inner, max_size=2),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_NAMES, _JSON, max_size=2))
def test_parse_es_raises_only_query_errors(obj: dict[str, Any]) -> None:
    try:
        parse_es(obj)
    except QueryError as err:
        assert "\n" not in str(err)

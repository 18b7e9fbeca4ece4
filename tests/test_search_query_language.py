"""`dss search`'s query language: the exact tree of every construct, and each bad query's error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dss_remote.search.query import (
    Bool,
    Exists,
    Match,
    MatchAll,
    Query,
    QueryError,
    Range,
    Sort,
    Term,
    Wildcard,
)
from dss_remote.search.query_language import MAX_DEPTH, parse, parse_sort

SIZE = "manifest.files.size"
PATH = "manifest.files.path"


def word(text: str) -> Match:
    return Match(None, text)


def both(field: str, typed: bool | int | float, text: str) -> Bool:
    """A bare number or boolean: stored as that type or as its text."""
    return Bool(should=(Term(field, typed), Term(field, text)))


def meta(clause_on_meta: Query, clause_on_files: Query) -> Bool:
    return Bool(should=(clause_on_meta, clause_on_files))


def error_of(text: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse(text)
    assert "\n" not in str(info.value)
    return info.value


# --- full text -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_query_matches_all(text: str) -> None:
    assert parse(text) == MatchAll()


def test_bare_word_is_full_text() -> None:
    assert parse("mouse") == Match(None, "mouse", "or")


def test_lower_case_operators_are_words() -> None:
    assert parse("and or not") == Bool(must=(word("and"), word("or"), word("not")))


def test_quoted_phrase_needs_every_token() -> None:
    assert parse('"mouse brain"') == Match(None, "mouse brain", "and")


def test_phrase_escapes() -> None:
    assert parse(r'"say \"hi\" \\ c:\x"') == Match(None, 'say "hi" \\ c:\\x', "and")


def test_word_with_punctuation_stays_one_word() -> None:
    assert parse("foo/bar:baz") == word("foo/bar:baz")


def test_keyword_inside_phrase_is_text() -> None:
    assert parse('"a AND b"') == Match(None, "a AND b", "and")


# --- field:value -----------------------------------------------------------------------------------


def test_string_term() -> None:
    assert parse("alias:raw") == Term("alias", "raw")


def test_quoted_value_is_a_string_term() -> None:
    assert parse('alias:"my data"') == Term("alias", "my data")
    assert parse('version:"12"') == Term("version", "12")
    assert parse('alias:"true"') == Term("alias", "true")


def test_quoted_value_escapes() -> None:
    assert parse(r'alias:"a\"b\\c"') == Term("alias", 'a"b\\c')


def test_quoted_empty_value_is_empty_string() -> None:
    assert parse('alias:""') == Term("alias", "")


@pytest.mark.parametrize(("text", "number"), [("3", 3), ("-3", -3), ("0", 0), ("2.5", 2.5), ("1e3", 1000.0),
                                              ("1.50", 1.5)])
def test_bare_number_is_number_or_text(text: str, number: float) -> None:
    got = parse(f"files.a_json.n:{text}")
    assert got == both("files.a_json.n", number, text)
    assert isinstance(got, Bool) and isinstance(got.should[0], Term)
    assert type(got.should[0].value) is type(number)


@pytest.mark.parametrize("text", ["007", "1.", ".5", "1e999", "0x10", "+1"])
def test_not_json_numbers_are_strings(text: str) -> None:
    assert parse(f"files.a_json.n:{text}") == Term("files.a_json.n", text)


def test_bare_booleans() -> None:
    assert parse("files.a_json.ok:true") == both("files.a_json.ok", True, "true")
    assert parse("files.a_json.ok:false") == both("files.a_json.ok", False, "false")
    assert parse("files.a_json.ok:True") == Term("files.a_json.ok", "True")


@pytest.mark.parametrize(("text", "pattern"), [("path:raw/*.nii.gz", "raw/*.nii.gz"), ("path:a?c", "a?c"),
                                               ('path:"my dir/*"', "my dir/*"), ('path:"*"', "*")])
def test_wildcard(text: str, pattern: str) -> None:
    assert parse(text) == Wildcard(PATH, pattern)


def test_star_alone_is_exists() -> None:
    assert parse("alias:*") == Exists("alias")


# --- ranges ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "key"), [(">", "gt"), (">=", "gte"), ("<", "lt"), ("<=", "lte")])
def test_range_operators(op: str, key: str) -> None:
    assert parse(f"files.a_json.n{op}5") == Range("files.a_json.n", **{key: 5})


def test_range_string_bound_compares_as_string() -> None:
    assert parse("created>=2026-06-01") == Range("created", gte="2026-06-01")


def test_range_float_bound() -> None:
    assert parse("files.a_json.n<2.5") == Range("files.a_json.n", lt=2.5)


def test_range_quoted_bound_is_a_string() -> None:
    assert parse('alias>"5"') == Range("alias", gt="5")


def test_github_style_range_after_colon() -> None:
    assert parse("created:>=2026-06-01") == Range("created", gte="2026-06-01")
    assert parse("size:<1KB") == Range(SIZE, lt=1000)


@pytest.mark.parametrize(("text", "size"), [
    ("1", 1), ("10B", 10), ("1KB", 1000), ("1kb", 1000), ("2MB", 2_000_000), ("1GB", 10**9),
    ("1TB", 10**12), ("1KiB", 1024), ("1MiB", 1024**2), ("1gib", 1024**3), ("1TiB", 1024**4),
    ("1.5GB", 1_500_000_000), ("0.5KiB", 512), ("1.5B", 2),
])
def test_size_units(text: str, size: int) -> None:
    got = parse(f"size>{text}")
    assert got == Range(SIZE, gt=size)
    assert isinstance(got, Range) and type(got.gt) is int


def test_size_plain_float_stays_float() -> None:
    assert parse("size>=1.5") == Range(SIZE, gte=1.5)


def test_size_units_also_on_the_full_path() -> None:
    assert parse("manifest.files.size>1KB") == Range(SIZE, gt=1000)


def test_size_units_only_on_size() -> None:
    assert parse("files.a_json.n>1KB") == Range("files.a_json.n", gt="1KB")


def test_size_term_with_unit_and_without() -> None:
    assert parse("size:1KiB") == Term(SIZE, 1024)
    assert parse("size:100") == both(SIZE, 100, "100")


# --- fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "field"), [
    ("path", PATH), ("name", PATH), ("type", "manifest.files.content_type"),
    ("content_type", "manifest.files.content_type"), ("key", "manifest.files.key"), ("dataset", "dataset_id"),
    ("dataset_id", "dataset_id"), ("alias", "alias"), ("version", "version"), ("created", "created"),
    ("uuid", "uuid"), ("bundle_fqid", "bundle_fqid"), ("size", SIZE),
])
def test_field_shortcuts(name: str, field: str) -> None:
    assert parse(f"{name}:x*") == Wildcard(field, "x*")


def test_meta_is_store_metadata_or_any_json_file() -> None:
    assert parse("meta.species:mouse") == meta(Term("meta.species", "mouse"),
                                               Term("files.*.species", "mouse"))


def test_meta_dotted_path() -> None:
    assert parse("meta.sample.organ:*") == meta(Exists("meta.sample.organ"), Exists("files.*.sample.organ"))


def test_meta_range_wildcard_and_typed_values() -> None:
    assert parse("meta.age>=3") == meta(Range("meta.age", gte=3), Range("files.*.age", gte=3))
    assert parse("meta.name:mo*") == meta(Wildcard("meta.name", "mo*"), Wildcard("files.*.name", "mo*"))
    assert parse("meta.n:2") == meta(both("meta.n", 2, "2"), both("files.*.n", 2, "2"))


def test_dotted_names_are_paths_as_is() -> None:
    assert parse("files.meta_sample_json.species:mouse") == Term("files.meta_sample_json.species", "mouse")
    assert parse("files.*.species:mouse") == Term("files.*.species", "mouse")
    assert parse("a-b.c_d.E9:x") == Term("a-b.c_d.E9", "x")


# --- boolean structure -----------------------------------------------------------------------------


def test_juxtaposition_is_and() -> None:
    assert parse("a b") == Bool(must=(word("a"), word("b")))


def test_and_chain_is_flat() -> None:
    assert parse("a AND b AND c") == Bool(must=(word("a"), word("b"), word("c")))
    assert parse("a AND b c") == Bool(must=(word("a"), word("b"), word("c")))


def test_or_chain_is_flat() -> None:
    assert parse("a OR b OR c") == Bool(should=(word("a"), word("b"), word("c")))


def test_and_binds_tighter_than_or() -> None:
    assert parse("a OR b AND c") == Bool(should=(word("a"), Bool(must=(word("b"), word("c")))))
    assert parse("a b OR c") == Bool(should=(Bool(must=(word("a"), word("b"))), word("c")))


def test_not_binds_tighter_than_and() -> None:
    assert parse("NOT a b") == Bool(must=(Bool(must_not=(word("a"),)), word("b")))


def test_minus_is_not() -> None:
    assert parse("a -alias:scratch") == Bool(must=(word("a"), Bool(must_not=(Term("alias", "scratch"),))))
    assert parse('-"x y"') == Bool(must_not=(Match(None, "x y", "and"),))


def test_double_negation_is_kept() -> None:
    assert parse("NOT -a") == Bool(must_not=(Bool(must_not=(word("a"),)),))


def test_parentheses_group() -> None:
    assert parse("(a OR b) c") == Bool(must=(Bool(should=(word("a"), word("b"))), word("c")))
    assert parse("NOT (a OR b)") == Bool(must_not=(Bool(should=(word("a"), word("b"))),))
    assert parse("((a))") == word("a")


def test_operators_glued_to_parentheses() -> None:
    assert parse("NOT(a) AND(b)") == Bool(must=(Bool(must_not=(word("a"),)), word("b")))
    assert parse("-(a)") == Bool(must_not=(word("a"),))


def test_documented_examples() -> None:
    assert parse("meta.species:mouse AND size>1GB") == Bool(must=(
        meta(Term("meta.species", "mouse"), Term("files.*.species", "mouse")), Range(SIZE, gt=10**9)))
    assert parse("path:raw/*.nii.gz") == Wildcard(PATH, "raw/*.nii.gz")
    assert parse("created>=2026-06-01 NOT alias:scratch") == Bool(must=(
        Range("created", gte="2026-06-01"), Bool(must_not=(Term("alias", "scratch"),))))


# --- errors ----------------------------------------------------------------------------------------


def test_error_unknown_field() -> None:
    err = error_of("mouse species:mouse")
    assert str(err) == ("unknown field 'species' at position 6: use meta.species (a field of any indexed "
                        "JSON file or store metadata), files.<file>.species, or one of path, size, type, "
                        "key, dataset, alias, version, created")
    assert err.position == 6


def test_error_unknown_field_in_range() -> None:
    assert error_of("age>3").position == 0


def test_error_dangling_and() -> None:
    err = error_of("size>1GB AND")
    assert str(err) == ("query does not parse at position 9 (near 'AND'): 'AND' needs a term after it "
                        "(remove it or add a term)")
    assert err.position == 9


def test_error_and_before_closing_parenthesis() -> None:
    err = error_of("(a AND) b")
    assert "'AND' needs a term after it" in str(err) and err.position == 3


def test_error_leading_and() -> None:
    err = error_of("AND a")
    assert str(err) == ("query does not parse at position 0 (near 'AND a'): 'AND' needs a term before it "
                        "(remove it or add a term)")
    assert err.position == 0


def test_error_dangling_or() -> None:
    err = error_of("a OR")
    assert "'OR' needs a term after it" in str(err) and err.position == 2


def test_error_or_or() -> None:
    err = error_of("a OR OR b")
    assert "'OR' needs a term after it" in str(err) and err.position == 2


def test_error_leading_or() -> None:
    err = error_of("OR a")
    assert "'OR' needs a term before it" in str(err) and err.position == 0


def test_error_dangling_not() -> None:
    err = error_of("a NOT")
    assert str(err) == ("query does not parse at position 2 (near 'NOT'): 'NOT' needs a term after it "
                        "(remove it or add a term)")
    assert err.position == 2


def test_error_not_before_or() -> None:
    err = error_of("NOT OR a")
    assert "'NOT' needs a term after it" in str(err) and err.position == 0


def test_error_dangling_minus() -> None:
    err = error_of("a - b")
    assert str(err) == ("query does not parse at position 2 (near '- b'): '-' needs a term right after it "
                        "(no space: -alias:scratch)")
    assert err.position == 2


def test_error_minus_at_end() -> None:
    assert error_of("a -").position == 2


def test_error_unclosed_parenthesis() -> None:
    err = error_of("a (b OR c")
    assert str(err) == "query does not parse at position 2 (near '(b OR c'): '(' is never closed (add a ')')"
    assert err.position == 2


def test_error_lone_open_parenthesis() -> None:
    assert "'(' is never closed" in str(error_of("a (")) and error_of("a (").position == 2


def test_error_unopened_parenthesis() -> None:
    err = error_of("a b) c")
    assert str(err) == ("query does not parse at position 3 (near ') c'): ')' has no '(' before it "
                        "(remove it or add a '(')")
    assert err.position == 3


def test_error_leading_closing_parenthesis() -> None:
    assert "')' has no '(' before it" in str(error_of(")")) and error_of(")").position == 0


def test_error_empty_parentheses() -> None:
    err = error_of("a ()")
    assert "empty parentheses" in str(err) and err.position == 2


def test_error_missing_value() -> None:
    err = error_of("path: x")
    assert str(err) == ("query does not parse at position 5 (near ' x'): 'path:' needs a value (path:VALUE, "
                        "or path:* for any value)")
    assert err.position == 5


def test_error_missing_value_at_end() -> None:
    err = error_of("alias:")
    assert str(err) == ("query does not parse at position 6 (at the end): 'alias:' needs a value "
                        "(alias:VALUE, or alias:* for any value)")


def test_error_missing_value_before_parenthesis() -> None:
    assert error_of("(alias:)").position == 7


def test_error_empty_range_bound() -> None:
    err = error_of("size>= AND a")
    assert str(err) == ("query does not parse at position 6 (near ' AND a'): 'size>=' needs a bound "
                        "(e.g. size>1GB, created>=2026-06-01)")
    assert err.position == 6


def test_error_empty_quoted_range_bound() -> None:
    err = error_of('created<""')
    assert "'created<' needs a bound, not an empty string" in str(err) and err.position == 8


def test_error_empty_github_style_bound() -> None:
    assert "'created:>' needs a bound" in str(error_of("created:>"))


def test_error_unterminated_quote() -> None:
    err = error_of('a "mouse brain')
    assert str(err) == ("query does not parse at position 2 (near '\"mouse brain'): unterminated quote "
                        '(close it with ", and write \\" for a quote inside)')
    assert err.position == 2


def test_error_unterminated_quoted_value() -> None:
    assert error_of('alias:"raw').position == 6


def test_error_escaped_closing_quote_is_unterminated() -> None:
    assert error_of(r'"abc\"').position == 0


def test_error_bad_size_unit() -> None:
    err = error_of("size>1XB")
    assert str(err) == ("query does not parse at position 6 (near 'XB'): unknown size unit 'XB' (use one of "
                        "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    assert err.position == 6


def test_error_size_not_a_size() -> None:
    err = error_of("size<big")
    assert "'big' is not a size" in str(err) and "KiB" in str(err) and err.position == 5


def test_error_size_term_not_a_size() -> None:
    assert error_of("size:1XB").position == 6


def test_error_star_inside_field_part() -> None:
    err = error_of("files.sample*.species:x")
    assert "bad field name 'files.sample*.species'" in str(err) and err.position == 0


def test_error_star_outside_files() -> None:
    err = error_of("a b meta.*.species:x")
    assert "'*' only as files.*.FIELD" in str(err) and err.position == 4


def test_error_empty_field_part() -> None:
    assert "bad field name 'a..b'" in str(error_of("a..b:x"))


def test_error_operator_without_field() -> None:
    err = error_of("a :b")
    assert "':' needs a field name before it" in str(err) and err.position == 2


def test_error_quote_inside_word() -> None:
    err = error_of('alias:a"b"')
    assert "a quote inside a word" in str(err) and err.position == 7


def test_error_text_after_closing_quote() -> None:
    err = error_of('"a"b')
    assert "text right after a closing quote" in str(err) and err.position == 3


def test_error_parenthesis_glued_to_word() -> None:
    err = error_of("path:f(1).txt")
    assert "a parenthesis right after a word" in str(err) and err.position == 6


def test_error_too_deep() -> None:
    err = error_of("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    assert "nested more than" in str(err) and err.position == MAX_DEPTH


def test_error_too_many_nots() -> None:
    assert "nested more than" in str(error_of("NOT " * (MAX_DEPTH + 1) + "a"))


def test_first_error_in_the_text_is_reported() -> None:
    assert error_of("a OR AND species:x").position == 2


def test_deep_but_allowed() -> None:
    assert parse("(" * (MAX_DEPTH - 1) + "a" + ")" * (MAX_DEPTH - 1)) == word("a")


_SYNTAX = st.sampled_from(['"', "\\", "(", ")", "-", ":", ">", ">=", "<", "*", "?", ".", " ", "AND", "OR",
                           "NOT", "size", "meta.", "files.*.", "path", "1", "1.5", "GB", "KiB", "true", "x"])


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=30), st.lists(_SYNTAX, max_size=12).map("".join)))
def test_parse_raises_only_query_errors(text: str) -> None:
    try:
        parse(text)
    except QueryError as err:
        assert err.position is not None and 0 <= err.position <= len(text)
        assert "\n" not in str(err)


# --- sort ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "sort"), [
    ("created", Sort("created", False)), ("created:asc", Sort("created", False)),
    ("created:desc", Sort("created", True)), ("-created", Sort("created", True)),
    (" size:DESC ", Sort("size", True)), ("file_count", Sort("file_count", False)),
])
def test_parse_sort(text: str, sort: Sort) -> None:
    assert parse_sort(text) == sort


def test_sort_error_unknown_field() -> None:
    with pytest.raises(QueryError) as info:
        parse_sort("-species")
    assert str(info.value) == ("cannot sort by 'species': sort by one of version, created, dataset_id, "
                               "alias, uuid, bundle_fqid, size, file_count (add :desc for descending)")
    assert info.value.position == 1


def test_sort_error_bad_direction() -> None:
    with pytest.raises(QueryError) as info:
        parse_sort("created:down")
    assert str(info.value) == "sort direction 'down' is not asc or desc: write created:asc or created:desc"
    assert info.value.position == 8


def test_sort_error_direction_twice() -> None:
    with pytest.raises(QueryError, match="gives a direction twice"):
        parse_sort("-created:asc")


def test_sort_error_empty() -> None:
    with pytest.raises(QueryError, match="sort needs a field"):
        parse_sort(" ")

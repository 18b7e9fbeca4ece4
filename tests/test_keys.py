"""ria_store.keys: parsing git-annex keys, their sizes and checksums, and keyFile escaping."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ria_store.errors import KeyFormatError
from ria_store.keys import MAX_NAME_BYTES, AnnexKey, parse_key, sanitize_key
from ria_store.layout import object_relpath

MD5 = "9a9019561007e616e328cd15e87863a3"
SHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
_UNESCAPES = {"%": "/", "&s": "%", "&a": "&", "&c": ":"}
# These properties are about values, not speed: hypothesis's default 200 ms deadline per example
# fails them when the machine is busy (other test workers, a cold import), so it is off.
untimed = settings(deadline=None)


def unsanitize(name: str) -> str:
    """The inverse of keyFile escaping: its existence is what makes the escaping one-to-one."""
    return re.sub(r"&[sac]|%", lambda m: _UNESCAPES[m.group(0)], name)


# --- parse_key: fields -------------------------------------------------------------------------

def test_parse_key_all_fields() -> None:
    k = parse_key(f"MD5E-s100-m1700000000-S40-C2--{MD5}.docx")
    assert k == AnnexKey(f"MD5E-s100-m1700000000-S40-C2--{MD5}.docx", "MD5E", f"{MD5}.docx",
                         size=100, mtime=1700000000, chunk_size=40, chunk_num=2)
    assert str(k) == k.text


def test_parse_key_plain_has_no_optional_fields() -> None:
    k = parse_key("WORM--some-file.txt")
    assert (k.backend, k.name, k.size, k.mtime, k.chunk_size, k.chunk_num) == (
        "WORM", "some-file.txt", None, None, None, None)


def test_parse_key_name_may_hold_dashes_and_field_lookalikes() -> None:
    k = parse_key("MD5E--a-s1--b")
    assert (k.backend, k.name, k.size) == ("MD5E", "a-s1--b", None)
    assert parse_key("WORM-s5---x").name == "-x"


def test_parse_key_url_key_keeps_slashes_in_name() -> None:
    k = parse_key("URL--http://example.org/a%20b&c:d")
    assert (k.backend, k.name) == ("URL", "http://example.org/a%20b&c:d")


def test_non_chunk_drops_chunk_fields_only() -> None:
    assert parse_key(f"MD5E-s100-m7-S40-C3--{MD5}").non_chunk == f"MD5E-s100-m7--{MD5}"
    assert parse_key(f"MD5E-S40-C3--{MD5}").non_chunk == f"MD5E--{MD5}"
    assert parse_key(f"MD5E-s100--{MD5}").non_chunk == f"MD5E-s100--{MD5}"


# --- expected_size ---------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "size"), [
    ("WORM-s10--x", 10),
    ("WORM-s0--x", 0),
    ("WORM--x", None),
    ("WORM-s10-S4-C1--x", 4),
    ("WORM-s10-S4-C2--x", 4),
    ("WORM-s10-S4-C3--x", 2),   # the last chunk holds the rest
    ("WORM-s12-S4-C3--x", 4),   # ... which may be a whole chunk
    ("WORM-S4-C3--x", None),    # a chunk of a key of unknown size
])
def test_expected_size(key: str, size: int | None) -> None:
    assert parse_key(key).expected_size == size


@untimed
@given(st.integers(1, 10**9), st.integers(0, 50), st.integers(0, 10**9))
def test_expected_size_of_all_chunks_adds_up(chunk: int, full: int, rest: int) -> None:
    size = chunk * full + rest % chunk
    n = max(1, -(-size // chunk))
    sizes = [parse_key(f"WORM-s{size}-S{chunk}-C{i}--x").expected_size for i in range(1, n + 1)]
    assert sum(s or 0 for s in sizes) == size
    assert all(s == chunk for s in sizes[:-1])


# --- checksum --------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "expected"), [
    (f"MD5E-s12060--{MD5}.docx", ("md5", MD5)),
    (f"MD5E-s1--{MD5}", ("md5", MD5)),
    (f"SHA256E-s1--{SHA256}.tar.gz", ("sha256", SHA256)),
    (f"SHA256-s1--{SHA256}", ("sha256", SHA256)),
    (f"SHA256-s1--{SHA256}.txt", None),            # no extension in a non-E backend's name
    (f"SHA256E-s100-S40-C1--{SHA256}", None),      # a chunk is not the whole content
    (f"MD5E-s1--{MD5.upper()}", None),
    ("WORM-s3-m4--a.txt", None),
    ("URL--http://example.org/x", None),
])
def test_checksum(key: str, expected: tuple[str, str] | None) -> None:
    assert parse_key(key).checksum == expected


# --- sanitize_key -----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "escaped"), [
    ("URL--http://e.org/a", "URL--http&c%%e.org%a"),
    ("WORM--100%", "WORM--100&s"),
    ("WORM--a&b", "WORM--a&ab"),
    ("WORM--a:b", "WORM--a&cb"),
    ("WORM--&s", "WORM--&as"),
    ("WORM--%&:/", "WORM--&s&a&c%"),
    (f"MD5E-s1--{MD5}.txt", f"MD5E-s1--{MD5}.txt"),
])
def test_sanitize_key_escapes(key: str, escaped: str) -> None:
    assert sanitize_key(key) == escaped
    assert unsanitize(escaped) == key


@untimed
@given(st.text())
def test_sanitize_key_is_invertible_and_never_yields_slash(s: str) -> None:
    out = sanitize_key(s)
    assert "/" not in out
    assert unsanitize(out) == s


@untimed
@given(st.text(alphabet="/%&:asc", max_size=8), st.text(alphabet="/%&:asc", max_size=8))
def test_sanitize_key_is_injective(a: str, b: str) -> None:
    if a != b:
        assert sanitize_key(a) != sanitize_key(b)


@pytest.fixture(scope="module")
def datalads_sanitize_key() -> Callable[[str], str]:
    """DataLad's own keyFile escaping, imported once here so no example pays for the import."""
    try:
        from datalad.support.annex_utils import _sanitize_key
    except ImportError as e:
        pytest.fail(f"datalad is not importable ({e}); install it with: pip install -e '.[test]'")
    sanitize: Callable[[str], str] = _sanitize_key
    return sanitize


@untimed
@given(st.text())
def test_sanitize_key_agrees_with_datalad(datalads_sanitize_key: Callable[[str], str], s: str) -> None:
    assert sanitize_key(s) == datalads_sanitize_key(s)


# --- bad input -------------------------------------------------------------------------------

def test_malformed_key_empty() -> None:
    with pytest.raises(KeyFormatError, match="empty"):
        parse_key("")


def test_malformed_key_no_separator() -> None:
    with pytest.raises(KeyFormatError, match=r"malformed key 'MD5E-s10-abc': expected BACKEND"):
        parse_key("MD5E-s10-abc")


def test_malformed_key_whitespace() -> None:
    with pytest.raises(KeyFormatError, match="whitespace"):
        parse_key("WORM-s3--a b")


def test_malformed_key_control_char() -> None:
    with pytest.raises(KeyFormatError, match="control characters"):
        parse_key("WORM-s3--a\x01b")
    with pytest.raises(KeyFormatError, match="control characters"):
        parse_key("WORM-s3--a\x7f")


def test_malformed_key_duplicate_field() -> None:
    with pytest.raises(KeyFormatError, match="field -s appears twice"):
        parse_key(f"MD5E-s10-s11--{MD5}")


def test_malformed_key_chunk_fields_incomplete() -> None:
    with pytest.raises(KeyFormatError, match="-S and -C must come together"):
        parse_key(f"MD5E-s10-S5--{MD5}")
    with pytest.raises(KeyFormatError, match="-S and -C must come together"):
        parse_key(f"MD5E-s10-C2--{MD5}")


def test_malformed_key_chunk_zero() -> None:
    with pytest.raises(KeyFormatError, match="start at 1"):
        parse_key(f"MD5E-s10-S5-C0--{MD5}")


def test_malformed_key_too_long_for_a_file_name() -> None:
    head = f"SHA256E-s1--{SHA256}."
    ok = head + "x" * (MAX_NAME_BYTES - len(head))
    assert parse_key(ok).text == ok
    with pytest.raises(KeyFormatError, match=f"longer than {MAX_NAME_BYTES} bytes as a file name"):
        parse_key(ok + "x")


def test_malformed_key_too_long_after_escaping() -> None:
    key = "WORM--" + ":" * 125  # 131 characters, 256 once `:` becomes `&c`
    with pytest.raises(KeyFormatError, match="as a file name"):
        parse_key(key)


def test_malformed_key_too_long_counts_utf8_bytes() -> None:
    with pytest.raises(KeyFormatError, match="as a file name"):
        parse_key("WORM--" + "é" * 125)


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "MD5E--../x", "MD5E--..",
                                 "MD5E--/", "WORM--a/../../b", "..--x", ".", ".."])
def test_key_path_traversal_is_rejected(key: str) -> None:
    try:
        k = parse_key(key)
    except KeyFormatError:
        return
    for version in ("1", "2"):
        rel = object_relpath(k, version)
        assert not rel.startswith("/")
        assert ".." not in rel.split("/")
        assert rel.split("/")[-1] == sanitize_key(key)


@untimed
@given(st.text(min_size=1, max_size=80))
def test_any_accepted_key_is_one_safe_path_component(name: str) -> None:
    try:
        k = parse_key(f"WORM--{name}")
    except KeyFormatError:
        return
    parts = object_relpath(k, "2").split("/")
    assert len(parts) == 6  # annex / objects / aa / bb / KEY / KEY
    assert all(p not in ("", ".", "..") for p in parts)


@pytest.mark.parametrize(("key", "canonical"), [
    (f"MD5E-s010--{MD5}", f"MD5E-s10--{MD5}"),
    (f"MD5E-m5-s10--{MD5}", f"MD5E-s10-m5--{MD5}"),
    (f"MD5E-s10-C2-S5--{MD5}", f"MD5E-s10-S5-C2--{MD5}"),
])
def test_malformed_key_not_canonical(key: str, canonical: str) -> None:
    with pytest.raises(KeyFormatError, match=f"git-annex writes it as '{canonical}'"):
        parse_key(key)


def test_checksum_needs_a_digest_of_the_algorithms_length() -> None:
    assert parse_key("MD5E-s1--abc.txt").checksum is None
    assert parse_key("SHA256-s1--" + "0" * 63).checksum is None
    assert parse_key("SHA256-s1--" + "0" * 64).checksum == ("sha256", "0" * 64)

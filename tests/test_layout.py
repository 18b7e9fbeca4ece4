"""ria_store.layout: dirhashes against git-annex itself, object paths, dataset ids, aliases, versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require_tool, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ria_store.errors import KeyFormatError, LayoutError, UnsafePathError
from ria_store.keys import parse_key, sanitize_key
from ria_store.layout import (
    alias_target,
    archive_members,
    check_alias,
    check_dataset_id,
    dataset_relpath,
    dirhash_lower,
    dirhash_mixed,
    object_relpath,
    parse_version_file,
)

MD5 = "9a9019561007e616e328cd15e87863a3"
DSID = "4dc8313d-2567-4475-a4a0-17cdebad9c1d"
FORMAT = "--format=${key}\\t${hashdirmixed}\\t${hashdirlower}\\n"


# --- golden vectors ----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "mixed"), [
    ("MD5E-s12060--9a9019561007e616e328cd15e87863a3.docx", "xk/vw/"),
    ("MD5E-s1464--a57e3e98bb211f39c420fe75d618ad37.json", "Pj/wj/"),
])
def test_dirhash_mixed_golden(key: str, mixed: str) -> None:
    assert dirhash_mixed(key) == mixed
    assert dirhash_mixed(parse_key(key)) == mixed


def test_dirhash_shapes() -> None:
    mixed, lower = dirhash_mixed("WORM--x"), dirhash_lower("WORM--x")
    assert len(mixed) == 6 and mixed[2] == "/" and mixed[5] == "/"
    assert len(lower) == 8 and lower[3] == "/" and lower[7] == "/"
    assert lower == lower.lower()


def test_chunk_keys_hash_like_their_key() -> None:
    for chunk in ("-S100-C1", "-S100-C7", "-S1-C1000"):
        key = f"MD5E-s1000-m5{chunk}--{MD5}.bin"
        assert dirhash_mixed(key) == dirhash_mixed(f"MD5E-s1000-m5--{MD5}.bin")
        assert dirhash_lower(key) == dirhash_lower(f"MD5E-s1000-m5--{MD5}.bin")
        assert dirhash_mixed(key, escaped=False) == dirhash_mixed(f"MD5E-s1000-m5--{MD5}.bin",
                                                                  escaped=False)


def test_escaping_only_changes_the_hash_of_odd_keys() -> None:
    assert dirhash_mixed(f"MD5E-s1--{MD5}") == dirhash_mixed(f"MD5E-s1--{MD5}", escaped=False)
    assert dirhash_mixed("URL--http://e.org/a") != dirhash_mixed("URL--http://e.org/a", escaped=False)


# --- the same, computed by git-annex ------------------------------------------------------------

@pytest.fixture
def annex_repo(tmp_path: Path) -> Path:
    require_tool("git-annex")
    repo = tmp_path / "repo"
    run("git", "init", "-q", repo)
    run("git", "annex", "init", "-q", "hashes", cwd=repo)
    return repo


def annex_hashes(repo: Path, keys: list[str]) -> list[tuple[str, str, str]]:
    """(key as git-annex writes it, hashdirmixed, hashdirlower) of each key, in order."""
    res = run("git", "annex", "examinekey", FORMAT, *keys, cwd=repo)
    rows = [tuple(line.split("\t")) for line in res.stdout.splitlines()]
    assert len(rows) == len(keys)
    return rows  # type: ignore[return-value]


_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
_ODD = st.sampled_from(["%", "&", ":", "/", "&s", "&a", "&c", "%%", "..", "-", "--", ".ext"])
_odd_name = st.lists(st.one_of(st.text(_NAME_CHARS, min_size=1, max_size=6), _ODD),
                     min_size=1, max_size=8).map("".join)
_hex = st.text("0123456789abcdef", min_size=32, max_size=64)
_num = st.integers(0, 10**12).map(str)


@st.composite
def annex_keys(draw: st.DrawFn) -> str:
    backend = draw(st.sampled_from(["MD5E", "SHA256E", "SHA256", "SHA1", "GPGHMACSHA1", "WORM",
                                    "URL", "BLAKE2B256E", "X_9"]))
    if backend in ("WORM", "URL", "X_9"):
        name = draw(_odd_name)
    elif backend.endswith("E"):
        name = draw(_hex) + draw(st.sampled_from(["", ".txt", ".tar.gz", ".d&c"]))
    else:
        name = draw(_hex)
    fields = ""
    if draw(st.booleans()):
        fields += "-s" + draw(_num)
    if draw(st.booleans()):
        fields += "-m" + draw(_num)
    if draw(st.integers(0, 3)) == 0:
        fields += f"-S{draw(st.integers(1, 10**9))}-C{draw(st.integers(1, 10**4))}"
    return f"{backend}{fields}--{name}"


def _valid(key: str) -> bool:
    try:
        parse_key(key)
    except KeyFormatError:
        return False
    return True


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
@given(st.lists(annex_keys().filter(_valid), min_size=50, max_size=80))
def test_dirhashes_match_git_annex(annex_repo: Path, keys: list[str]) -> None:
    escaped = annex_hashes(annex_repo, [sanitize_key(k) for k in keys])
    raw = annex_hashes(annex_repo, keys)
    for key, (esc_key, esc_mixed, esc_lower), (raw_key, raw_mixed, _) in zip(keys, escaped, raw, strict=True):
        assert raw_key == key, "parse_key accepted a key git-annex writes differently"
        assert esc_key == sanitize_key(key)
        assert (dirhash_mixed(key), dirhash_lower(key)) == (esc_mixed, esc_lower), key
        assert dirhash_mixed(key, escaped=False) == raw_mixed, key


def test_chunk_keys_hash_like_their_key_in_git_annex(annex_repo: Path) -> None:
    base = "WORM-s1000-m3--a:b%c&d/e"
    keys = [base] + [f"WORM-s1000-m3-S100-C{i}--a:b%c&d/e" for i in (1, 5, 10)]
    rows = annex_hashes(annex_repo, [sanitize_key(k) for k in keys])
    assert len({r[1:] for r in rows}) == 1
    assert {dirhash_mixed(k) for k in keys} == {rows[0][1]}


@pytest.mark.parametrize("key", [f"MD5E-s010--{MD5}", f"MD5E-s10-S5-C02--{MD5}", "WORM-s1-m007--x"])
def test_keys_git_annex_would_rewrite_are_rejected(annex_repo: Path, key: str) -> None:
    ((canonical, *_),) = annex_hashes(annex_repo, [key])
    assert canonical != key
    with pytest.raises(KeyFormatError, match=f"git-annex writes it as '{canonical}'"):
        parse_key(key)


# --- object paths and archive members ----------------------------------------------------------

def test_object_relpath_versions() -> None:
    key = "WORM-s3--a:b"
    esc = "WORM-s3--a&cb"
    assert object_relpath(key, "2") == f"annex/objects/{dirhash_mixed(key)}{esc}/{esc}"
    assert object_relpath(key, "1") == f"annex/objects/{dirhash_lower(key)}{esc}/{esc}"
    assert object_relpath("MD5E-s12060--9a9019561007e616e328cd15e87863a3.docx", "2") == (
        "annex/objects/xk/vw/MD5E-s12060--9a9019561007e616e328cd15e87863a3.docx/"
        "MD5E-s12060--9a9019561007e616e328cd15e87863a3.docx")


@pytest.mark.parametrize("version", ["3", "0", "", "2|l"])
def test_object_relpath_unknown_version(version: str) -> None:
    with pytest.raises(LayoutError, match=rf"unknown dataset ria-layout-version '{version}'.*known: 1, 2"):
        object_relpath("WORM--x", version)


def test_archive_members_plain_key_has_one_name() -> None:
    key = f"MD5E-s1--{MD5}.txt"
    assert archive_members(key) == [f"{dirhash_mixed(key)}{key}/{key}"]


@pytest.mark.parametrize("key", ["WORM--a:b", "WORM--100%", "WORM--x&y"])
def test_archive_members_odd_key_ora_name_first_then_git_annex_name(key: str) -> None:
    esc = sanitize_key(key)
    assert archive_members(key) == [f"{dirhash_mixed(key)}{esc}/{esc}",
                                    f"{dirhash_mixed(key, escaped=False)}{key}/{key}"]


def test_archive_members_key_with_slash_has_only_the_escaped_name() -> None:
    key = "URL--http://e.org/a:b"
    esc = sanitize_key(key)
    assert archive_members(key) == [f"{dirhash_mixed(key)}{esc}/{esc}"]


# --- dataset ids, aliases ------------------------------------------------------------------------

def test_dataset_relpath() -> None:
    assert dataset_relpath(DSID) == "4dc/8313d-2567-4475-a4a0-17cdebad9c1d"
    assert alias_target(DSID) == "../4dc/8313d-2567-4475-a4a0-17cdebad9c1d"
    assert check_dataset_id(DSID) == DSID


@pytest.mark.parametrize("dsid", ["../x", "abc", DSID.upper(), f"4dc/{DSID[3:]}", "", f"{DSID}/..",
                                  f"../{DSID[3:]}", f" {DSID}", f"{DSID}\n"])
def test_bad_dataset_id_rejected(dsid: str) -> None:
    with pytest.raises(UnsafePathError, match="invalid dataset id"):
        dataset_relpath(dsid)


@pytest.mark.parametrize("name", ["sample", "my.alias", "a+b@c-d_e", "_x", "0"])
def test_alias_accepted(name: str) -> None:
    assert check_alias(name) == name


def test_alias_with_dotdot_rejected() -> None:
    for name in ("..", "../x", "..x", "."):
        with pytest.raises(UnsafePathError, match="invalid alias"):
            check_alias(name)


def test_alias_absolute_rejected() -> None:
    with pytest.raises(UnsafePathError, match=r"invalid alias '/etc'.*without '/'"):
        check_alias("/etc")


def test_alias_with_slash_rejected() -> None:
    with pytest.raises(UnsafePathError, match="without '/'"):
        check_alias("a/b")


@pytest.mark.parametrize("name", ["", "-x", "a b", "a\nb", "x" * 201, "a\\b"])
def test_alias_other_bad_names_rejected(name: str) -> None:
    with pytest.raises(UnsafePathError, match="invalid alias"):
        check_alias(name)


# --- ria-layout-version files --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "parsed"), [
    ("1", ("1", frozenset())),
    ("1\n", ("1", frozenset())),
    ("1|l", ("1", frozenset("l"))),
    ("1|l\n", ("1", frozenset("l"))),
    ("2\n", ("2", frozenset())),
])
def test_parse_version_file(text: str, parsed: tuple[str, frozenset[str]]) -> None:
    assert parse_version_file(text, "store /s") == parsed


@pytest.mark.parametrize("text", ["1|l|x", "", "\n", "|l"])
def test_parse_version_file_bad(text: str) -> None:
    with pytest.raises(LayoutError, match=r"store /s: invalid ria-layout-version content"):
        parse_version_file(text, "store /s")

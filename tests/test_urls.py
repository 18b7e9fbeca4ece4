"""ria_store.urls: store and dataset URLs, checked against DataLad's own parser where it has one."""

from __future__ import annotations

import pytest

from ria_store.errors import UnsafePathError, UrlError
from ria_store.urls import StoreUrl, parse_dataset_url, parse_store_url, redact_url

DSID = "4dc8313d-2567-4475-a4a0-17cdebad9c1d"


# --- store URLs -------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    ("ria+file:///abs/store", StoreUrl("ria+file:///abs/store", "file", "/abs/store")),
    ("ria+file:///abs/store/", StoreUrl("ria+file:///abs/store/", "file", "/abs/store")),
    ("ria+file://localhost/abs/store",
     StoreUrl("ria+file://localhost/abs/store", "file", "/abs/store", "localhost")),
    ("ria+file:///with%20space", StoreUrl("ria+file:///with%20space", "file", "/with space")),
    ("ria+file:///", StoreUrl("ria+file:///", "file", "/")),
    ("ria+ssh://host/abs/store", StoreUrl("ria+ssh://host/abs/store", "ssh", "/abs/store", "host")),
    ("ria+ssh://me@host:2222/abs/store",
     StoreUrl("ria+ssh://me@host:2222/abs/store", "ssh", "/abs/store", "host", 2222, "me")),
    ("ria+ssh://host:/abs/store", StoreUrl("ria+ssh://host:/abs/store", "ssh", "/abs/store", "host")),
    ("ria+ssh://me@host:/abs/store",
     StoreUrl("ria+ssh://me@host:/abs/store", "ssh", "/abs/store", "host", None, "me")),
    ("ria+http://example.org/stores/a/",
     StoreUrl("ria+http://example.org/stores/a/", "http", "/stores/a", "example.org")),
    ("ria+https://example.org:8443",
     StoreUrl("ria+https://example.org:8443", "https", "/", "example.org", 8443)),
])
def test_parse_store_url(url: str, expected: StoreUrl) -> None:
    parsed = parse_store_url(url)
    assert parsed == expected
    assert str(parsed) == url
    assert parsed.is_local == (expected.scheme == "file")


@pytest.mark.parametrize("url", [
    "ria+file:///abs/store", "ria+file://localhost/abs/store", "ria+file:///with%20space",
    "ria+ssh://host/abs/store", "ria+ssh://me@host:2222/abs/store", "ria+ssh://host:/abs/store",
    "ria+ssh://host/:/abs", "ria+http://example.org/stores/a/", "ria+https://example.org:8443/s",
])
def test_store_path_agrees_with_datalad(url: str) -> None:
    from datalad.customremotes.ria_utils import verify_ria_url

    host, path, _ = verify_ria_url(url, {})
    parsed = parse_store_url(url)
    assert parsed.path == (path.rstrip("/") or "/")
    assert (host is None) == parsed.is_local


def test_url_unsupported_scheme() -> None:
    with pytest.raises(UrlError, match=r"unsupported scheme 'ria\+ftp'") as e:
        parse_store_url("ria+ftp://example.org/store")
    for supported in ("ria+file://", "ria+ssh://", "ria+http(s)://"):
        assert supported in str(e.value)


def test_url_fragment_on_store_url() -> None:
    with pytest.raises(UrlError, match=rf"has a fragment \('#{DSID}'\).*drop '#...'"):
        parse_store_url(f"ria+file:///abs/store#{DSID}")


@pytest.mark.parametrize("url", ["file:///abs/store", "ssh://host/abs", "/abs/store", "RIA+file:///x", ""])
def test_url_not_ria(url: str) -> None:
    with pytest.raises(UrlError, match="not a RIA store URL"):
        parse_store_url(url)


def test_url_relative_file_path() -> None:
    with pytest.raises(UrlError, match="needs an absolute path"):
        parse_store_url("ria+file:relative/store")


def test_url_file_with_host() -> None:
    with pytest.raises(UrlError, match=r"names host 'otherhost'.*ria\+ssh://host/abs/path"):
        parse_store_url("ria+file://otherhost/abs/store")


def test_url_ssh_without_host() -> None:
    with pytest.raises(UrlError, match="names no host"):
        parse_store_url("ria+ssh:///abs/store")


def test_url_bad_port() -> None:
    with pytest.raises(UrlError, match="malformed RIA URL"):
        parse_store_url("ria+ssh://host:notaport/abs/store")


def test_url_with_query() -> None:
    with pytest.raises(UrlError, match=r"has a query \('\?x=1'\)"):
        parse_store_url("ria+http://example.org/store?x=1")


# --- dataset URLs -----------------------------------------------------------------------------

def test_dataset_url_with_id() -> None:
    d = parse_dataset_url(f"ria+ssh://me@host:/abs/store#{DSID}")
    assert (d.dataset_id, d.alias, d.version) == (DSID, None, None)
    assert d.store == parse_store_url("ria+ssh://me@host:/abs/store")


def test_dataset_url_with_alias() -> None:
    d = parse_dataset_url("ria+file:///abs/store#~my-data")
    assert (d.dataset_id, d.alias, d.version) == (None, "my-data", None)
    assert d.store.path == "/abs/store"


@pytest.mark.parametrize(("frag", "ident", "alias", "version"), [
    (f"{DSID}@v1.0", DSID, None, "v1.0"),
    ("~my-data@main", None, "my-data", "main"),
    (f"{DSID}@release/2024", DSID, None, "release/2024"),
])
def test_dataset_url_with_version(frag: str, ident: str | None, alias: str | None, version: str) -> None:
    d = parse_dataset_url(f"ria+http://example.org/store#{frag}")
    assert (d.dataset_id, d.alias, d.version) == (ident, alias, version)


@pytest.mark.parametrize("version", ["", "../x", "a b", "v1;rm"])
def test_dataset_url_bad_version(version: str) -> None:
    with pytest.raises(UrlError, match="invalid version"):
        parse_dataset_url(f"ria+file:///abs/store#{DSID}@{version}")


@pytest.mark.parametrize("frag", ["abc", DSID.upper(), f"../{DSID}", f"{DSID}/x", ""])
def test_dataset_url_bad_id(frag: str) -> None:
    with pytest.raises(UnsafePathError, match="invalid dataset id"):
        parse_dataset_url(f"ria+file:///abs/store#{frag}")


@pytest.mark.parametrize("alias", ["../x", "..", "/etc", "a/b", ""])
def test_dataset_url_alias_escaping(alias: str) -> None:
    with pytest.raises(UnsafePathError, match="invalid alias"):
        parse_dataset_url(f"ria+file:///abs/store#~{alias}")


def test_dataset_url_without_fragment() -> None:
    with pytest.raises(UrlError, match=r"names no dataset: append '#<dataset-id>' or '#~<alias>'"):
        parse_dataset_url("ria+file:///abs/store")


def test_dataset_url_store_part_is_checked() -> None:
    with pytest.raises(UrlError, match=r"unsupported scheme 'ria\+ftp'"):
        parse_dataset_url(f"ria+ftp://host/store#{DSID}")


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hook:s3cret@ci.example.org/dss", "https://hook:***@ci.example.org/dss"),
    ("https://TOKEN@ci.example.org/dss", "https://***@ci.example.org/dss"),
    ("s3://AKIAEXAMPLE:secret@bucket/prefix", "s3://AKIAEXAMPLE:***@bucket/prefix"),
    ("https://ci.example.org/a@b", "https://ci.example.org/a@b"),
    ("gs://bucket/prefix", "gs://bucket/prefix"),
])
def test_redact_url_hides_passwords_and_lone_user_names(url: str, shown: str) -> None:
    """One redaction for mirror urls and webhook urls (they had one each)."""
    assert redact_url(url) == shown

"""The mirror list in `dss/config.json`: strict parsing, one-line errors naming the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from annex_double import AnnexDouble

from dss_remote.backends.cloud_common import split_bucket_url
from dss_remote.cli import main
from dss_remote.config.mirrors import check_mirror_url, parse_mirror
from dss_remote.config.store_config import parse_config, read_config
from ria_store.errors import ConfigError


def cfg(**fields: object) -> str:
    return json.dumps({"version": 1, **fields})


def test_mirror_entries_round_trip() -> None:
    c = parse_config(cfg(mirrors=["s3://lab-store/main",
                                  {"url": "gs://lab-store/main/", "name": "gcs", "storage_class": "NEARLINE"},
                                  {"url": "s3://other/x", "endpoint_url": "http://127.0.0.1:9000",
                                   "region": "eu-west-1"}],
                         write_quorum=2), "t")
    assert [m.name for m in c.mirrors] == ["s3-lab-store", "gcs", "s3-other"]
    assert c.mirrors[1].url == "gs://lab-store/main"  # normalised
    assert c.quorum == 2
    assert parse_config(c.dumps(), "t") == c


def test_mirror_url_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        check_mirror_url("ftp://host/store")
    msg = str(err.value)
    assert "unknown scheme ftp:" in msg and "s3://" in msg and "gs://" in msg and "\n" not in msg


def test_mirror_url_carrying_credentials_is_refused() -> None:
    with pytest.raises(ConfigError, match="must not carry credentials"):
        check_mirror_url("s3://AKIA:secret@bucket/prefix")


def test_mirror_url_bad_bucket_and_traversal() -> None:
    with pytest.raises(ConfigError, match="not a valid bucket name"):
        check_mirror_url("s3://B_/x")
    with pytest.raises(ConfigError, match="unsafe prefix"):
        check_mirror_url("gs://bucket/a/../b")


@pytest.mark.parametrize("url", ["s3://bucket/a/../b", "gs://bucket/../x", "s3://bucket/a//b"])
def test_bucket_backend_refuses_an_unsafe_prefix(url: str) -> None:
    # a backend made from a url directly (not through the store config) checks it the same way
    scheme = url.partition(":")[0]
    with pytest.raises(ConfigError, match=f"unsafe prefix; use {scheme}://bucket/a/b"):
        split_bucket_url(url, scheme)


def test_store_config_unknown_field_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown field\(s\) 'mirors'.*remove them or upgrade"):
        parse_config(cfg(mirors=[]), "dss/config.json")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) 'bucket'"):
        parse_mirror({"url": "s3://abc/x", "bucket": "abc"}, "m")


def test_store_config_credentials_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(cfg(mirrors=[{"url": "s3://abc/x", "aws_secret_access_key": "x"}]), "dss/config.json")
    assert "looks like a credential" in str(err.value) and "AWS_PROFILE" in str(err.value)


def test_store_config_quorum_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r'write_quorum 3 must be "all" or a number from 1 to 2'):
        parse_config(cfg(mirrors=["s3://abc/x"], write_quorum=3), "t")
    with pytest.raises(ConfigError, match="write_quorum 'most'"):
        parse_config(cfg(write_quorum="most"), "t")


def test_store_config_duplicate_mirror_names() -> None:
    with pytest.raises(ConfigError, match="two mirrors share the name 'x'"):
        parse_config(cfg(mirrors=[{"url": "s3://abc/1", "name": "x"},
                                  {"url": "s3://abc/2", "name": "x"}]), "t")


def test_store_config_not_json_fails_prepare_naming_the_file(annex: AnnexDouble, store: Path) -> None:
    (store / "dss" / "config.json").write_text('{"version": 1, "mirrors": [}')
    prepare, = annex.converse(["PREPARE"])
    assert prepare.startswith("PREPARE-FAILURE ") and "dss/config.json is not valid JSON" in prepare


def test_store_config_unknown_mirror_scheme_fails_prepare(annex: AnnexDouble, store: Path) -> None:
    (store / "dss" / "config.json").write_text(cfg(mirrors=["azure://x/y"]))
    prepare, = annex.converse(["PREPARE"])
    assert prepare.startswith("PREPARE-FAILURE ") and "unknown scheme azure:" in prepare


def test_cli_mirror_add_unknown_scheme(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (store / "dss" / "config.json").read_text()
    assert main(["mirror", "add", str(store), "webdav://host/x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dss: error: mirror: mirror url 'webdav://host/x' has unknown scheme")
    assert (store / "dss" / "config.json").read_text() == before
    assert read_config(store).mirrors == ()


def test_http_mirror_is_read_only_and_outside_the_quorum() -> None:
    c = parse_config(cfg(mirrors=["s3://abc/x", "https://data.example.org/store/"]), "t")
    s3, web = c.mirrors
    assert (s3.writable, web.writable, web.read_only, web.url) == (
        True, False, True, "https://data.example.org/store")
    assert (c.writable_replicas, c.quorum) == (2, 2)
    assert web.to_json() == {"url": "https://data.example.org/store", "name": "https-data.example.org"}
    with pytest.raises(ConfigError, match=r'write_quorum 3 must be "all" or a number from 1 to 2 '
                                          r"\(the store plus its writable mirrors\)"):
        parse_config(cfg(mirrors=["s3://abc/x", "https://data.example.org/store"], write_quorum=3), "t")


def test_read_only_flag_on_a_writable_scheme_round_trips() -> None:
    c = parse_config(cfg(mirrors=[{"url": "file:///mnt/ro-copy", "read_only": True}]), "t")
    assert (c.mirrors[0].writable, c.writable_replicas, c.quorum) == (False, 1, 1)
    assert c.mirrors[0].to_json()["read_only"] is True
    assert parse_config(c.dumps(), "t") == c


def test_http_mirror_marked_writable_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_mirror({"url": "http://host/store", "read_only": False}, "m")
    assert str(err.value) == ('m: http:// mirrors are read-only (HTTP has no writes); remove '
                              '"read_only": false, or use an s3://, gs://, sftp:// or file:// url')


def test_read_only_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="'read_only' must be true or false"):
        parse_mirror({"url": "s3://abc/x", "read_only": "yes"}, "m")


def test_bucket_settings_on_http_or_sftp_mirrors_are_refused() -> None:
    for url in ("http://host/store", "sftp://host/store"):
        with pytest.raises(ConfigError, match=r"endpoint_url, region only apply to s3:// and gs://"):
            parse_mirror({"url": url, "endpoint_url": "http://127.0.0.1:9000", "region": "x"}, "m")


@pytest.mark.parametrize(("url", "why"), [
    ("http://user:pw@host/store", "must not carry credentials"),
    ("https:///store", "names no host"),
    ("http://host:port/store", "invalid port"),
    ("sftp://host", "names no directory"),
    ("sftp://u:pw@host/store", "carries a password"),
])
def test_http_and_sftp_urls_bad_input(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as err:
        check_mirror_url(url)
    assert "pw" not in str(err.value), "a secret must never be echoed"


def test_sftp_url_keeps_its_user_and_port() -> None:
    assert check_mirror_url("sftp://dss@hpc.example.org:2222/data/store/") == \
        "sftp://dss@hpc.example.org:2222/data/store"
    assert parse_mirror("sftp://dss@hpc.example.org:2222/data/store", "m").name == \
        "sftp-dss-hpc.example.org-2222"


def test_cli_mirror_add_read_only_file_mirror(store: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "ria-layout-version").write_text("1\n")
    assert main(["mirror", "add", str(store), f"file://{copy}", "--read-only", "--name", "ro"]) == 0
    assert capsys.readouterr().out.startswith("added read-only mirror ro:")
    assert sorted(p.name for p in copy.iterdir()) == ["ria-layout-version"], "nothing written to it"
    assert main(["mirror", "list", str(store)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ro\tfile://{copy}\tread-only",
                                                    "write_quorum: all of 1 writable replicas"]

"""End to end: real git-annex/DataLad reading a store's copy served by http.server as a read-only mirror,
over plain HTTP and over TLS (a certificate from a throwaway trustme CA)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SAMPLE, annex_keys, require_tool, run, write_files
from file_servers import TLSCA, HttpServer, serve_http
from leftover_processes import wait_for_detached

from dss_remote.admin.sibling import Sibling
from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from ria_store.layout import dataset_relpath, object_relpath


@dataclass
class WebMirror:
    store: Path
    ds: Path
    sib: Sibling
    served: Path  # the copy of the store the web server serves
    server: HttpServer

    def rel(self, key: str) -> str:
        return f"{dataset_relpath(self.sib.dataset_id)}/{object_relpath(key, '2')}"

    def drop_local(self) -> None:
        run("git", "annex", "drop", "--force", ".", cwd=self.ds)

    def drop_store_objects(self) -> None:
        shutil.rmtree(self.store / dataset_relpath(self.sib.dataset_id) / "annex" / "objects")


@pytest.fixture
def web(store: Path, dataset: Path, published: Sibling, tmp_path: Path) -> Iterator[WebMirror]:
    """`dataset` published to `store`; a copy of the store served over HTTP, added as mirror "web"."""
    require_tool("git-annex-remote-dss")
    www = tmp_path / "www"
    www.mkdir()
    shutil.copytree(store, www / "store", symlinks=True)
    with serve_http(www) as server:
        add_mirror(store, Mirror(url=f"{server.url}/store", name="web", read_only=True))
        yield WebMirror(store, dataset, published, www / "store", server)


@pytest.fixture
def tls_web(store: Path, dataset: Path, published: Sibling, tmp_path: Path, *, tls_ca: TLSCA,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[WebMirror]:
    """As `web`, served over https with a certificate from `tls_ca`; the store and the clone have
    lost their copies, so every key must come from the https mirror. Nothing trusts the CA
    afterwards: each test sets the trust it means."""
    require_tool("git-annex-remote-dss")
    www = tmp_path / "www"
    www.mkdir()
    shutil.copytree(store, www / "store", symlinks=True)
    with serve_http(www, tls_ca.server_context()) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_ca.bundle))  # `mirror add` reads it once
        add_mirror(store, Mirror(url=f"{server.url}/store", name="web", read_only=True))
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        mirror = WebMirror(store, dataset, published, www / "store", server)
        mirror.drop_local()
        mirror.drop_store_objects()
        yield mirror


def assert_content(ds: Path) -> None:
    for rel, data in SAMPLE.items():
        assert (ds / rel).read_bytes() == data


def test_get_reads_the_http_mirror_when_the_store_lost_its_objects(web: WebMirror) -> None:
    web.drop_local()
    web.drop_store_objects()
    run("git", "annex", "get", ".", cwd=web.ds)
    assert_content(web.ds)


def test_node_without_the_posix_store_reads_the_http_mirror(web: WebMirror, tmp_path: Path) -> None:
    web.drop_local()
    run("git", "annex", "get", "small.txt", cwd=web.ds)  # caches the store's config in the clone
    web.drop_local()
    wait_for_detached()  # a push's detached `dss sync` would recreate the store's dss/
    os.rename(web.store, tmp_path / "unmounted")
    try:
        run("git", "annex", "get", ".", cwd=web.ds)
        assert_content(web.ds)
    finally:
        os.rename(tmp_path / "unmounted", web.store)


def test_copy_writes_the_store_only_and_the_quorum_ignores_the_http_mirror(web: WebMirror) -> None:
    assert read_config(web.store).quorum == 1
    write_files(web.ds, {"new.bin": os.urandom(200_000)})
    run("datalad", "-l", "error", "save", "-m", "new", cwd=web.ds)
    key = annex_keys(web.ds)["new.bin"]
    before = sorted(p for p in web.served.rglob("*"))
    run("git", "annex", "copy", "--to", "store-storage", "new.bin", cwd=web.ds)
    assert (web.store / web.rel(key)).is_file()
    assert sorted(p for p in web.served.rglob("*")) == before, "nothing was written to the web copy"
    assert not (web.store / "dss" / "repair-queue").exists(), "a read-only mirror is not a missed write"
    res = run("git", "annex", "checkpresentkey", key, "store-storage", cwd=web.ds, check=False)
    assert res.returncode == 0, "present: the one writable replica holds it"


def test_get_fails_naming_the_store_and_the_unreachable_http_mirror(web: WebMirror) -> None:
    web.drop_local()
    web.drop_store_objects()
    port = web.server.port
    web.server.stop()
    res = run("git", "annex", "get", "small.txt", cwd=web.ds, check=False)
    assert res.returncode != 0
    err = res.stdout + res.stderr
    assert "[store]" in err and f"[web] replica http://127.0.0.1:{port}/store: cannot reach" in err


def test_fsck_checks_the_http_mirror_key_by_key_and_repair_leaves_it_alone(web: WebMirror) -> None:
    res = run("dss", "fsck", web.store, "--json")
    assert json.loads(res.stdout)["findings"] == []
    key = annex_keys(web.ds)["dir/data.bin"]
    (web.served / web.rel(key)).unlink()
    res = run("dss", "fsck", web.store, "--json", check=False)
    findings = json.loads(res.stdout)["findings"]
    assert res.returncode == 1
    assert [(f["kind"], f["replica"], f["key"]) for f in findings] == [("missing", "web", key)]
    res = run("dss", "repair", web.store, check=False)
    assert res.returncode == 1
    assert f"web: {key} (missing): a read-only mirror, which dss never writes" in res.stdout + res.stderr
    assert not (web.served / web.rel(key)).exists()
    res = run("dss", "sync", web.store)  # the read-only mirror is no sync target: nothing to do
    assert "web" not in res.stdout


def test_mirror_add_of_a_url_that_serves_no_store_is_refused(store: Path, http_server: HttpServer) -> None:
    before = (store / "dss" / "config.json").read_text()
    res = run("dss", "mirror", "add", store, f"{http_server.url}/nothing", check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"dss: error: mirror http-127.0.0.1-{http_server.port} ({http_server.url}/nothing) serves no "
        "ria-layout-version; point the url at a copy of the store's root directory (dss only reads a "
        "read-only mirror)")
    assert (store / "dss" / "config.json").read_text() == before


def test_mirror_add_and_list_show_an_http_mirror_as_read_only(store: Path, http_server: HttpServer) -> None:
    shutil.copytree(store, http_server.root / "store")
    res = run("dss", "mirror", "add", store, f"{http_server.url}/store", "--name", "web")
    assert res.stdout.startswith("added read-only mirror web:")
    res = run("dss", "mirror", "list", store)
    assert res.stdout.splitlines() == [f"web\t{http_server.url}/store\tread-only",
                                       "write_quorum: all of 1 writable replicas"]
    assert read_config(store).mirrors == (Mirror(url=f"{http_server.url}/store", name="web", read_only=True),)


def annex_tmp_files(ds: Path) -> dict[str, int]:
    tmp = ds / ".git" / "annex" / "tmp"
    return {p.name: p.stat().st_size for p in tmp.rglob("*") if p.is_file()} if tmp.is_dir() else {}


@pytest.mark.parametrize("var", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_get_reads_an_https_mirror_whose_ca_a_variable_names(var: str, tls_web: WebMirror, tls_ca: TLSCA,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(var, str(tls_ca.bundle))  # git-annex and our remote inherit it
    run("git", "annex", "get", ".", cwd=tls_web.ds)
    assert_content(tls_web.ds)


def test_get_from_an_https_mirror_with_an_untrusted_certificate_fails_naming_the_fix(
        tls_web: WebMirror) -> None:
    url = f"{tls_web.server.url}/store"
    res = run("git", "annex", "get", "small.txt", cwd=tls_web.ds, check=False)
    assert res.returncode != 0
    err = res.stdout + res.stderr
    line = next((ln for ln in err.splitlines() if "[web]" in ln), err)
    assert "[store]" in line and "is not in dataset" in line, line
    assert (f"[web] replica {url}: certificate verify failed (unable to get local issuer certificate; "
            "trusted: the system CAs); set REQUESTS_CA_BUNDLE or SSL_CERT_FILE to a PEM file of the CA "
            "that signed the mirror's certificate") in line, line
    assert not (tls_web.ds / "small.txt").exists()  # a dangling symlink: no content
    assert annex_tmp_files(tls_web.ds) == {}, "nothing partial"

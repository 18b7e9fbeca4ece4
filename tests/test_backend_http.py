"""Read-only http(s) mirrors against a real web server (http.server on 127.0.0.1): the read half of
the backend contract, writes refused, and each network failure as its own one-line error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from backend_contract import ReadContract, fetch, write_source
from cloud_servers import silent_listener
from conftest import write_files
from file_servers import HttpServer, refused_port

from dss_remote.backends.base import Backend
from dss_remote.backends.http import HttpBackend
from dss_remote.config.mirrors import parse_mirror
from dss_remote.replication.store_replicas import mirror_backend
from ria_store.errors import AccessError, NotFoundError, UnavailableError, WriteError


class TestHttpBackend(ReadContract):
    """The contract's reads; objects are placed in the served directory, as a copy of a store is."""

    served: Path

    @pytest.fixture
    def backend(self, http_server: HttpServer) -> HttpBackend:
        self.served = http_server.root / "store"
        self.served.mkdir()
        return HttpBackend(f"{http_server.url}/store")

    def populate(self, backend: Backend, tmp_path: Path, objects: dict[str, bytes]) -> None:
        write_files(self.served, objects)


@pytest.fixture
def served(http_server: HttpServer) -> tuple[HttpBackend, Path]:
    """A backend on `<server>/store` holding one object, and the directory served there."""
    root = http_server.root / "store"
    write_files(root, {"ab/KEY": b"content"})
    return HttpBackend(f"{http_server.url}/store"), root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_read_only_refusal(err: WriteError, url: str) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(f"replica {url} is a read-only mirror; write to the store")
    assert "s3://" in msg


def test_put_file_is_refused_and_sends_nothing(served: tuple[HttpBackend, Path], tmp_path: Path) -> None:
    backend, root = served
    before = _files(root)
    with pytest.raises(WriteError) as err:
        backend.put_file(write_source(tmp_path, b"new"), "ab/NEW")
    _assert_read_only_refusal(err.value, backend.url)
    assert _files(root) == before


def test_write_bytes_is_refused_and_sends_nothing(served: tuple[HttpBackend, Path]) -> None:
    backend, root = served
    before = _files(root)
    with pytest.raises(WriteError) as err:
        backend.write_bytes("dss/config.json", b"{}")
    _assert_read_only_refusal(err.value, backend.url)
    assert _files(root) == before


def test_remove_is_refused_and_the_object_stays(served: tuple[HttpBackend, Path]) -> None:
    backend, root = served
    with pytest.raises(WriteError) as err:
        backend.remove("ab/KEY")
    _assert_read_only_refusal(err.value, backend.url)
    assert (root / "ab" / "KEY").read_bytes() == b"content"


def test_writes_are_refused_without_a_server() -> None:
    """The refusal comes before any connection: a read-only mirror is never contacted to write."""
    backend = HttpBackend(f"https://127.0.0.1:{refused_port()}/store")
    with pytest.raises(WriteError, match="is a read-only mirror"):
        backend.write_bytes("x", b"x")


def test_iter_objects_says_http_cannot_list(served: tuple[HttpBackend, Path]) -> None:
    backend, _ = served
    with pytest.raises(UnavailableError) as err:
        list(backend.iter_objects("ab"))
    msg = str(err.value)
    assert msg == (f"replica {backend.url}: plain HTTP cannot list objects; `dss fsck` checks an http "
                   "mirror key by key against the keys the store and the other mirrors list")
    assert (backend.writable, backend.listable, backend.keeps_checksums) == (False, False, False)


@pytest.mark.parametrize("op", ["info", "get_file", "read_bytes"])
def test_connection_refused_is_unavailable_not_absent(op: str, tmp_path: Path) -> None:
    port = refused_port()
    backend = HttpBackend(f"http://127.0.0.1:{port}/store")
    with pytest.raises(UnavailableError) as err:
        if op == "info":
            backend.info("ab/KEY")
        elif op == "get_file":
            fetch(backend, "ab/KEY", tmp_path)
        else:
            backend.read_bytes("ab/KEY")
    assert not isinstance(err.value, NotFoundError)
    msg = str(err.value)
    assert msg.startswith(f"replica http://127.0.0.1:{port}/store: cannot reach 127.0.0.1:{port} (")
    assert msg.endswith("; check the network or the mirror's endpoint url") and "\n" not in msg


@pytest.mark.parametrize("op", ["info", "get_file"])
def test_forbidden_is_an_access_error_naming_netrc(served: tuple[HttpBackend, Path],
                                                   http_server: HttpServer, op: str, tmp_path: Path) -> None:
    backend, _ = served
    http_server.force(403)
    with pytest.raises(AccessError) as err:
        backend.info("ab/KEY") if op == "info" else fetch(backend, "ab/KEY", tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"replica {backend.url}: access denied (HTTP 403")
    assert "anonymous reads" in msg and "~/.netrc" in msg


def test_server_error_is_unavailable_not_absent(served: tuple[HttpBackend, Path],
                                                http_server: HttpServer) -> None:
    backend, _ = served
    http_server.force(500)
    with pytest.raises(UnavailableError) as err:
        backend.info("ab/KEY")
    assert not isinstance(err.value, NotFoundError)
    assert str(err.value) == (f"replica {backend.url}: the service failed on read of ab/KEY (HTTP 500); "
                              "retry later")


def test_silent_server_times_out_in_bounded_time(tmp_path: Path) -> None:
    with silent_listener() as endpoint:
        backend = HttpBackend(f"{endpoint}/store", connect_timeout=0.5, read_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(UnavailableError, match=r"cannot reach 127\.0\.0\.1:\d+ \("):
            backend.info("ab/KEY")
        with pytest.raises(UnavailableError, match="cannot reach"):
            fetch(backend, "ab/KEY", tmp_path)
        assert time.monotonic() - start < 10


def test_get_file_streams_a_large_object_with_progress(http_server: HttpServer, tmp_path: Path) -> None:
    data = os.urandom(9 << 20)
    write_files(http_server.root, {"big/KEY": data})
    backend = HttpBackend(http_server.url)
    calls: list[int] = []
    assert fetch(backend, "big/KEY", tmp_path, calls.append) == (len(data), data)
    assert calls[-1] == len(data) and len(calls) >= 9 and calls == sorted(calls)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_http_mirrors_come_out_read_only(scheme: str) -> None:
    mirror = parse_mirror(f"{scheme}://mirror.example.invalid/store/", "m")
    assert (mirror.url, mirror.read_only, mirror.writable) == (
        f"{scheme}://mirror.example.invalid/store", True, False)
    assert mirror.to_json() == {"url": mirror.url, "name": f"{scheme}-mirror.example.invalid"}
    backend = mirror_backend(mirror)
    assert isinstance(backend, HttpBackend)
    assert (backend.kind, backend.writable, backend.listable) == (scheme, False, False)


def test_read_range_on_a_server_without_range_support_names_the_fix(
        http_server: HttpServer, served: tuple[HttpBackend, Path]) -> None:
    """`python -m http.server` answers a ranged GET with the whole file: refused, never sliced
    from a download of a whole archive."""
    backend, _ = served
    http_server.handler.ranges = False
    with pytest.raises(UnavailableError) as ei:
        backend.read_range("ab/KEY", 1, 3)
    assert str(ei.value) == (f"replica {http_server.url}/store: the server ignored the byte range asked "
                             "for ab/KEY; serve the mirror from a server that supports Range requests")

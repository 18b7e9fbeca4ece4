"""pytest plugin: an HTTP server (http.server, plain or over TLS with a throwaway CA from trustme) and
an SFTP server (asyncssh) on free 127.0.0.1 ports, each serving a fresh directory of its test, in a
thread of the test process."""

from __future__ import annotations

import contextlib
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files like `python -m http.server`; logs nothing; answers `status` when set."""

    status: int | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    #: answer `Range: bytes=a-b` with 206, as nginx, Apache and bucket endpoints do
    #: (`python -m http.server` sends the whole file; tests of that set this False)
    ranges: bool = True

    def send_head(self) -> Any:
        forced = type(self).status
        if forced is not None:
            self.send_error(forced)
            return None
        return super().send_head()

    def do_GET(self) -> None:
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if m is None or not type(self).ranges or type(self).status is not None or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start:end + 1])


@dataclass
class HttpServer:
    """`python -m http.server` over `root`, in a thread; `force(status)` makes every answer that."""

    root: Path
    server: ThreadingHTTPServer
    handler: type[_QuietHandler]
    scheme: str = "http"
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"http-{self.port}", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    def force(self, status: int | None) -> None:
        self.handler.status = status

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextlib.contextmanager
def serve_http(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[HttpServer]:
    """Serve `root` over http, or https with the server context `tls` (TLSCA.server_context)."""
    handler = type("Handler", (_QuietHandler,), {"status": None})
    server = ThreadingHTTPServer((HOST, 0), partial(handler, directory=str(root)))
    server.daemon_threads = True
    if tls is not None:
        # the handshake runs in accept(); one that fails (a client that does not trust us) raises
        # an OSError there, which socketserver drops: the server goes on serving
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    running = HttpServer(root, server, handler, "https" if tls is not None else "http")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpServer]:
    """A web server over this test's empty directory `tmp_path/www`."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_http(root) as server:
        yield server


#: the variables that tell a TLS client which CAs to trust (dss reads the first two, OpenSSL the others)
CA_ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE")


@dataclass(frozen=True)
class TLSCA:
    """A throwaway certificate authority (trustme) and its certificate as a PEM file, which a
    test names in REQUESTS_CA_BUNDLE or SSL_CERT_FILE to trust it."""

    ca: Any  # trustme.CA
    bundle: Path

    def server_context(self, *hosts: str) -> ssl.SSLContext:
        """A server-side context with a certificate this CA issued for `hosts` (default 127.0.0.1)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*(hosts or (HOST,))).configure_cert(context)
        return context


def new_ca(where: Path) -> TLSCA:
    try:
        import trustme
    except ImportError:
        pytest.fail("trustme is not installed; the https tests need it (pip install -e '.[test]')")
    ca = trustme.CA()
    where.mkdir(parents=True, exist_ok=True)
    bundle = where / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return TLSCA(ca, bundle)


@pytest.fixture
def tls_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TLSCA:
    """A fresh CA that nothing trusts yet: every CA variable is cleared, so a test sets the trust
    it means (the developer's own bundle never leaks in)."""
    for name in CA_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return new_ca(tmp_path / "ca")


@pytest.fixture
def https_server(tmp_path: Path, tls_ca: TLSCA) -> Iterator[HttpServer]:
    """A web server over TLS (a certificate for 127.0.0.1 from `tls_ca`) over the empty `tmp_path/www`."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_http(root, tls_ca.server_context()) as server:
        yield server


def refused_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class SftpServer:
    """An SFTP-only server (asyncssh; no shell, no exec) on 127.0.0.1, chrooted to `root`, that
    accepts the public keys in `authorized` for any user name. Its loop runs in a thread."""

    root: Path
    host_key: Any  # asyncssh.SSHKey
    authorized: list[Any]
    port: int = 0
    _loop: Any = None
    _thread: threading.Thread | None = None
    _acceptor: Any = None
    _conns: list[Any] = field(default_factory=list)

    def start(self) -> SftpServer:
        import asyncio

        import asyncssh

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sftp-server", daemon=True)
        self._thread.start()
        keys = asyncssh.import_authorized_keys(
            "".join(k.export_public_key().decode() for k in self.authorized))
        root = str(self.root).encode()
        conns = self._conns

        class Tracked(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                conns.append(conn)

        async def listen() -> Any:
            return await asyncssh.listen(
                HOST, self.port, server_host_keys=[self.host_key], authorized_client_keys=keys,
                server_factory=Tracked, allow_scp=False, password_auth=False, kbdint_auth=False,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root))

        self._acceptor = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)
        self.port = int(self._acceptor.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        import asyncio

        if self._acceptor is not None:
            acceptor, self._acceptor = self._acceptor, None

            async def close() -> None:  # on the loop's own thread: asyncio's Server is not thread-safe
                acceptor.close()
                await acceptor.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            conns, self._conns[:] = list(self._conns), []

            async def drop() -> None:  # as a killed server would: every client sees its connection end
                for conn in conns:
                    conn.abort()
                await asyncio.sleep(0.05)  # lets the loop close the sockets before it stops

            asyncio.run_coroutine_threadsafe(drop(), self._loop).result(10)
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._thread = None

    def known_hosts_line(self) -> str:
        return f"[{HOST}]:{self.port} {self.host_key.export_public_key().decode().strip()}\n"

    def url(self, path: str = "/store", user: str = "dss") -> str:
        return f"sftp://{user}@{HOST}:{self.port}{path}"


@dataclass(frozen=True)
class SshClient:
    """The test user's ssh setup in the isolated HOME: a key in ~/.ssh and the server in known_hosts."""

    home: Path
    key: Any  # asyncssh.SSHKey

    @property
    def ssh_dir(self) -> Path:
        return self.home / ".ssh"


def ssh_key() -> Any:
    try:
        import asyncssh
    except ImportError:
        pytest.fail("asyncssh is not installed; the SFTP tests need it (pip install -e '.[test]')")
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def sftp_server(tmp_path: Path, isolated_env: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SftpServer, SshClient]]:
    """A fresh SFTP server over `tmp_path/sftp-root` that trusts a fresh client key; the key is in
    the test's ~/.ssh/id_ed25519 and the server's host key in ~/.ssh/known_hosts, as `ssh` has them."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # never the developer's agent
    monkeypatch.delenv("DSS_SSH_KEY", raising=False)
    root = tmp_path / "sftp-root"
    (root / "store").mkdir(parents=True)
    client_key = ssh_key()
    server = SftpServer(root, ssh_key(), [client_key]).start()
    ssh_dir = isolated_env / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    client_key.write_private_key(str(ssh_dir / "id_ed25519"))
    (ssh_dir / "id_ed25519").chmod(0o600)
    (ssh_dir / "known_hosts").write_text(server.known_hosts_line())
    try:
        yield server, SshClient(isolated_env, client_key)
    finally:
        server.stop()

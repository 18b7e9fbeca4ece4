"""Read-only mirrors over plain HTTP(S): a store's tree served by any web server or public bucket.

Reads go through fsspec's HTTP file system (aiohttp): its session, event loop and streamed
files; `info` is one HEAD, `get_file` one streamed GET. Plain HTTP has no listing and no
writes, so `iter_objects` and every write say so in one line. Proxies (`HTTPS_PROXY`,
`NO_PROXY`) and credentials (`~/.netrc`) come from the environment as curl would take them;
the store config never holds any.

https: the server's certificate is verified against the CAs the environment names, read when the
mirror is first used (`tls.trust_from_env`). REQUESTS_CA_BUNDLE wins when it is set (only the
CAs in it are trusted, as `requests` does); else SSL_CERT_FILE (OpenSSL's own variable: it
replaces the system's bundle; SSL_CERT_DIR adds a directory); else the system's CAs. A
certificate that fails verification is an UnavailableError naming the mirror, the cause and
those variables.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from ria_store.errors import AccessError, DssError, NotFoundError, UnavailableError, one_line

from .base import ObjectInfo, check_relpath
from .cloud_common import op_failed, service_failed, unreachable
from .fsspec_backend import FsspecBackend
from .tls import TRUST_HINT, Trust, trust_from_env

logger = logging.getLogger(__name__)

#: seconds to open a connection, and to wait for the next bytes of an answer: bounded, never a hang
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_ABSENT = (404, 410)
_DENIED = (401, 403)


async def _client_with_tls(context: ssl.SSLContext, **kwargs: Any) -> Any:
    """fsspec's `get_client`: its aiohttp session, verifying servers with `context`. Made in
    the file system's event loop, where aiohttp wants its connector made."""
    import aiohttp  # noqa: PLC0415

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), **kwargs)


class HttpBackend(FsspecBackend):
    """Objects are `<url>/<relpath>` on a web server; read-only, not listable."""

    writable = False
    listable = False

    def __init__(self, url: str, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT) -> None:
        super().__init__(url)
        parts = urlsplit(self.url)
        self._endpoint = parts.netloc
        self._timeouts = (connect_timeout, read_timeout)
        self._trust: Trust | None = None  # https only, set when the file system is opened

    def _open_fs(self) -> tuple[Any, str]:
        import aiohttp  # noqa: PLC0415 - only for http mirrors
        from fsspec.implementations.http import HTTPFileSystem  # noqa: PLC0415

        connect, read = self._timeouts
        timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)
        options: dict[str, Any] = {}
        if self.kind == "https":
            # aiohttp's default context reads the CA paths once, at its import, and never
            # REQUESTS_CA_BUNDLE: hand it the one the environment names now
            self._trust = trust_from_env()
            options["get_client"] = functools.partial(_client_with_tls, self._trust.context)
        # encoded=True: _path quotes each name itself, so a key's `&`, `,` or `%` reach the server as
        # they are in the store. skip_instance_cache: our timeouts are not part of fsspec's cache key.
        fs = HTTPFileSystem(encoded=True, block_size=0, skip_instance_cache=True,
                            client_kwargs={"timeout": timeout, "trust_env": True}, **options)
        return fs, self.url

    def _path(self, relpath: str) -> str:
        check_relpath(relpath)
        return super()._path(quote(relpath, safe="/"))

    def _transport_error(self, e: Exception, relpath: str, writing: bool) -> DssError | None:
        import asyncio  # noqa: PLC0415

        import aiohttp  # noqa: PLC0415
        from fsspec.exceptions import FSTimeoutError  # noqa: PLC0415

        if isinstance(e, aiohttp.ClientResponseError):
            return self._status_error(e.status, relpath, f"HTTP {e.status} {e.message}".strip())
        if isinstance(e, aiohttp.ClientConnectorCertificateError):
            cert_error = e.certificate_error
            cause = getattr(cert_error, "verify_message", None) or one_line(cert_error)
            trusted = self._trust.describe() if self._trust is not None else "the system CAs"
            return UnavailableError(f"replica {self.url}: certificate verify failed ({cause}; trusted: "
                                    f"{trusted}); {TRUST_HINT}")
        if isinstance(e, aiohttp.ClientSSLError):
            return UnavailableError(f"replica {self.url}: TLS with {self._endpoint} failed ({one_line(e)}); "
                                    "check that the server speaks https on that port")
        if isinstance(e, (aiohttp.ClientConnectionError, asyncio.TimeoutError, FSTimeoutError,
                          aiohttp.ClientPayloadError)):
            return unreachable(self.url, self._endpoint, e)
        return None

    def _status_error(self, status: int, relpath: str, detail: str) -> DssError:
        what = f" of {relpath}" if relpath else ""
        if status in _ABSENT:
            return NotFoundError(f"replica {self.url}: {relpath} not found")
        if status in _DENIED:
            return AccessError(f"replica {self.url}: access denied ({detail}); the server must allow "
                               "anonymous reads, or put this host's credentials in ~/.netrc")
        if status >= 500:
            return service_failed(self.url, "read", what, detail)
        return op_failed(self.url, "read", what, detail)

    def info(self, relpath: str) -> ObjectInfo | None:
        """One HEAD. fsspec's own `info` answers "absent" for any failure (it retries with a GET and
        raises FileNotFoundError from whatever went wrong), which would turn an outage into "absent"."""
        from fsspec.asyn import sync  # noqa: PLC0415

        url = self._path(relpath)
        fs = self._fs()
        try:
            status, length = sync(fs.loop, self._head, fs, url)
        except Exception as e:
            raise self._error(e, relpath) from e
        if status in _ABSENT:
            return None
        if status >= 300:
            raise self._status_error(status, relpath, f"HTTP {status}")
        if length is None or not length.isdigit():
            raise UnavailableError(f"replica {self.url}: {relpath}: the server sent no Content-Length; "
                                   "serve the store's files as static files (no on-the-fly compression)")
        return ObjectInfo(relpath, int(length))

    @staticmethod
    async def _head(fs: Any, url: str) -> tuple[int, str | None]:
        import yarl  # noqa: PLC0415 - aiohttp's URL type

        session = await fs.set_session()
        async with session.head(yarl.URL(url, encoded=True), allow_redirects=True,
                                headers={"Accept-Encoding": "identity"}) as r:
            return int(r.status), r.headers.get("Content-Length")

    def read_range(self, relpath: str, start: int, length: int) -> bytes:
        """A ranged GET; 416 (the range starts at or past the end of an existing object) is the
        empty read that `os.pread` gives there."""
        try:
            return super().read_range(relpath, start, length)
        except UnavailableError as e:
            if getattr(e.__cause__, "status", None) == 416:
                return b""
            raise

    def _open_for_read(self, path: str) -> Any:
        """One GET, streamed: no range requests (Python's http.server has none), and no HEAD
        first (`fs.open` makes one, and maps its failures to FileNotFoundError)."""
        from fsspec.asyn import sync  # noqa: PLC0415
        from fsspec.implementations.http import HTTPStreamFile  # noqa: PLC0415

        fs = self._fs()
        session = sync(fs.loop, fs.set_session)
        return HTTPStreamFile(fs, path, mode="rb", loop=fs.loop, session=session)

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        self._path(prefix)  # refuses unsafe paths first
        raise UnavailableError(
            f"replica {self.url}: plain HTTP cannot list objects; `dss fsck` checks an http mirror "
            "key by key against the keys the store and the other mirrors list")

"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that checks signatures and records.

It verifies `X-DSS-Signature-256` itself (plain `hmac`, not our code), answers 401 to a bad
signature and `status` otherwise, and records every request it got. With `hold` set, a request
waits in the handler until the test sets `release` (to kill a deliverer mid-request).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """A receiver's check, as docs/design-notes.md shows it."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    signed_ok: bool
    answered: int

    @property
    def delivery_id(self) -> str:
        return self.headers.get("X-DSS-Delivery", "")

    @property
    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


class Receiver:
    """Start with `start()`; `url` is where to subscribe; `stop()` frees the port."""

    def __init__(self, secret: str, port: int = 0) -> None:
        self.secret = secret
        self.status = 200
        self.hold = False
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.requests: list[Received] = []
        self._mutex = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = signature_ok(receiver.secret, body, self.headers.get("X-DSS-Signature-256"))
                status = receiver.status if ok else 401
                with receiver._mutex:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, ok,
                                                      status))
                    hold = receiver.hold
                receiver.arrived.set()
                if hold:
                    receiver.release.wait(120)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok" if 200 <= status < 300 else b"no")
                except OSError:
                    pass  # the deliverer was killed while we held its request

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._port = self.port
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        with self._mutex:
            return [r for r in self.requests if r.signed_ok and 200 <= r.answered < 300]

    def unique_accepted(self) -> dict[str, Received]:
        """Accepted requests deduplicated by X-DSS-Delivery, as a receiver should."""
        return {r.delivery_id: r for r in self.accepted()}

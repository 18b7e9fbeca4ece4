"""A JWT issuer for tests: RS256 and ES256 keys made by `cryptography`, their JWKS, signed tokens,
and a JWKS endpoint (http.server on a free 127.0.0.1 port, in a thread, stopped at block end)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISS = "https://login.example.org/"
AUD = "https://dss.example.org"


@dataclass
class Key:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algo = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        doc: dict[str, Any] = json.loads(algo.to_jwk(self.private.public_key()))
        return doc | {"kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return bytes(self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def rsa_key(kid: str = "rsa-1") -> Key:
    return Key(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str = "ec-1") -> Key:
    return Key(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "auth0|42", "email": "ada@example.org",
                            "groups": ["lab"], "iat": now, "exp": now + 600}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Key, headers: dict[str, Any] | None = None, **over: Any) -> str:
    return jwt.encode(claims(**over), key.private, algorithm=key.alg,
                      headers={"kid": key.kid} | (headers or {}))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None = None) -> str:
    """A token made by hand: `alg: none` (empty signature), or HS256 with `secret` as the HMAC key
    (what an attacker does with an RS256 issuer's public key: PyJWT refuses to make one)."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    if secret is None:
        return head + "."
    return head + "." + _b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


@dataclass
class JwksServer:
    url: str
    doc: dict[str, Any]
    hits: list[str] = field(default_factory=list)


@contextlib.contextmanager
def jwks_server(doc: dict[str, Any]) -> Iterator[JwksServer]:
    """Serve `doc` (the live dict: change it to rotate keys) at /jwks.json; count the requests."""
    state = JwksServer("", doc)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            state.hits.append(self.path)
            body = json.dumps(state.doc).encode()
            self.send_response(200 if self.path == "/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)

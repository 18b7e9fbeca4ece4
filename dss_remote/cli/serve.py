"""`dss serve STORE`: the HCA DSS API and the read-only `ria+http` tree of a store, on uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import ConfigError

from ..config.store_config import read_config
from ..server import serve_env as asgi

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve the store over HTTP: the HCA DSS API and ria+http clones",
                       description="Binds 127.0.0.1 unless told otherwise. Access: `dss token`, "
                       "`dss auth issuer`, `dss acl`. Behind a proxy, pass --public-url.")
    p.add_argument("store", type=Path, help="directory of the store")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--threads", type=int, default=asgi.DEFAULT_THREADS,
                   help="threads per worker for blocking work: index builds, mirror lookups, streamed "
                   f"reads (default {asgi.DEFAULT_THREADS}; raise it when most content is on slow "
                   "mirrors)")
    p.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, metavar="FILE", help="... and this private key (PEM)")
    p.add_argument("--public-url", metavar="URL",
                   help="the URL clients reach the server at (behind a proxy or load balancer): "
                   "paging links and the spec's server URL use it")
    p.add_argument("--forwarded-allow-ips", metavar="IPS",
                   help="proxies whose X-Forwarded-For/-Proto to trust (comma-separated; default none)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="where the derived indexes live (default ~/.cache/dss-remote/serve/...)")
    p.add_argument("--read-only", action="store_true",
                   help="refuse every write (503 with Retry-After): for a replica server or maintenance")
    p.set_defaults(func=_serve)


def _check(args: argparse.Namespace) -> None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both (PEM files) or neither")
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path} is not a readable file; give the PEM certificate and key")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers {args.workers}: give 1 to 64 worker processes")
    if not 1 <= args.threads <= 256:
        raise ConfigError(f"--threads {args.threads}: give 1 to 256 threads per worker")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a TCP port (1-65535)")
    if args.public_url is not None and not args.public_url.startswith(("http://", "https://")):
        raise ConfigError(f"--public-url {args.public_url!r} must be an absolute http(s) URL")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(args: argparse.Namespace) -> int:
    _check(args)
    store = ria.open_store(args.store.absolute()).path
    read_config(store)  # a broken config fails here, with its one-line error, not in every worker
    if args.tls_cert is None and not _is_loopback(args.host):
        print(f"dss: warning: serving plain HTTP on {args.host}: tokens and data cross the network "
              "in clear; use --tls-cert/--tls-key or a TLS proxy in front", file=sys.stderr)
    os.environ[asgi.STORE_VAR] = str(store)
    os.environ[asgi.PUBLIC_URL_VAR] = args.public_url or ""
    os.environ[asgi.THREADS_VAR] = str(args.threads)
    os.environ[asgi.READ_ONLY_VAR] = "1" if args.read_only else ""
    os.environ[asgi.CACHE_DIR_VAR] = str(args.cache_dir.absolute()) if args.cache_dir else ""
    scheme = "https" if args.tls_cert else "http"
    print(f"dss: serving {store} on {scheme}://{args.host}:{args.port} "
          f"({args.workers} worker(s) x {args.threads} threads); Ctrl-C stops", file=sys.stderr)
    import uvicorn  # noqa: PLC0415  (the web stack loads for `dss serve` only, not every dss command)

    uvicorn.run("dss_remote.server.asgi:app", factory=True, host=args.host, port=args.port,
                workers=args.workers, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
                proxy_headers=bool(args.forwarded_allow_ips),
                forwarded_allow_ips=args.forwarded_allow_ips or "", log_level="warning",
                access_log=False)
    return 0

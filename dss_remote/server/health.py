"""`GET /internal/health`: 200 when the store is readable and every replica answers, else 503.

Monitoring polls it. Each replica is asked for its root `ria-layout-version` (one HEAD), all at
once, each given HEALTH_TIMEOUT seconds; mirror URLs are shown redacted, and no message carries a
credential (backends never put one in a message; a URL's user and password are masked). The answer
is reused for CACHE_SECONDS per process, so callers (it needs no sign-in) cannot make the server
hammer its buckets. A load balancer asks `?replicas=false`: only this node's view of the store,
since one mirror being down must not take every node out of rotation.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ria_store import store as ria
from ria_store.errors import DssError, one_line
from ria_store.layout import VERSION_FILE
from ria_store.urls import redact_url

from ..backends.base import Backend
from .replicas import served_replicas

logger = logging.getLogger(__name__)

#: seconds each replica has to answer
HEALTH_TIMEOUT = 5.0
#: seconds a full check's answer is reused (per process and store)
CACHE_SECONDS = 5.0

_cache: dict[Path, tuple[float, bool, dict[str, Any]]] = {}
_cache_lock = threading.Lock()

router = APIRouter()


def _redacted(text: str, urls: list[str]) -> str:
    for url in urls:
        if url and redact_url(url) != url:
            text = text.replace(url, redact_url(url))
    return text


def _probe(backend: Backend) -> None:
    if backend.info(VERSION_FILE) is None:
        raise DssError(f"no {VERSION_FILE} at its root (not mounted, or the wrong bucket/prefix; "
                       "`dss sync` restores it)")


def check(store_root: Path, timeout: float = HEALTH_TIMEOUT, *, replicas: bool = True
          ) -> tuple[bool, dict[str, Any]]:
    """(healthy, report): the store's own files, then (unless `replicas` is false) every replica's
    answer."""
    report: dict[str, Any] = {}
    try:
        ria.open_store(store_root)
        served = served_replicas(store_root)
    except DssError as e:
        report["store"] = {"ok": False, "error": one_line(e)}
        return False, report
    report["store"] = {"ok": True}
    if not replicas:
        return True, report
    secrets = [str(getattr(b, "url", "")) for _, b in served.replicas.backends]
    secrets += [u for m in served.config.mirrors for u in (m.url, m.endpoint_url or "")]
    pool = ThreadPoolExecutor(max_workers=max(1, len(served.replicas.backends)),
                              thread_name_prefix="dss-health")
    try:
        futures: dict[str, Future[None]] = {
            name: pool.submit(_probe, backend) for name, backend in served.replicas.backends}
        wait(futures.values(), timeout=timeout)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a replica that hangs keeps its thread, not us
    healthy = True
    answers: dict[str, Any] = {}
    for name, backend in served.replicas.backends:
        entry: dict[str, Any] = {"url": redact_url(backend.url), "ok": True}
        future = futures[name]
        if not future.done():
            entry |= {"ok": False, "error": f"no answer within {timeout:g} s"}
        elif (err := future.exception()) is not None:
            msg = one_line(err) if isinstance(err, DssError) else f"{type(err).__name__}: {one_line(err)}"
            entry |= {"ok": False, "error": _redacted(msg, secrets)}
        healthy = healthy and entry["ok"]
        answers[name] = entry
    report["replicas"] = answers
    return healthy, report


def _cached_check(store_root: Path) -> tuple[bool, dict[str, Any]]:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(store_root)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1], hit[2]
    healthy, report = check(store_root)
    with _cache_lock:
        _cache[store_root] = (time.monotonic(), healthy, report)
    return healthy, report


@router.get("/internal/health")
def health(request: Request, replicas: bool = True) -> JSONResponse:
    """The store's health (no authentication: it names no dataset and no secret)."""
    root = request.app.state.store_root
    healthy, report = _cached_check(root) if replicas else check(root, replicas=False)
    if healthy:
        title = "the store and every replica answer" if replicas else "the store is readable"
        return JSONResponse({"status": 200, "code": "ok", "title": title, **report})
    failed = [f"[store] {report['store']['error']}"] if not report["store"]["ok"] else []
    failed += [f"[{n}] {r['error']}" for n, r in report.get("replicas", {}).items() if not r["ok"]]
    logger.warning("health check failed: %s", "; ".join(failed))
    return JSONResponse({"status": 503, "code": "unavailable", "title": "; ".join(failed), **report},
                        status_code=503, headers={"Retry-After": "30"})

"""What `dss serve` hands its uvicorn workers through the environment (names only, no imports:
the `dss` command reads these without loading the web stack)."""

from __future__ import annotations

#: the environment `dss serve` hands its workers
STORE_VAR = "DSS_SERVE_STORE"
PUBLIC_URL_VAR = "DSS_SERVE_PUBLIC_URL"
CACHE_DIR_VAR = "DSS_SERVE_CACHE_DIR"
THREADS_VAR = "DSS_SERVE_THREADS"
#: "1" when `dss serve --read-only`: every write is 503 with Retry-After
READ_ONLY_VAR = "DSS_SERVE_READ_ONLY"
#: threads per worker for the blocking part of requests (index builds, replica lookups over the
#: network, file reads of streamed bodies): anyio's default. Small-file GETs from the store's
#: disk do not use them (files_api's quick path).
DEFAULT_THREADS = 40

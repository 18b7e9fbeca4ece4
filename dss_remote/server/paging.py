"""DSS paging: a page that is not the last is `206` with an absolute `Link: <...>; rel="next"`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse


def base_url(request: Request) -> str:
    """Where clients reach the server: `public_url` (behind a proxy), else the request's base."""
    public: str | None = request.app.state.public_url
    return public or str(request.base_url).rstrip("/")


def next_url(request: Request, params: Mapping[str, str | int | None]) -> str:
    """The absolute URL of this route with `params` (None values left out)."""
    query = urlencode([(k, str(v)) for k, v in params.items() if v is not None])
    return f"{base_url(request)}{request.url.path}?{query}"


def page(request: Request, body: Mapping[str, Any], content_key: str,
         next_params: Mapping[str, str | int | None] | None) -> JSONResponse:
    """`body` as one page: 206 with the link to the next page when there is one, else 200."""
    headers = {"X-OpenAPI-Pagination": "true", "X-OpenAPI-Paginated-Content-Key": content_key}
    if next_params is None:
        return JSONResponse(dict(body), status_code=200, headers=headers)
    headers["Link"] = f'<{next_url(request, next_params)}>; rel="next"'
    return JSONResponse(dict(body), status_code=206, headers=headers)

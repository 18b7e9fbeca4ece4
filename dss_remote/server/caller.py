"""Who is calling: the `Authorization` header through the app's Gate, as a FastAPI dependency.

No header is an anonymous caller (None); a header that is not a valid credential is 401 with a
`WWW-Authenticate` challenge (Bearer for API clients, Basic for git and DataLad on `ria+http`).
"""

from __future__ import annotations

import logging

from fastapi import Request

from ..access.gate import AuthenticationError, Gate, Identity
from .errors import ApiError

logger = logging.getLogger(__name__)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dss", Basic realm="dss"'}


def gate_of(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def caller(request: Request) -> Identity | None:
    """The identity the request carries (a FastAPI dependency); 401 for a bad credential."""
    try:
        return gate_of(request).identify(request.headers.get("authorization"))
    except AuthenticationError as e:
        deny(request, None, 401, str(e))
        raise AssertionError("unreachable") from e


def deny(request: Request, who: Identity | None, status: int, title: str, dataset: str | None = None
         ) -> None:
    """Audit a refused request, then raise its 401 (with the challenge) or 403."""
    client = request.client.host if request.client else None
    gate_of(request).audit({"identity": who.user if who else None, "remote": client,
                            "method": request.method, "path": request.url.path, "dataset": dataset,
                            "status": status})
    if status == 401:
        raise ApiError(401, "unauthorized", title, CHALLENGE)
    raise ApiError(status, "forbidden", title)


def require_read(request: Request, who: Identity | None, dataset_id: str) -> None:
    """Go on only if `who` may read the dataset: 401 for an anonymous caller, else 403."""
    if gate_of(request).may_read(who, dataset_id):
        return
    if who is None:
        deny(request, None, 401, f"dataset {dataset_id} is not public: sign in with a dss token or "
             "a JWT from a trusted issuer (Authorization: Bearer ...)", dataset_id)
    assert who is not None
    deny(request, who, 403, f"{who.user} may not read dataset {dataset_id}; ask an admin for "
         "`dss acl set STORE ID --read GROUP`", dataset_id)

"""Who may write, and the audit line of every write (the read side is caller.py).

Every route that changes the store calls `writable` first (a `dss serve --read-only` server answers
503 with `Retry-After`, which the hca client waits on), then one of `require_write`,
`require_create` or `require_admin`, and `audit_write` once it knows the outcome.
"""

from __future__ import annotations

import logging

from fastapi import Request

from ..access.gate import Identity
from .caller import deny, gate_of
from .errors import ApiError

logger = logging.getLogger(__name__)

#: seconds a client is told to wait before retrying a write refused by a read-only server
READ_ONLY_RETRY_AFTER = 300


def writable(request: Request) -> None:
    """503 + Retry-After when the server was started with `--read-only`."""
    if getattr(request.app.state, "read_only", False):
        raise ApiError(503, "read_only", "this server is read-only (dss serve --read-only): writes are "
                       "refused; retry later or write through a server started without --read-only",
                       {"Retry-After": str(READ_ONLY_RETRY_AFTER)})


def signed_in(request: Request, who: Identity | None, what: str) -> Identity:
    """`who`, or 401 naming `what` needs a signed-in caller."""
    if who is None:
        deny(request, None, 401, f"{what} needs a signed-in caller: sign in with a dss token or a JWT "
             "from a trusted issuer (Authorization: Bearer ...)")
    assert who is not None
    return who


def require_write(request: Request, who: Identity | None, dataset_id: str) -> Identity:
    """Go on only if `who` may write the dataset: 401 anonymous, else 403 naming the fix."""
    who = signed_in(request, who, f"writing dataset {dataset_id}")
    if not gate_of(request).may_write(who, dataset_id):
        deny(request, who, 403, f"{who.user} may not write dataset {dataset_id}; ask an admin for "
             "`dss acl set STORE ID --write GROUP`", dataset_id)
    return who


def require_create(request: Request, who: Identity | None, dataset_id: str) -> Identity:
    """Go on only if `who` may create a new dataset in the store."""
    who = signed_in(request, who, f"creating dataset {dataset_id}")
    if not gate_of(request).may_create(who):
        deny(request, who, 403, f"{who.user} may not create datasets in this store; ask an admin for "
             "`dss acl default STORE --create GROUP`", dataset_id)
    return who


def require_admin(request: Request, who: Identity | None, what: str, dataset_id: str | None = None
                  ) -> Identity:
    """Go on only if `who` is an admin of the store."""
    who = signed_in(request, who, what)
    if not gate_of(request).is_admin(who):
        deny(request, who, 403, f"{what} is for admins of the store; {who.user} is not one "
             "(`dss acl default STORE --admin GROUP`)", dataset_id)
    return who


def audit_write(request: Request, who: Identity | None, status: int, *, dataset: str | None = None,
                **detail: object) -> None:
    """One audit line for a write that was answered with `status`."""
    client = request.client.host if request.client else None
    record: dict[str, object] = {"identity": who.user if who else None, "remote": client,
                                 "method": request.method, "path": request.url.path,
                                 "dataset": dataset, "status": status, "write": True}
    record.update({k: v for k, v in detail.items() if v is not None})
    gate_of(request).audit(record)

"""`POST /v1/bundles/{uuid}/checkout` and `GET /v1/bundles/checkout/{job_id}`.

A checkout is a write (the server writes into the destination with its own credentials), so a
read-only server refuses it (503); a caller needs only read access to the bundle, as with the HCA
DSS. The destination is checked up front (400 naming the fix: not allowed by the store's config, a
bucket that does not exist or the server may not reach); the copy itself runs in a detached worker
(service/checkout.py), whose failure is the job's FAILED `cause`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from ria_store.errors import AccessError, DssError, NotFoundError, UnavailableError, one_line

from ..access.gate import Identity
from ..service import checkout as jobs
from ..service.checkout_dest import DestinationRefused
from . import params
from .app_state import store_root
from .caller import caller, require_read
from .errors import ApiError
from .replicas import HCA_REPLICAS, served_replicas
from .write_access import audit_write, writable

logger = logging.getLogger(__name__)

router = APIRouter()

Caller = Annotated[Identity | None, Depends(caller)]
_BODY_FIELDS = {"destination", "email"}
#: what a 503 asks the client to wait before it tries again (seconds)
RETRY_AFTER = "30"


def _body(body: Any) -> tuple[str, str | None]:
    if not isinstance(body, dict):
        raise params.bad('the body must be a JSON object like {"destination": "s3://my-bucket"}')
    unknown = sorted(set(body) - _BODY_FIELDS)
    if unknown:
        raise params.bad(f"unknown body field {unknown[0]!r}; a checkout takes destination and email")
    destination, email = body.get("destination"), body.get("email")
    if not isinstance(destination, str) or not destination:
        raise params.bad("destination is required: s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], a bucket "
                         "of the replica's cloud, or a directory the store allows (server.checkout_dirs)")
    if email is not None and not isinstance(email, str):
        raise params.bad("email must be a string")
    return destination, email


def _scheme(request: Request, replica: str | None) -> str | None:
    """The cloud a bare bucket name is in: the replica's (`aws`, `gcp`, or a mirror's)."""
    if replica is None:
        return None
    if replica in HCA_REPLICAS:
        return HCA_REPLICAS[replica]
    for m in served_replicas(store_root(request)).config.mirrors:
        if m.name == replica:
            return m.scheme
    return None


@router.post("/v1/bundles/{uuid}/checkout")
def post_checkout(uuid: str, request: Request, who: Caller,
                  body: Annotated[Any, Body()] = None) -> JSONResponse:
    """Start copying a bundle version to a destination; `{checkout_job_id}`."""
    params.check_known(request, ("replica", "version"))
    params.check_uuid(uuid)
    replica = params.replica(request)
    asked = params.version(request)
    writable(request)
    require_read(request, who, uuid)
    destination, email = _body(body)
    root = store_root(request)
    named = served_replicas(root).resolve(replica) if replica is not None else None
    try:
        dest = jobs.store_destination(root, destination,
                                      checkout_dirs=request.app.state.settings.checkout_dirs,
                                      replica_scheme=_scheme(request, replica))
        job = jobs.create_job(root, uuid, asked, dest, replica=named, requested_by=who.user if who else None,
                              email=email)
        jobs.start_worker(root, job.job_id)
    except NotFoundError as e:
        raise ApiError(404, "not_found", one_line(e)) from e
    except (DestinationRefused, AccessError) as e:
        audit_write(request, who, 400, dataset=uuid, destination=destination)
        raise ApiError(400, "illegal_arguments", one_line(e)) from e
    except UnavailableError as e:
        raise ApiError(503, "unavailable", f"{one_line(e)}; try again later", {"Retry-After": RETRY_AFTER}
                       ) from e
    except DssError as e:
        logger.warning("checkout of %s to %s: %s", uuid, destination, e)
        raise ApiError(503, "unavailable", f"the checkout cannot start now ({one_line(e)}); try again later",
                       {"Retry-After": RETRY_AFTER}) from e
    audit_write(request, who, 200, dataset=uuid, version=job.version, destination=job.destination,
                checkout_job_id=job.job_id)
    return JSONResponse({"checkout_job_id": job.job_id}, status_code=200)


@router.get("/v1/bundles/checkout/{checkout_job_id}")
def get_checkout(checkout_job_id: str, request: Request, who: Caller) -> JSONResponse:
    """A checkout job's status: RUNNING, SUCCEEDED or FAILED (with `cause`), and its counts."""
    params.check_known(request, ("replica",))
    params.replica(request)
    root = store_root(request)
    try:
        job = jobs.load_job(root, checkout_job_id)
    except NotFoundError as e:
        raise ApiError(404, "not_found", one_line(e)) from e
    except DssError as e:
        raise ApiError(503, "unavailable", f"{one_line(e)}", {"Retry-After": RETRY_AFTER}) from e
    require_read(request, who, job.dataset)
    if not getattr(request.app.state, "read_only", False):
        try:
            jobs.resume_if_orphaned(root, job)
        except DssError as e:  # the status still stands; the next poll tries again
            logger.warning("checkout job %s: cannot resume: %s", checkout_job_id, e)
    return JSONResponse(job.status_doc())

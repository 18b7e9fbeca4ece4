"""GET /v1/events (the journal, paged, what the caller may read) and GET /v1/events/{uuid}
(a bundle version's metadata document, the DSS's event payload)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ria_store.errors import DssError

from ..access.gate import Identity
from ..history import events
from . import dss_mapping, params
from .app_state import file_index, store_root
from .bundles_api import bundle_files, resolve_version
from .caller import caller, gate_of, require_read
from .paging import page

logger = logging.getLogger(__name__)

router = APIRouter()

EVENTS_PAGE = (1, 500, 100)
Caller = Annotated[Identity | None, Depends(caller)]
#: our journal's event types as the DSS names them
DSS_EVENT_TYPES = {events.BUNDLE_CREATED: "CREATE", events.BUNDLE_DELETED: "TOMBSTONE"}


def _date_key(request: Request, name: str) -> str | None:
    value = params.single(request, name)
    if value is None:
        return None
    try:
        return events.since_key(value)
    except DssError as e:
        raise params.bad(f"{name} {value[:80]!r} is not a time like 2026-11-22T03:15:33Z or "
                         "2026-11-22T031533.123456Z") from e


def event_doc(event: events.Event) -> dict[str, Any]:
    return {"event_id": event.event_id, "event_type": DSS_EVENT_TYPES.get(event.type, event.type),
            "timestamp": event.time, "bundle_uuid": event.dataset_id, "bundle_version": event.version,
            "commit": event.commit, "ref": event.ref}


@router.get("/v1/events")
def get_events(request: Request, who: Caller) -> Response:
    """Events from `from_date` (inclusive) to `to_date` (exclusive), oldest first, after `start_after`."""
    params.check_known(request, ("replica", "from_date", "to_date", "per_page", "start_after"))
    replica = params.replica(request)
    from_key, to_key = _date_key(request, "from_date"), _date_key(request, "to_date")
    per_page = params.integer(request, "per_page", EVENTS_PAGE[2], EVENTS_PAGE[0], EVENTS_PAGE[1])
    after = params.single(request, "start_after")
    if after is not None:
        try:
            events.check_event_id(after)
        except DssError as e:
            raise params.bad(f"start_after {after[:80]!r} is not an event id from a previous page") from e
    since = max(after or "", from_key or "") or None
    gate = gate_of(request)
    readable: dict[str, bool] = {}
    found: list[dict[str, Any]] = []
    has_more = False
    for event, _path in events.iter_events(store_root(request), since):
        if event is None:
            continue
        if to_key is not None and event.event_id >= to_key:
            break
        if event.dataset_id not in readable:
            readable[event.dataset_id] = gate.may_read(who, event.dataset_id)
        if not readable[event.dataset_id]:
            continue
        if len(found) == per_page:
            has_more = True
            break
        found.append(event_doc(event))
    following = None
    if has_more:
        following = {"replica": replica, "from_date": params.single(request, "from_date"),
                     "to_date": params.single(request, "to_date"), "per_page": per_page,
                     "start_after": found[-1]["event_id"]}
    return page(request, {"events": found, "has_more": has_more}, "events", following)


@router.get("/v1/events/{uuid}")
def get_event(uuid: str, request: Request, who: Caller) -> Response:
    """The metadata document of bundle version `version`: what a subscriber's filter sees."""
    params.check_known(request, ("replica", "version"))
    params.check_uuid(uuid)
    params.replica(request)
    version = params.version(request)
    if version is None:
        raise params.bad("version is required: GET /v1/events/{uuid}?version=<bundle version>")
    require_read(request, who, uuid)
    index = file_index(request)
    version = resolve_version(index, uuid, version)
    total = index.file_count(uuid, version) or 0
    files = bundle_files(request, index, uuid, version, start=0, count=total)
    doc: dict[str, Any] = {
        "event_type": "CREATE", "bundle_info": {"uuid": uuid, "version": version},
        "manifest": {"version": version, "creator_uid": dss_mapping.UNKNOWN_CREATOR, "files": files}}
    try:
        event = events.load(events.event_path(store_root(request), f"{version}.{uuid}"))
    except (DssError, OSError):
        event = None  # recorded but not (yet) published: `dss sync` writes the event
    if event is not None:
        doc["event_id"], doc["event_timestamp"] = event.event_id, event.time
    return JSONResponse(doc)



"""`/v1/collections`: owner-private, versioned collections of files, bundles and collections.

The DSS's routes and shapes (docs/serve.md, "Collections"); the store side is
`service/collections.py`. Every route needs a signed-in caller (collections belong to a user).
A caller sees, patches and deletes only their own; another's is 404, as if absent. Admins may
also read and delete anyone's (not patch: a new version would be written in the owner's name).
A link must name a version that exists and that the caller may read, else 422 `invalid_link`
(the DSS's code), the same whether it is absent or unreadable, so a link tells nothing about what
the caller may not read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from ria_store.errors import DssError, NotFoundError

from ..access.gate import Identity
from ..history import times
from ..history.bundles import parse_version
from ..service import collections, file_pool
from ..service.collections import MAX_ITEMS, TYPES, Collection, Item
from . import params
from .app_state import file_index, store_root
from .caller import caller, gate_of
from .dss_mapping import UUID_RE
from .errors import ApiError
from .paging import page
from .write_access import audit_write, signed_in, writable

logger = logging.getLogger(__name__)

router = APIRouter()

Caller = Annotated[Identity | None, Depends(caller)]
#: per_page of GET /v1/collections: least, most, default (the DSS's)
LIST_PAGE = (10, 500, 500)
_FIELDS = ("name", "description", "details", "contents")
_PATCH_FIELDS = ("name", "description", "details", "add_contents", "remove_contents")
_ITEM_FIELDS = ("path", "type", "uuid", "version")
_MAX_POINTER = 1024
_WHAT = "collections belong to a user"


def _bad(title: str) -> ApiError:
    return params.bad(title)


def _not_found(uuid: str, user: Identity) -> ApiError:
    return ApiError(404, "not_found", f"no collection {uuid} of {user.user}; list yours with "
                    "GET /v1/collections")


# --- the body --------------------------------------------------------------------------------------

def _item(value: object, where: str) -> Item:
    """One `{type, uuid, version, path?}`, else 400 naming it."""
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object {{type, uuid, version, path?}}")
    unknown = sorted(set(value) - set(_ITEM_FIELDS))
    if unknown:
        raise _bad(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(_ITEM_FIELDS)}")
    kind = value.get("type")
    if kind not in TYPES:
        raise _bad(f"{where}.type {kind!r:.80} is not one of {', '.join(TYPES)}")
    uuid = value.get("uuid")
    if not isinstance(uuid, str):
        raise _bad(f"{where}.uuid is required: the {kind}'s uuid")
    params.check_uuid(uuid, f"{where}.uuid")
    version = value.get("version")
    if not isinstance(version, str):
        raise _bad(f"{where}.version is required: the {kind}'s version")
    try:
        parse_version(version)
    except DssError as e:
        raise _bad(f"{where}.version {version[:80]!r} is not a version like 2026-11-22T031533.123456Z"
                   ) from e
    path = value.get("path")
    if path is not None and (not isinstance(path, str) or len(path) > _MAX_POINTER
                             or (path and not path.startswith("/"))):
        raise _bad(f"{where}.path {str(path)[:80]!r} is not a JSON pointer like /donor/organ "
                   f"(at most {_MAX_POINTER} characters)")
    return Item(kind, uuid, version, path)


def _items(value: object, name: str) -> list[Item]:
    """A list of at most MAX_ITEMS items, without repeats (first place kept)."""
    if not isinstance(value, list):
        raise _bad(f"{name} must be a list of {{type, uuid, version, path?}} items")
    if len(value) > MAX_ITEMS:
        raise _bad(f"{name} has {len(value)} items, more than the {MAX_ITEMS} one request may list; "
                   "send the rest with PATCH /v1/collections/UUID (add_contents)")
    return collections.dedup(_item(v, f"{name}[{i}]") for i, v in enumerate(value))


def _fields(body: object, known: tuple[str, ...], *, required: bool) -> dict[str, Any]:
    """The body's name, description and details checked (all required on PUT), the rest as given."""
    if not isinstance(body, dict):
        raise _bad(f"the body must be a JSON object with {', '.join(known)}")
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out = {k: v for k, v in body.items() if v is not None}
    for name in known:
        if required and name not in out:
            raise _bad(f"{name} is required")
    for name in ("name", "description"):
        if name in out and not isinstance(out[name], str):
            raise _bad(f"{name} must be a string")
    if "details" in out and not isinstance(out["details"], dict):
        raise _bad("details must be a JSON object")
    return out


# --- referential integrity -------------------------------------------------------------------------

def _file_exists(request: Request, who: Identity, uuid: str, version: str) -> bool:
    """Whether the file version exists for `who`: in a dataset they may read, or deposited by
    them (PUT /v1/files) and not yet in a bundle."""
    found = file_index(request).file(uuid, version)
    if found is not None and gate_of(request).may_read(who, found.dataset_id):
        return True
    try:
        record = file_pool.lookup(store_root(request), uuid, version)
    except DssError:
        return False
    return record is not None and (record.owner == who.user or gate_of(request).is_admin(who))


def _bundle_exists(request: Request, who: Identity, uuid: str, version: str) -> bool:
    return gate_of(request).may_read(who, uuid) and version in file_index(request).bundle_versions(uuid)


def _collection_exists(request: Request, who: Identity, uuid: str, version: str) -> bool:
    try:
        found = collections.load(store_root(request), uuid, version)
    except DssError:
        return False
    return _visible(request, who, found)


_EXISTS: dict[str, Callable[[Request, Identity, str, str], bool]] = {
    "file": _file_exists, "bundle": _bundle_exists, "collection": _collection_exists}


def _check_links(request: Request, who: Identity, items: list[Item], name: str) -> None:
    """422 `invalid_link` naming the first item that is absent or that `who` may not read."""
    for item in items:
        if not _EXISTS[item.type](request, who, item.uuid, item.version):
            raise ApiError(422, "invalid_link", f"{name} links to {item.type} {item.uuid} version "
                           f"{item.version}, which does not exist or which {who.user} may not read; "
                           "link only to versions that exist and that you may read")


# --- who sees what ---------------------------------------------------------------------------------

def _visible(request: Request, who: Identity, found: Collection) -> bool:
    return found.owner == who.user or gate_of(request).is_admin(who)


def _find(request: Request, who: Identity, uuid: str, version: str | None) -> Collection:
    """The caller's collection version (the newest without `version`), else 404."""
    try:
        found = collections.load(store_root(request), uuid, version)
    except NotFoundError as e:
        raise _not_found(uuid, who) from e
    if not _visible(request, who, found):
        raise _not_found(uuid, who)
    return found


def _audited(request: Request, who: Identity, work: Callable[[], tuple[int, Any]],
             uuid: str | None) -> JSONResponse:
    """Run a write and audit its outcome, a refusal too."""
    if uuid is not None and not UUID_RE.fullmatch(uuid):
        uuid = None  # the audit names only well-formed uuids
    try:
        status, body = work()
    except ApiError as e:
        audit_write(request, who, e.status, collection=uuid, code=e.code)
        raise
    audit_write(request, who, status, collection=uuid)
    return JSONResponse(body, status_code=status)


# --- routes ----------------------------------------------------------------------------------------

@router.put("/v1/collections", status_code=201)
def put_collection(request: Request, who: Caller, body: Annotated[Any, Body()] = None) -> JSONResponse:
    """Create a collection version owned by the caller: 201 {uuid, version}; 200 if identical."""
    writable(request)
    user = signed_in(request, who, _WHAT)
    given = request.query_params.get("uuid")

    def work() -> tuple[int, Any]:
        params.check_known(request, ("replica", "uuid", "version"))
        params.replica(request)
        uuid = params.single(request, "uuid")
        if uuid is None:
            raise _bad("uuid is required: the new collection's uuid (a UUID you choose)")
        params.check_uuid(uuid)
        version = params.version(request)
        if version is None:
            raise _bad("version is required: the new collection's version, e.g. "
                       f"{times.format_compact(times.now())}")
        fields = _fields(body, _FIELDS, required=True)
        items = _items(fields["contents"], "contents")
        _check_links(request, user, items, "contents")
        new = Collection(uuid, version, user.user, fields["name"], fields["description"],
                         fields["details"], tuple(items), times.format_utc(times.now()))
        created = _store(lambda: collections.put(store_root(request), new))
        return (201 if created else 200), {"uuid": uuid, "version": version}

    return _audited(request, user, work, given)


def _store(write: Callable[[], Any]) -> Any:
    """Run a store write, mapping its expected failures to the DSS errors."""
    try:
        return write()
    except collections.CollectionConflictError as e:
        raise ApiError(409, "collection_already_exists", str(e)) from e
    except collections.CollectionTooLargeError as e:
        raise _bad(str(e)) from e
    except NotFoundError:
        raise
    except DssError as e:
        logger.error("collection write failed: %s", e)
        raise ApiError(503, "unavailable", f"the store could not be written ({e}); retry later",
                       {"Retry-After": "60"}) from e


@router.get("/v1/collections")
def list_collections(request: Request, who: Caller) -> Response:
    """The caller's collection versions `{collections: [{uuid, version}]}`, paged by `start_at`."""
    params.check_known(request, ("replica", "per_page", "start_at"))
    replica = params.replica(request)
    per_page = params.integer(request, "per_page", LIST_PAGE[2], LIST_PAGE[0], LIST_PAGE[1])
    start = params.integer(request, "start_at", 0, 0, 10**9)
    user = signed_in(request, who, _WHAT)
    mine = collections.owned(store_root(request), user.user)
    found = [{"uuid": u, "version": v} for u, v in mine[start:start + per_page]]
    following = ({"replica": replica, "per_page": per_page, "start_at": start + per_page}
                 if start + per_page < len(mine) else None)
    return page(request, {"collections": found}, "collections", following)


@router.get("/v1/collections/{uuid}")
def get_collection(uuid: str, request: Request, who: Caller) -> dict[str, Any]:
    """One of the caller's collections (the newest version without `version`)."""
    params.check_known(request, ("replica", "version"))
    params.check_uuid(uuid)
    params.replica(request)
    version = params.version(request)
    user = signed_in(request, who, _WHAT)
    return _find(request, user, uuid, version).to_json()


@router.patch("/v1/collections/{uuid}")
def patch_collection(uuid: str, request: Request, who: Caller, body: Annotated[Any, Body()] = None
                     ) -> JSONResponse:
    """A new version of the caller's collection `version`, changed by the body: 200 {uuid, version}."""
    writable(request)
    user = signed_in(request, who, _WHAT)

    def work() -> tuple[int, Any]:
        params.check_known(request, ("replica", "version"))
        params.check_uuid(uuid)
        params.replica(request)
        version = params.version(request)
        if version is None:
            raise _bad("version is required: the version of the collection this patch changes")
        fields = _fields(body, _PATCH_FIELDS, required=False)
        if not fields:
            raise _bad(f"nothing to change: give at least one of {', '.join(_PATCH_FIELDS)}")
        add = _items(fields.pop("add_contents", []), "add_contents")
        remove = _items(fields.pop("remove_contents", []), "remove_contents")
        base = _find(request, user, uuid, version)
        if base.owner != user.user:
            raise ApiError(403, "forbidden", f"collection {uuid} is {base.owner}'s; only its owner may "
                           "change it (admins may read and delete it)")
        _check_links(request, user, add, "add_contents")
        try:
            new = _store(lambda: collections.patch(store_root(request), uuid, version, user.user,
                                                   changes=fields, add=add, remove=remove))
        except NotFoundError as e:  # deleted meanwhile
            raise _not_found(uuid, user) from e
        return 200, {"uuid": uuid, "version": new.version}

    return _audited(request, user, work, uuid)


@router.delete("/v1/collections/{uuid}")
def delete_collection(uuid: str, request: Request, who: Caller) -> JSONResponse:
    """Delete every version of the caller's collection (an admin: anyone's): 200 {}."""
    writable(request)
    user = signed_in(request, who, _WHAT)

    def work() -> tuple[int, Any]:
        params.check_known(request, ("replica",))
        params.check_uuid(uuid)
        params.replica(request)
        _find(request, user, uuid, None)
        if not _store(lambda: collections.delete(store_root(request), uuid)):
            raise _not_found(uuid, user)  # deleted meanwhile
        return 200, {}

    return _audited(request, user, work, uuid)

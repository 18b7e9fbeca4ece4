"""`/v1/subscriptions`: the DSS subscription API over the same files `dss subscribe` manages.

A subscription made here records its `owner` (the caller's user name). A caller sees and deletes
only their own (another's is 404, as if absent); admins see and delete all, including those made
with `dss subscribe`, which have no owner. Secrets are never returned. Deliveries are always
signed, so `hmac_secret_key` is required; `method` is POST and `encoding` application/json, the
only ones the deliverer speaks. A subscription may carry one query over the bundle document:
`jmespath_query` (a JMESPath expression, as the DSS v2 API) or `es_query` (an Elasticsearch query
object, as the DSS v1 API; our subset, search/es_dsl.py), checked here (a bad one is a 400 naming
the problem) and run on each event's document (webhooks/query_filter.py); `attachments` are
refused for now. Non-admins must name a `dataset` they may read:
a subscription to every dataset would deliver events of datasets its owner may not read.
The callback host is checked by `webhooks.callback_guard` here and again at each delivery.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from ria_store.errors import DssError, NotFoundError
from ria_store.layout import check_dataset_id
from ria_store.locks import FileLock

from ..access.gate import Identity
from ..config import paths
from ..history import times
from ..webhooks import callback_guard, subscriptions
from ..webhooks.subscriptions import Subscription
from . import params
from .caller import caller, deny, gate_of, require_read
from .errors import ApiError

logger = logging.getLogger(__name__)

router = APIRouter()

#: subscriptions one user may hold (the DSS's SUBSCRIPTION_LIMIT)
LIMIT = 100
#: the DSS's request fields, and ours (`dataset`, `path`)
_FIELDS = {"callback_url", "hmac_secret_key", "hmac_key_id", "method", "encoding", "attachments",
           "jmespath_query", "es_query", "form_fields", "payload_form_field", "dataset", "path"}
_LATER = ("attachments", "form_fields", "payload_form_field")
_MAX_SECRET = 4096


def _signed_in(request: Request, who: Identity | None) -> Identity:
    if who is None:
        deny(request, None, 401, "subscriptions belong to a user: sign in with a dss token or a JWT "
             "from a trusted issuer (Authorization: Bearer ...)")
    assert who is not None
    return who


def _bad(title: str) -> ApiError:
    return ApiError(400, "illegal_arguments", title)


def _check_replica(request: Request) -> None:
    """A replica, if given, must be one of the store's (the rule of every route); a subscription
    covers all of them, so it filters nothing."""
    params.replica(request)


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(f"{name} is required")
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"{name} must be a non-empty string")
    return value


def _visible(who: Identity, admin: bool, sub: Subscription) -> bool:
    return admin or (sub.owner is not None and sub.owner == who.user)


def public_document(sub: Subscription) -> dict[str, Any]:
    """A subscription as the DSS shows it: never its secret, nor a password inside its URL."""
    shown = sub.public_json()
    doc: dict[str, Any] = {"uuid": sub.id, "callback_url": shown["url"], "owner": sub.owner,
                           "method": "POST", "encoding": "application/json",
                           "hmac_key_id": sub.key_id, "created": sub.created}
    if sub.dataset is not None:
        doc["dataset"] = sub.dataset
    if sub.path is not None:
        doc["path"] = sub.path
    for name in ("jmespath_query", "es_query", "query"):  # `query`: made with `dss subscribe --query`
        if getattr(sub, name) is not None:
            doc[name] = getattr(sub, name)
    return doc


def _parse_new(request: Request, who: Identity, body: dict[str, Any]) -> dict[str, Any]:
    """The validated fields of a new subscription; 400 (or the dataset's 401/403) otherwise."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    later = [k for k in _LATER if body.get(k) is not None]
    if later:
        raise _bad(f"{', '.join(later)}: not supported (deliveries carry the event and its bundle "
                   "document's id); filter with jmespath_query, es_query, dataset or path")
    method = _string(body, "method") or "POST"
    if method != "POST":
        raise _bad(f"method {method!r} is not supported yet; deliveries are POST")
    encoding = _string(body, "encoding") or "application/json"
    if encoding != "application/json":
        raise _bad(f"encoding {encoding!r} is not supported yet; deliveries are application/json")
    url = _string(body, "callback_url", required=True)
    secret = _string(body, "hmac_secret_key", required=True)
    assert url is not None and secret is not None
    if len(secret) > _MAX_SECRET or "\n" in secret or "\r" in secret:
        raise _bad(f"hmac_secret_key must be one line of at most {_MAX_SECRET} characters")
    key_id = _string(body, "hmac_key_id")
    dataset = _string(body, "dataset")
    path = _string(body, "path")
    jmespath_query = _string(body, "jmespath_query")
    es_query = body.get("es_query")
    if es_query is not None and not isinstance(es_query, dict):
        raise _bad('es_query must be an object like {"query": {"term": {"files.meta_sample_json.'
                   'species": "mouse"}}}')
    try:
        subscriptions.check_queries(jmespath_query=jmespath_query, es_query=es_query)
    except DssError as e:
        raise _bad(str(e)) from e
    try:
        subscriptions.check_url(url)
        if path is not None:
            subscriptions.check_path_glob(path)
        if dataset is not None:
            check_dataset_id(dataset)
        if key_id is not None and (len(key_id) > 256 or any(c.isspace() for c in key_id)):
            raise DssError(f"hmac_key_id {key_id!r} must be one word of at most 256 characters")
    except DssError as e:
        raise _bad(str(e).replace("--path", "path")) from e
    if dataset is None and not gate_of(request).is_admin(who):
        raise _bad("dataset is required: name a dataset you may read (subscriptions to every "
                   "dataset are for admins)")
    if dataset is not None:
        require_read(request, who, dataset)
    try:
        callback_guard.check_callback(url, allow_private=request.app.state.settings.allow_private_callbacks)
    except callback_guard.CallbackRefusedError as e:
        raise _bad(str(e)) from e
    return {"url": url, "secret": secret, "key_id": key_id, "dataset": dataset, "path": path,
            "jmespath_query": jmespath_query, "es_query": es_query}


@router.put("/v1/subscriptions", status_code=201)
def put_subscription(request: Request, who: Annotated[Identity | None, Depends(caller)],
                     body: Annotated[dict[str, Any], Body()], replica: str | None = None
                     ) -> JSONResponse:
    """Create a subscription owned by the caller: 201 {uuid}."""
    user = _signed_in(request, who)
    _check_replica(request)
    fields = _parse_new(request, user, body)
    root = request.app.state.store_root
    # one lock, so two concurrent PUTs (workers, nodes) cannot both take the 100th place
    with FileLock(root / paths.SUBSCRIPTIONS_LOCK):
        owned = sum(1 for s in subscriptions.load_all(root) if s.owner == user.user)
        if owned >= LIMIT:
            raise ApiError(400, "illegal_arguments", f"{user.user} has {owned} subscriptions, the "
                           f"limit is {LIMIT}; delete one (DELETE /v1/subscriptions/UUID) first")
        try:
            sub = subscriptions.create(root, fields["url"], fields["secret"], fields["dataset"],
                                       fields["path"], owner=user.user, key_id=fields["key_id"],
                                       jmespath_query=fields["jmespath_query"],
                                       es_query=fields["es_query"])
        except DssError as e:
            raise ApiError(400, "illegal_arguments", str(e)) from e
    gate_of(request).audit({"identity": user.user, "remote": request.client.host if request.client
                            else None, "method": "PUT", "path": request.url.path,
                            "dataset": sub.dataset, "status": 201, "subscription": sub.id})
    return JSONResponse({"uuid": sub.id}, status_code=201)


@router.get("/v1/subscriptions")
def list_subscriptions(request: Request, who: Annotated[Identity | None, Depends(caller)],
                       replica: str | None = None) -> dict[str, Any]:
    """The caller's subscriptions (an admin's: all), without secrets."""
    user = _signed_in(request, who)
    _check_replica(request)
    admin = gate_of(request).is_admin(user)
    subs = subscriptions.load_all(request.app.state.store_root)
    return {"subscriptions": [public_document(s) for s in subs if _visible(user, admin, s)]}


def _find(request: Request, user: Identity, uuid: str) -> Subscription:
    if not subscriptions.is_subscription_id(uuid):
        raise _bad(f"subscription id {uuid!r} is not a UUID like 3f2f1b1e-4c1a-4b1a-9c1a-1a2b3c4d5e6f")
    try:
        sub = subscriptions.load(request.app.state.store_root, uuid)
    except NotFoundError:
        sub = None
    if sub is None or not _visible(user, gate_of(request).is_admin(user), sub):
        raise ApiError(404, "not_found", f"no subscription {uuid} of {user.user}; list yours with "
                       "GET /v1/subscriptions")
    return sub


@router.get("/v1/subscriptions/{uuid}")
def get_subscription(request: Request, uuid: str, who: Annotated[Identity | None, Depends(caller)],
                     replica: str | None = None) -> dict[str, Any]:
    """One of the caller's subscriptions (404 for another's), without its secret."""
    user = _signed_in(request, who)
    _check_replica(request)
    return public_document(_find(request, user, uuid))


@router.delete("/v1/subscriptions/{uuid}")
def delete_subscription(request: Request, uuid: str, who: Annotated[Identity | None, Depends(caller)],
                        replica: str | None = None) -> dict[str, Any]:
    """Delete one of the caller's subscriptions (404 for another's): {timeDeleted}."""
    user = _signed_in(request, who)
    _check_replica(request)
    sub = _find(request, user, uuid)
    try:
        subscriptions.delete(request.app.state.store_root, sub.id)
    except NotFoundError as e:  # deleted meanwhile
        raise ApiError(404, "not_found", f"no subscription {uuid}") from e
    gate_of(request).audit({"identity": user.user, "remote": request.client.host if request.client
                            else None, "method": "DELETE", "path": request.url.path,
                            "dataset": sub.dataset, "status": 200, "subscription": sub.id})
    return {"timeDeleted": times.format_utc(times.now())}

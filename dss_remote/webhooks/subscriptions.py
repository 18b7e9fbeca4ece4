"""Webhook subscriptions: one file per subscriber, `dss/subscriptions/<uuid>.json`, mode 0600.

A file holds {id, url, secret, dataset?, path?, created, owner?, key_id?, and one of query?,
jmespath_query?, es_query?}. The secret signs every delivery (HMAC-SHA256), so the files are
readable by their owner only, are never printed, and are never mirrored. In a store shared by a Unix
group they are 0640 and belong to the store's group (ria_store/sharing.py), because every member's
push queues deliveries: the group is the trust boundary, and other users cannot read them. `dataset`
limits a subscription to one dataset; `path` to versions that changed a path matching the glob
(`bundles.path_matches`). `owner` is the user who subscribed through the HTTP API (`dss serve`);
files without one were made by `dss subscribe` (an admin on the store) and stay valid. Owned
subscriptions are the untrusted ones: their callback host is checked before each delivery
(`callback_guard`). `key_id` is the DSS's `hmac_key_id`, kept to be shown back; it is not a secret.

At most one of `query` (`dss search`'s language), `jmespath_query` (a JMESPath expression, as the
DSS v2 API) and `es_query` (an Elasticsearch query object, as the DSS v1 API) limits a subscription
to events whose bundle document matches (query_filter.py); they are checked when the subscription is
made, and files without them stay valid.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ria_store.atomic import write_bytes_atomic
from ria_store.errors import DssError, NotFoundError, from_os_error
from ria_store.layout import check_dataset_id
from ria_store.listing import list_dir
from ria_store.urls import redact_url

from ..config import paths
from ..history import bundles, times
from ..history.events import Event

if TYPE_CHECKING:
    from .query_filter import EventDocument

logger = logging.getLogger(__name__)

_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FIELDS = {"id", "url", "secret", "dataset", "path", "created", "owner", "key_id", "query",
           "jmespath_query", "es_query"}
#: the query fields, of which a subscription has at most one
QUERY_FIELDS = ("query", "jmespath_query", "es_query")
_MAX_SECRET = 4096
_MAX_QUERY = 4096
_MAX_ES_QUERY = 64 * 1024


@dataclass(frozen=True)
class Subscription:
    """Where to POST events, the secret that signs them, and which events to send."""

    id: str
    url: str
    secret: str = field(repr=False)
    dataset: str | None = None
    path: str | None = None
    created: str = ""
    #: who subscribed through the API; None for `dss subscribe` (an admin on the store)
    owner: str | None = None
    key_id: str | None = None
    #: `dss search`'s language
    query: str | None = None
    #: a JMESPath expression (the DSS v2 API's); a truthy result matches
    jmespath_query: str | None = None
    #: an Elasticsearch query object (the DSS v1 API's), kept as given and parsed when matching
    es_query: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def has_query(self) -> bool:
        return any(getattr(self, k) is not None for k in QUERY_FIELDS)

    def matches(self, event: Event, changed_paths: Sequence[str],
                document: EventDocument | None = None) -> bool:
        """Whether `event` (whose bundle version changed `changed_paths`) goes to this subscriber.

        A query subscription also needs `document`, the event's bundle document (built once per
        event by the caller, on first use: `query_filter.EventDocument`)."""
        if self.dataset is not None and event.dataset_id != self.dataset:
            return False
        if self.path is not None and not bundles.path_matches(self.path, changed_paths):
            return False
        if not self.has_query:
            return True
        if document is None:
            raise ValueError(f"subscription {self.id} has a query: matching needs the event's document")
        from .query_filter import subscription_passes  # noqa: PLC0415  (only stores with queries load it)

        return subscription_passes(self.id, document, query=self.query,
                                   jmespath_query=self.jmespath_query, es_query=self.es_query)

    def to_json(self) -> dict[str, Any]:
        """The file's content, secret included."""
        out: dict[str, Any] = {"id": self.id, "url": self.url, "secret": self.secret,
                               "created": self.created}
        if self.dataset is not None:
            out["dataset"] = self.dataset
        if self.path is not None:
            out["path"] = self.path
        if self.owner is not None:
            out["owner"] = self.owner
        if self.key_id is not None:
            out["key_id"] = self.key_id
        for k in QUERY_FIELDS:
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    def public_json(self) -> dict[str, Any]:
        """What may be shown: no secret, and no password inside the URL."""
        out = self.to_json()
        del out["secret"]
        out["url"] = redact_url(self.url)
        return out


def is_subscription_id(text: str) -> bool:
    return bool(_ID_RE.fullmatch(text))


def check_url(url: str) -> str:
    """An http(s) URL with a host, or DssError naming the fix."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as e:
        raise DssError(f"webhook url {url!r} is malformed ({e}); give e.g. "
                       "https://ci.example.org/dss-hook") from e
    if parts.scheme not in ("http", "https"):
        raise DssError(f"webhook url {url!r} must start with https:// or http:// (got "
                       f"{parts.scheme + ':' if parts.scheme else 'no scheme'}); give e.g. "
                       "https://ci.example.org/dss-hook")
    if not parts.hostname:
        raise DssError(f"webhook url {url!r} has no host; give e.g. https://ci.example.org/dss-hook")
    if any(c.isspace() for c in url) or parts.fragment:
        raise DssError(f"webhook url {url!r} must not contain spaces or a #fragment; "
                       "percent-encode them or drop the fragment")
    return url


def check_path_glob(glob: str) -> str:
    if not glob or "\n" in glob:
        raise DssError(f"--path {glob!r} must be a non-empty glob such as 'raw/*.nii.gz' ('*' crosses '/')")
    return glob


def read_secret(path: Path) -> str:
    """The shared secret in `path` (UTF-8 text, trailing newline stripped); never empty."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"secret file {path} not found; write the shared secret there first "
                            f"(e.g. `openssl rand -hex 32 > {path}`)") from e
    except IsADirectoryError as e:
        raise DssError(f"secret file {path} is a directory; give the file holding the secret") from e
    except OSError as e:
        raise from_os_error(e, f"secret file {path}") from e
    try:
        secret = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise DssError(f"secret file {path} is not UTF-8 text; use a text secret "
                       f"(e.g. `openssl rand -hex 32 > {path}`)") from e
    if not secret:
        raise DssError(f"secret file {path} is empty; write the shared secret there "
                       f"(e.g. `openssl rand -hex 32 > {path}`)")
    if len(secret) > _MAX_SECRET or "\n" in secret:
        raise DssError(f"secret file {path} must hold one line of at most {_MAX_SECRET} characters; "
                       "keep only the secret in it")
    return secret


def subscriptions_dir(store_root: Path) -> Path:
    return store_root / paths.SUBSCRIPTIONS


def subscription_path(store_root: Path, sub_id: str) -> Path:
    if not is_subscription_id(sub_id):
        raise NotFoundError(f"no subscription {sub_id!r} in {store_root}: ids are UUIDs "
                            f"(see `dss subscriptions list {store_root}`)")
    return subscriptions_dir(store_root) / f"{sub_id}.json"


def _one_query(given: dict[str, Any]) -> None:
    set_ = [k for k in QUERY_FIELDS if given.get(k) is not None]
    if len(set_) > 1:
        raise DssError(f"a subscription takes at most one of {', '.join(QUERY_FIELDS)} (got "
                       f"{' and '.join(set_)}); write the conditions as one query")


def check_queries(query: str | None = None, jmespath_query: str | None = None,
                  es_query: Any = None) -> None:
    """The query filters of a new subscription: at most one, and it parses; DssError (one line,
    naming the problem) otherwise."""
    _one_query({"query": query, "jmespath_query": jmespath_query, "es_query": es_query})
    if query is None and jmespath_query is None and es_query is None:
        return
    from . import query_filter  # noqa: PLC0415  (heavier than the push hook needs without queries)

    for name, text in (("query", query), ("JMESPath expression", jmespath_query)):
        if text is not None and len(text) > _MAX_QUERY:
            raise DssError(f"the {name} is {len(text)} characters long; keep it to {_MAX_QUERY}")
    if query is not None:
        query_filter.check_query(query)
    if jmespath_query is not None:
        query_filter.check_jmespath(jmespath_query)
    if es_query is not None:
        query_filter.check_es_query(es_query)
        size = len(json.dumps(es_query))
        if size > _MAX_ES_QUERY:
            raise DssError(f"es_query is {size} bytes of JSON; keep it to {_MAX_ES_QUERY}")


def create(store_root: Path, url: str, secret: str, dataset: str | None = None,
           path: str | None = None, *, now: datetime | None = None, owner: str | None = None,
           key_id: str | None = None, query: str | None = None, jmespath_query: str | None = None,
           es_query: dict[str, Any] | None = None) -> Subscription:
    """Validate and write a new subscription (mode 0600, 0640 in a group-shared store); nothing is
    written on bad input."""
    check_url(url)
    check_queries(query, jmespath_query, es_query)
    if not secret:
        raise DssError("a subscription needs a non-empty secret")
    if dataset is not None:
        check_dataset_id(dataset)
    if path is not None:
        check_path_glob(path)
    for what, value in (("owner", owner), ("key id", key_id)):
        if value is not None and (not value or len(value) > 256 or any(c.isspace() for c in value)):
            raise DssError(f"subscription {what} {value!r} must be one word of at most 256 characters")
    created = times.format_utc(now or times.now(), timespec="seconds")
    sub = Subscription(str(uuid.uuid4()), url, secret, dataset, path, created, owner, key_id, query,
                       jmespath_query, es_query)
    target = subscription_path(store_root, sub.id)
    try:
        write_bytes_atomic(target, json.dumps(sub.to_json(), indent=1, sort_keys=True).encode() + b"\n",
                           mode=0o600)
    except OSError as e:
        raise from_os_error(e, str(target), writing=True) from e
    logger.info("subscription %s: %s", sub.id, redact_url(url))
    return sub


def _parse(data: bytes, sub_id: str, where: Path) -> Subscription:
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict) or set(obj) - _FIELDS or obj.get("id") != sub_id:
            raise ValueError("not a subscription object with a matching id")
        if not isinstance(obj.get("secret"), str) or not obj["secret"]:
            raise ValueError("no secret")
        for k in ("dataset", "path", "created", "owner", "key_id", "query", "jmespath_query"):
            if not isinstance(obj.get(k, ""), str):
                raise ValueError(f"{k} is not a string")
        if not isinstance(obj.get("es_query", {}), dict):
            raise ValueError("es_query is not an object")
        _one_query(obj)
        sub = Subscription(sub_id, check_url(str(obj.get("url"))), obj["secret"], obj.get("dataset"),
                           obj.get("path"), obj.get("created", ""), obj.get("owner"),
                           obj.get("key_id"), obj.get("query"), obj.get("jmespath_query"),
                           obj.get("es_query"))
        if sub.dataset is not None:
            check_dataset_id(sub.dataset)
    except (ValueError, DssError) as e:
        raise DssError(f"subscription file {where} is corrupt ({e}); fix it or delete the "
                       f"subscription (`dss subscriptions delete`) and subscribe again") from e
    return sub


def load(store_root: Path, sub_id: str) -> Subscription:
    """One subscription; NotFoundError if there is none with that id, DssError if its file is bad."""
    path = subscription_path(store_root, sub_id)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"no subscription {sub_id} in {store_root} "
                            f"(see `dss subscriptions list {store_root}`)") from e
    except PermissionError as e:
        raise DssError(f"subscription file {path}: permission denied for this user; subscription files "
                       "hold secrets, so only their owner (and, in a store shared by a group, the "
                       "group) may read them: run `dss deliver` and push as their owner, or share "
                       "the store with `dss adopt --group GROUP`") from e
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    return _parse(data, sub_id, path)


def ids(store_root: Path) -> set[str]:
    """The ids of every subscription file (read or not)."""
    return {n[:-5] for n in list_dir(subscriptions_dir(store_root))
            if n.endswith(".json") and is_subscription_id(n[:-5])}


def load_all(store_root: Path) -> list[Subscription]:
    """Every readable subscription, oldest first; an unreadable file is a warning, not a stop."""
    out = []
    for sub_id in ids(store_root):
        try:
            out.append(load(store_root, sub_id))
        except NotFoundError:
            continue  # deleted since the listing
        except DssError as e:
            logger.warning("%s", e)
    return sorted(out, key=lambda s: (s.created, s.id))


def delete(store_root: Path, sub_id: str) -> None:
    """Remove a subscription's file; NotFoundError if there is none."""
    path = subscription_path(store_root, sub_id)
    try:
        path.unlink()
    except FileNotFoundError as e:
        raise NotFoundError(f"no subscription {sub_id} in {store_root} "
                            f"(see `dss subscriptions list {store_root}`)") from e
    except OSError as e:
        raise from_os_error(e, str(path), writing=True) from e
    logger.info("subscription %s deleted", sub_id)

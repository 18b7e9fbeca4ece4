"""dss tokens: `dss_<id>_<secret>`, of which the store keeps only a SHA-256 of the secret.

One file per token, `dss/access/tokens/<id>.json` (mode 0600, directories 0700):
{id, user, groups, created, expires (null: never), revoked (absent, or when), sha256}. The secret
has 256 bits from `secrets`, so a fast hash is enough (nothing to brute-force), compared in
constant time. `verify` reads the token's file on every call, so a revocation takes effect at
once in every server process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ria_store.errors import ConfigError, NotFoundError
from ria_store.listing import list_dir

from ..config import paths
from ..history.times import format_utc, parse_utc
from .gate import AuthenticationError, Identity
from .private_files import ensure_private_dir, read_json, write_private_json

logger = logging.getLogger(__name__)

TOKENS = f"{paths.ACCESS}/tokens"
PREFIX = "dss_"
_ID_RE = re.compile(r"[0-9a-f]{16}")
_TOKEN_RE = re.compile(r"dss_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_NO_TOKEN = "0" * 64
#: one message for an unknown id and a wrong secret, so a caller learns nothing about which ids exist
INVALID = "the dss token is not valid; ask an admin for a new one (`dss token create`)"


@dataclass(frozen=True)
class TokenInfo:
    """What the store knows of a token (never its secret)."""

    id: str
    user: str
    groups: tuple[str, ...]
    created: str
    expires: str | None
    revoked: str | None = None

    def status(self, now: datetime) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and parse_utc(self.expires) <= now:
            return "expired"
        return "active"

    def public_json(self, now: datetime) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "groups": list(self.groups), "created": self.created,
                "expires": self.expires, "revoked": self.revoked, "status": self.status(now)}


def check_name(name: str, what: str) -> str:
    """A user or group name: letters, digits and `._@+-`, so it reads the same in every file."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not a valid name: use letters, digits and '._@+-' "
                          "(up to 128, not starting with a symbol)")
    return name


def _path(store_root: Path, token_id: str) -> Path:
    return store_root / TOKENS / f"{token_id}.json"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(store_root: Path, user: str, groups: Iterable[str], expires: timedelta | None,
           now: datetime | None = None) -> tuple[str, str]:
    """A new token for `user` in `groups`, valid for `expires` (None: until revoked): its id and
    its text, which is shown once and kept nowhere."""
    check_name(user, "user")
    group_list = sorted({check_name(g, "group") for g in groups})
    created = now or datetime.now(timezone.utc)
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    doc = {"id": token_id, "user": user, "groups": group_list, "created": format_utc(created),
           "expires": format_utc(created + expires) if expires is not None else None,
           "sha256": _hash(secret)}
    ensure_private_dir(store_root, TOKENS)
    write_private_json(_path(store_root, token_id), doc)
    logger.debug("created token %s for %s", token_id, user)
    return token_id, f"{PREFIX}{token_id}_{secret}"


def _parse(doc: object, where: Path) -> tuple[TokenInfo, str]:
    damaged = ConfigError(f"token file {where} is damaged; remove it (its token no longer works) and "
                          "create a new token")
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise damaged
    try:
        info = TokenInfo(doc["id"], doc["user"], tuple(doc["groups"]), doc["created"], doc["expires"],
                         doc.get("revoked"))
        digest = doc["sha256"]
        if info.expires is not None:
            parse_utc(info.expires)
    except (KeyError, TypeError, ValueError) as e:
        raise damaged from e
    if not (isinstance(digest, str) and isinstance(info.user, str)
            and all(isinstance(g, str) for g in info.groups)):
        raise damaged
    return info, digest


def _load(store_root: Path, token_id: str) -> tuple[TokenInfo, str] | None:
    path = _path(store_root, token_id)
    doc = read_json(path)
    return None if doc is None else _parse(doc, path)


def list_tokens(store_root: Path) -> list[TokenInfo]:
    """Every token of the store, oldest first."""
    out = []
    for name in list_dir(store_root / TOKENS):
        if name.endswith(".json") and _ID_RE.fullmatch(name[:-5]):
            loaded = _load(store_root, name[:-5])
            if loaded is not None:
                out.append(loaded[0])
    return sorted(out, key=lambda t: (t.created, t.id))


def revoke(store_root: Path, token_id: str, now: datetime | None = None) -> TokenInfo:
    """Mark a token revoked (kept, so `dss token list` still shows who had it)."""
    loaded = _load(store_root, token_id) if _ID_RE.fullmatch(token_id) else None
    if loaded is None:
        raise NotFoundError(f"token {token_id!r} not found in store {store_root}; list the ids with "
                            "`dss token list`")
    info, digest = loaded
    if info.revoked is not None:
        return info
    when = format_utc(now or datetime.now(timezone.utc))
    doc = {"id": info.id, "user": info.user, "groups": list(info.groups), "created": info.created,
           "expires": info.expires, "revoked": when, "sha256": digest}
    write_private_json(_path(store_root, token_id), doc)
    return TokenInfo(info.id, info.user, info.groups, info.created, info.expires, when)


def looks_like_token(text: str) -> bool:
    return text.startswith(PREFIX)


def verify(store_root: Path, token_text: str, now: datetime | None = None) -> Identity:
    """The identity a token names; AuthenticationError if it is unknown, wrong, revoked or expired.

    Only a caller holding the right secret learns that it was revoked or has expired.
    """
    m = _TOKEN_RE.fullmatch(token_text)
    if not m:
        raise AuthenticationError(f"{INVALID}: it is not of the form dss_<id>_<secret>")
    token_id, secret = m.groups()
    try:
        loaded = _load(store_root, token_id)
    except ConfigError as e:
        logger.warning("%s", e)
        loaded = None
    # the same work for an unknown id as for a wrong secret: the time taken tells nothing either
    stored = loaded[1] if loaded is not None else _NO_TOKEN
    if not hmac.compare_digest(stored, _hash(secret)) or loaded is None:
        raise AuthenticationError(INVALID)
    info = loaded[0]
    status = info.status(now or datetime.now(timezone.utc))
    if status == "revoked":
        raise AuthenticationError(f"the dss token {info.id} was revoked on {info.revoked}; ask an "
                                  "admin for a new one (`dss token create`)")
    if status == "expired":
        raise AuthenticationError(f"the dss token {info.id} expired on {info.expires}; ask an admin "
                                  "for a new one (`dss token create`)")
    return Identity(info.user, frozenset(info.groups), "token")

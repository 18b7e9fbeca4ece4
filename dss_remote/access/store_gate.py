"""`StoreGate`: the server's Gate over a store's tokens, trusted issuers, ACLs and audit log.

One per server worker. The issuers and ACL files are stat'ed on every request and parsed again
when they changed, and a token's file is read on every request, so `dss token revoke`, `dss acl
set` and `dss auth issuer add` take effect at once in every worker, without a restart.

Basic auth (`git` and DataLad on `ria+http` send it from ~/.netrc) carries a dss token as the
password; the login is not checked against the token's user: the secret alone authenticates, a
netrc entry is per host (one login for every token), and a mismatch would add a way to fail
without adding any security. The audit log names the token's user, not the login.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import acl, audit, issuers, tokens
from .acl import Acl
from .gate import AuthenticationError, Identity
from .issuers import Issuer
from .jwts import JwtVerifier, looks_like_jwt
from .private_files import Watched

logger = logging.getLogger(__name__)

#: longer headers are refused before any parsing (JWTs with many groups stay well below)
MAX_AUTHORIZATION = 16384


class StoreGate:
    """Answers the server's questions from the files of the store at `store_root`."""

    def __init__(self, store_root: Path) -> None:
        self.store_root = store_root
        acl_file, issuers_file = store_root / acl.ACL, store_root / issuers.ISSUERS
        self._acl: Watched[Acl] = Watched(acl_file, lambda doc: acl.parse_acl(doc, str(acl_file)), Acl())
        self._issuers: Watched[dict[str, Issuer]] = Watched(
            issuers_file, lambda doc: issuers.parse_issuers(doc, str(issuers_file)), {})
        self._jwts = JwtVerifier()

    def identify(self, authorization: str | None) -> Identity | None:
        if authorization is None:
            return None
        if len(authorization) > MAX_AUTHORIZATION:
            raise AuthenticationError(f"the Authorization header is longer than {MAX_AUTHORIZATION} "
                                      "characters; send Bearer <token>")
        scheme, _, value = authorization.strip().partition(" ")
        credential = value.strip()
        if scheme.lower() == "bearer":
            if tokens.looks_like_token(credential):
                return tokens.verify(self.store_root, credential)
            if looks_like_jwt(credential):
                return self._jwts.verify(credential, self._issuers.get())
            raise AuthenticationError("the Bearer credential is neither a dss token (dss_...) nor a "
                                      "JWT; send one of them")
        if scheme.lower() == "basic":
            return tokens.verify(self.store_root, _basic_password(credential))
        raise AuthenticationError(f"unsupported Authorization scheme {scheme[:20]!r}; send "
                                  "`Bearer <dss token or JWT>` or Basic with a dss token as the password")

    def may_read(self, who: Identity | None, dataset_id: str) -> bool:
        return self._acl.get().may_read(who, dataset_id)

    def may_write(self, who: Identity | None, dataset_id: str) -> bool:
        return self._acl.get().may_write(who, dataset_id)

    def may_create(self, who: Identity | None) -> bool:
        return self._acl.get().may_create(who)

    def grant_creator(self, who: Identity, dataset_id: str) -> None:
        """`user:NAME` joins the dataset's write entries (the effective ones, defaults included)."""
        acl.grant_write(self.store_root, dataset_id, f"user:{who.user}")

    def is_admin(self, who: Identity | None) -> bool:
        return self._acl.get().is_admin(who)

    def audit(self, record: Mapping[str, Any]) -> None:
        audit.append(self.store_root, record)


def _basic_password(credential: str) -> str:
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise AuthenticationError("the Basic credential is not base64 of login:password; put the "
                                  "dss token in ~/.netrc as the password") from e
    _login, colon, password = decoded.partition(":")
    if not colon or not password:
        raise AuthenticationError("the Basic credential has no password; put the dss token in "
                                  "~/.netrc as the password (`machine HOST login NAME password dss_...`)")
    if not tokens.looks_like_token(password):
        raise AuthenticationError("the Basic password is not a dss token (dss_...); create one with "
                                  "`dss token create` and put it in ~/.netrc")
    return password

"""JWTs of trusted issuers, verified with PyJWT: RS256 or ES256 only, `exp` required, `iss` and
`aud` checked, `nbf`/`iat` with 60 s of leeway, the key picked from the issuer's JWKS by `kid`.

JWKS URLs are fetched by PyJWKClient (a short timeout, the set cached for 5 minutes, fetched again
when a token names an unknown `kid`, at most once per 30 s, so garbage kids cannot make the server
hammer the issuer).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import jwt

from ria_store.errors import one_line

from .gate import AuthenticationError, Identity
from .issuers import Issuer

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 60
JWKS_TIMEOUT_SECONDS = 5
JWKS_CACHE_SECONDS = 300
JWKS_REFETCH_COOLDOWN_SECONDS = 30
_JWT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(text: str) -> bool:
    """Three base64url parts separated by dots (the signature part may be empty: `alg: none`)."""
    return bool(_JWT_RE.fullmatch(text))


def _cause(e: BaseException) -> str:
    inner = e.__cause__ or e
    code, reason = getattr(inner, "code", None), getattr(inner, "reason", None)
    if isinstance(code, int):  # an HTTP answer: name its status
        return one_line(f"HTTP {code} {reason or ''}")
    return one_line(reason if reason is not None else inner)


class JwtVerifier:
    """Verifies JWTs against a set of trusted issuers; keeps each JWKS URL's client (and its key
    cache) across reloads of the issuers file."""

    def __init__(self, refetch_cooldown: float = JWKS_REFETCH_COOLDOWN_SECONDS) -> None:
        self._cooldown = refetch_cooldown
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    def _client(self, uri: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._clients.get(uri)
            if client is None:
                client = jwt.PyJWKClient(uri, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS,
                                         timeout=JWKS_TIMEOUT_SECONDS,
                                         cooldown_duration=self._cooldown)
                self._clients[uri] = client
            return client

    def _key(self, iss: Issuer, kid: str) -> jwt.PyJWK:
        unknown = AuthenticationError(f"JWT key id {kid!r:.80} is not among the keys of issuer {iss.issuer}; "
                                      "sign in again, or ask an admin to update the issuer's JWKS")
        if iss.jwks_uri is None:  # the JWKS copied into the store
            for key in (iss.jwks or {}).get("keys", []):
                if key.get("kid") == kid and key.get("use", "sig") == "sig":
                    try:
                        return jwt.PyJWK(key)
                    except jwt.PyJWTError as e:
                        raise AuthenticationError(f"key {kid!r} of issuer {iss.issuer} is not usable "
                                                  f"({one_line(e)}); ask an admin to fix its JWKS") from e
            raise unknown
        client = self._client(iss.jwks_uri)
        try:
            return client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as e:
            raise AuthenticationError(f"cannot fetch the keys of issuer {iss.issuer} from "
                                      f"{iss.jwks_uri}: {_cause(e)}; try again later or ask an admin "
                                      "to check the issuer's jwks_uri") from e
        except jwt.PyJWTError as e:
            problem = e
        # PyJWT raises the same error class for "no such kid" and "no usable key set": the set,
        # cached now if it was usable, tells which
        try:
            client.get_signing_keys()
        except jwt.PyJWTError as e:
            raise AuthenticationError(f"the keys at {iss.jwks_uri} of issuer {iss.issuer} are not a "
                                      f"usable JWKS ({one_line(e)}); ask an admin to check the "
                                      "issuer's jwks_uri") from e
        raise unknown from problem

    def verify(self, token: str, issuers: Mapping[str, Issuer]) -> Identity:
        """The identity a JWT names; AuthenticationError naming the problem."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise AuthenticationError(f"the Bearer credential is not a well-formed JWT ({one_line(e)}); "
                                      "send a dss token or a JWT from a trusted issuer") from e
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthenticationError(f"JWT algorithm {alg!r:.40} is not accepted (only "
                                      f"{', '.join(ALGORITHMS)}); ask the issuer for an RS256 or ES256 token")
        iss_name = claims.get("iss")
        iss = issuers.get(iss_name) if isinstance(iss_name, str) else None
        if iss is None:
            raise AuthenticationError(f"JWT issuer {iss_name!r:.120} is not trusted by this store; an "
                                      "admin adds it with `dss auth issuer add`")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthenticationError(f"JWT of issuer {iss.issuer} has no `kid` header, so its key "
                                      "cannot be chosen; ask the issuer to name the key")
        key = self._key(iss, kid)
        if key.algorithm_name != alg:
            raise AuthenticationError(f"JWT algorithm {alg} does not fit key {kid!r} of issuer "
                                      f"{iss.issuer} ({key.algorithm_name}); the token is forged or damaged")
        try:
            verified = jwt.decode(token, key=key.key, algorithms=[alg], audience=iss.audience,
                                  issuer=iss.issuer, leeway=LEEWAY_SECONDS,
                                  options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError as e:
            exp = claims.get("exp")
            when = (datetime.fromtimestamp(exp, timezone.utc).isoformat().replace("+00:00", "Z")
                    if isinstance(exp, int | float) else "?")
            raise AuthenticationError(f"JWT of issuer {iss.issuer} expired at {when}; sign in again") from e
        except jwt.InvalidAudienceError as e:
            raise AuthenticationError(f"JWT audience {claims.get('aud')!r:.120} is not {iss.audience!r}, "
                                      f"the audience issuer {iss.issuer} is trusted for; request a "
                                      "token for that audience") from e
        except jwt.InvalidIssuerError as e:
            raise AuthenticationError(f"JWT issuer {iss_name!r:.120} is not trusted by this store") from e
        except jwt.MissingRequiredClaimError as e:
            raise AuthenticationError(f"JWT of issuer {iss.issuer} lacks the {e.claim!r} claim; "
                                      "ask the issuer for a token with an expiry and audience") from e
        except jwt.ImmatureSignatureError as e:
            claim = "iat" if "iat" in str(e) else "nbf"
            raise AuthenticationError(f"JWT of issuer {iss.issuer} is not valid yet ({claim} in the "
                                      "future); check the clocks") from e
        except jwt.InvalidIssuedAtError as e:
            raise AuthenticationError(f"JWT of issuer {iss.issuer} has an iat that is not a time "
                                      "(seconds since 1970); the token is damaged") from e
        except jwt.InvalidSignatureError as e:
            raise AuthenticationError(f"JWT signature does not verify with key {kid!r} of issuer "
                                      f"{iss.issuer}; the token is forged or damaged") from e
        except jwt.PyJWTError as e:
            raise AuthenticationError(f"JWT of issuer {iss.issuer} is not valid ({one_line(e)})") from e
        return identity(verified, iss)


def identity(claims: Mapping[str, Any], iss: Issuer) -> Identity:
    """User: the e-mail claim, else `sub`; groups: the groups claim (one string or a list)."""
    user = claims.get(iss.email_claim)
    if not isinstance(user, str) or not user:
        user = claims.get("sub")
    if not isinstance(user, str) or not user:
        raise AuthenticationError(f"JWT of issuer {iss.issuer} names nobody (no {iss.email_claim!r} "
                                  "or `sub` claim)")
    raw = claims.get(iss.groups_claim, [])
    groups = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return Identity(user, frozenset(g for g in groups if isinstance(g, str) and g), "jwt")

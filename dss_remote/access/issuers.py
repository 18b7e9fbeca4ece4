"""Trusted JWT issuers: `dss/access/issuers.json`, `{"issuers": [{issuer, audience, jwks_uri |
jwks, groups_claim, email_claim}]}`.

An issuer's keys come either from its `jwks_uri` (fetched by the server, cached) or from `jwks`,
the JWKS document copied in at `dss auth issuer add --jwks-file` time, so a store trusting an
offline issuer needs nothing outside itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ria_store.errors import ConfigError, NotFoundError, from_os_error

from ..config import paths
from .private_files import edit_lock, ensure_private_dir, read_json, write_private_json

logger = logging.getLogger(__name__)

ISSUERS = f"{paths.ACCESS}/issuers.json"
_FIELDS = {"issuer", "audience", "jwks_uri", "jwks", "groups_claim", "email_claim"}


@dataclass(frozen=True)
class Issuer:
    """One trusted issuer: whose tokens, for which audience, signed by which keys."""

    issuer: str
    audience: str
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    groups_claim: str = "groups"
    email_claim: str = "email"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"issuer": self.issuer, "audience": self.audience,
                               "groups_claim": self.groups_claim, "email_claim": self.email_claim}
        if self.jwks_uri is not None:
            out["jwks_uri"] = self.jwks_uri
        if self.jwks is not None:
            out["jwks"] = self.jwks
        return out

    def summary(self) -> dict[str, Any]:
        """What `dss auth issuer list` shows: the keys' ids, not the whole JWKS."""
        out = self.to_json()
        if self.jwks is not None:
            out["jwks"] = {"kids": [k.get("kid") for k in self.jwks.get("keys", [])]}
        return out


def check_jwks(doc: object, where: str) -> dict[str, Any]:
    """A JWKS document: `{"keys": [{kty, kid, ...}, ...]}` with at least one key."""
    if (not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]
            or not all(isinstance(k, dict) and isinstance(k.get("kty"), str) for k in doc["keys"])):
        raise ConfigError(f"{where} is not a JWKS document ({{\"keys\": [{{\"kty\": ..., \"kid\": ...}}]}} "
                          "with at least one key); export the issuer's public keys as JWKS")
    return doc


def read_jwks_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise from_os_error(e, f"JWKS file {path}") from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"JWKS file {path} is not JSON ({e}); give the issuer's JWKS document") from e
    return check_jwks(doc, f"JWKS file {path}")


def make_issuer(issuer: str, audience: str, *, jwks_uri: str | None = None,
                jwks: dict[str, Any] | None = None, groups_claim: str = "groups",
                email_claim: str = "email") -> Issuer:
    """A checked Issuer; ConfigError names the bad field."""
    if not issuer:
        raise ConfigError("issuer must not be empty; give the `iss` its tokens carry")
    if not audience:
        raise ConfigError(f"issuer {issuer}: audience must not be empty; give the `aud` its tokens carry")
    if (jwks_uri is None) == (jwks is None):
        raise ConfigError(f"issuer {issuer}: give exactly one of jwks_uri (--jwks-uri) and jwks "
                          "(--jwks-file)")
    if jwks_uri is not None:
        parts = urlsplit(jwks_uri)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ConfigError(f"issuer {issuer}: jwks_uri {jwks_uri!r} is not an http(s) URL")
    if jwks is not None:
        check_jwks(jwks, f"issuer {issuer}: jwks")
    if not groups_claim or not email_claim:
        raise ConfigError(f"issuer {issuer}: groups_claim and email_claim must not be empty")
    return Issuer(issuer, audience, jwks_uri, jwks, groups_claim, email_claim)


def parse_issuers(doc: object | None, where: str = ISSUERS) -> dict[str, Issuer]:
    """{issuer: Issuer} of an issuers.json document (None: no file, no issuer trusted)."""
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("issuers"), list):
        raise ConfigError(f"{where} must be {{\"issuers\": [...]}}; fix the file or remove it and "
                          "add the issuers again with `dss auth issuer add`")
    out: dict[str, Issuer] = {}
    for entry in doc["issuers"]:
        if not isinstance(entry, dict) or set(entry) - _FIELDS:
            raise ConfigError(f"{where}: entry {entry!r:.80} is not an issuer object (fields: "
                              f"{', '.join(sorted(_FIELDS))})")
        try:
            iss = make_issuer(entry.get("issuer", ""), entry.get("audience", ""),
                              jwks_uri=entry.get("jwks_uri"), jwks=entry.get("jwks"),
                              groups_claim=entry.get("groups_claim", "groups"),
                              email_claim=entry.get("email_claim", "email"))
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from e
        out[iss.issuer] = iss
    return out


def load(store_root: Path) -> dict[str, Issuer]:
    return parse_issuers(read_json(store_root / ISSUERS), str(store_root / ISSUERS))


def _save(store_root: Path, issuers: dict[str, Issuer]) -> None:
    ensure_private_dir(store_root, paths.ACCESS)
    write_private_json(store_root / ISSUERS,
                       {"issuers": [i.to_json() for _, i in sorted(issuers.items())]})


def add(store_root: Path, issuer: Issuer) -> bool:
    """Trust `issuer` (replacing an entry for the same `iss`); True if it was new."""
    with edit_lock(store_root):
        current = load(store_root)
        new = issuer.issuer not in current
        current[issuer.issuer] = issuer
        _save(store_root, current)
    return new


def remove(store_root: Path, issuer: str) -> None:
    missing = NotFoundError(f"issuer {issuer!r} is not trusted by store {store_root}; list them with "
                            "`dss auth issuer list`")
    if not (store_root / ISSUERS).exists():
        raise missing  # no file, no issuer: and nothing made for the lock
    with edit_lock(store_root):
        current = load(store_root)
        if issuer not in current:
            raise missing
        del current[issuer]
        _save(store_root, current)

"""A Gate for server tests that do not test access control itself: who is who, from a dict.

`GateDouble.from_spec({...})` takes the same JSON an API server started by api_server.py reads from
DSS_TEST_GATE: {"tokens": {TOKEN: {"user": U, "groups": [G]}}, "public": [DATASET ID],
"readers": {DATASET ID: [GROUP]}, "writers": {DATASET ID: [GROUP]}, "admins": [GROUP], "creators": [GROUP]}.
Tokens come as `Bearer TOKEN` or as the password of Basic auth. Audit records are kept in
`audited` (and appended to DSS_TEST_AUDIT, a file, when the server runs in another process).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dss_remote.access.gate import AuthenticationError, Identity


class GateDouble:
    def __init__(self, tokens: Mapping[str, Identity] | None = None, *, public: set[str] | None = None,
                 readers: Mapping[str, set[str]] | None = None,
                 writers: Mapping[str, set[str]] | None = None, admins: set[str] | None = None,
                 audit_file: Path | None = None, creators: set[str] | None = None) -> None:
        self.tokens = dict(tokens or {})
        self.public = set(public or ())
        self.readers = {k: set(v) for k, v in (readers or {}).items()}
        self.writers = {k: set(v) for k, v in (writers or {}).items()}
        self.admins = set(admins or ())
        self.creators = set(creators or ())
        self.audit_file = audit_file
        self.audited: list[dict[str, Any]] = []

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], audit_file: Path | None = None) -> GateDouble:
        tokens = {t: Identity(v["user"], frozenset(v.get("groups", ()))) for t, v in
                  spec.get("tokens", {}).items()}
        return cls(tokens, public=set(spec.get("public", ())),
                   readers={k: set(v) for k, v in spec.get("readers", {}).items()},
                   writers={k: set(v) for k, v in spec.get("writers", {}).items()},
                   admins=set(spec.get("admins", ())), audit_file=audit_file,
                   creators=set(spec.get("creators", ())))

    @classmethod
    def from_env(cls) -> GateDouble:
        audit = os.environ.get("DSS_TEST_AUDIT")
        return cls.from_spec(json.loads(os.environ.get("DSS_TEST_GATE", "{}")),
                             Path(audit) if audit else None)

    def identify(self, authorization: str | None) -> Identity | None:
        if authorization is None:
            return None
        scheme, _, value = authorization.partition(" ")
        token = value.strip()
        if scheme.lower() == "basic":
            try:
                token = base64.b64decode(token, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError) as e:
                raise AuthenticationError("the Basic credential is not base64 of user:password") from e
        elif scheme.lower() != "bearer":
            raise AuthenticationError(f"unsupported authorization scheme {scheme!r}; use Bearer")
        if token not in self.tokens:
            raise AuthenticationError("the token is not valid; create one with `dss token create`")
        return self.tokens[token]

    def may_read(self, who: Identity | None, dataset_id: str) -> bool:
        if dataset_id in self.public or self.is_admin(who):
            return True
        return who is not None and (bool(who.groups & self.readers.get(dataset_id, set()))
                                    or self.may_write(who, dataset_id))  # a writer may also read

    def may_write(self, who: Identity | None, dataset_id: str) -> bool:
        if self.is_admin(who):
            return True
        mine = who.groups | {f"user:{who.user}"} if who is not None else set()
        return who is not None and bool(mine & self.writers.get(dataset_id, set()))

    def grant_creator(self, who: Identity, dataset_id: str) -> None:
        self.writers.setdefault(dataset_id, set()).add(f"user:{who.user}")

    def may_create(self, who: Identity | None) -> bool:
        return self.is_admin(who) or (who is not None and bool(who.groups & self.creators))

    def is_admin(self, who: Identity | None) -> bool:
        return who is not None and bool(who.groups & self.admins)

    def audit(self, record: Mapping[str, Any]) -> None:
        self.audited.append(dict(record))
        if self.audit_file is not None:
            with open(self.audit_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(dict(record)) + "\n")

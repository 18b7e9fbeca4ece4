"""The contract between the HTTP server and access control: an identity, and the questions asked of it.

The server asks only these questions (`Gate`); `access` answers them from the store's tokens,
trusted issuers and ACLs. Tests of the server may answer them with a double.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ria_store.errors import DssError


class AuthenticationError(DssError):
    """A credential was sent but is not valid (unknown, revoked, expired, badly signed, garbage).

    The server answers 401 with this message; it never says which of the store's secrets exist.
    """


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    #: the token's user name, or the JWT's e-mail claim (else its `sub`)
    user: str
    groups: frozenset[str] = field(default_factory=frozenset)
    #: "token" (a dss token, as Bearer or as the password of Basic auth) or "jwt"
    via: str = "token"


class Gate(Protocol):
    """What the server asks before it answers a request."""

    def identify(self, authorization: str | None) -> Identity | None:
        """The caller an `Authorization` header names; None without one (anonymous).

        Raises AuthenticationError for a header that is present but not a valid credential.
        """

    def may_read(self, who: Identity | None, dataset_id: str) -> bool:
        """Whether `who` (None: anonymous) may read the dataset's bundles, files and events."""

    def may_write(self, who: Identity | None, dataset_id: str) -> bool:
        """Whether `who` may write to the dataset."""

    def may_create(self, who: Identity | None) -> bool:
        """Whether `who` may create a new dataset (a bundle with a new uuid) over the write API."""

    def grant_creator(self, who: Identity, dataset_id: str) -> None:
        """Let the user who created a dataset over the write API write (so read) it from now on."""

    def is_admin(self, who: Identity | None) -> bool:
        """Whether `who` is in the store's admin group (may do everything)."""

    def audit(self, record: Mapping[str, Any]) -> None:
        """Keep one audit record (a denied request or a write); never raises for a full disk."""

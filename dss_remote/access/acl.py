"""Who may read and write which dataset: `dss/access/acl.json`.

{"default": {"read": [...], "write": [...]}, "admin": [GROUP...], "create": [GROUP...],
 "datasets": {ID: {"read": [...], "write": [...]}}}

A read or write entry is `public` (anyone, anonymous too; read only), `authenticated` (anyone
signed in), `user:NAME`, or a group name. A dataset's `read` (or `write`), once set, replaces the
default's for that dataset, so one dataset can be more private than the store. Admins may do
everything; a writer may also read. With no file, nobody but admins may do anything, and there
are no admins until `dss acl default STORE --admin GROUP`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ria_store import store as ria
from ria_store.errors import ConfigError, UnsafePathError
from ria_store.layout import check_dataset_id

from ..config import paths
from .gate import Identity
from .private_files import edit_lock, ensure_private_dir, read_json, write_private_json
from .tokens import check_name

logger = logging.getLogger(__name__)

ACL = f"{paths.ACCESS}/acl.json"
PUBLIC = "public"
AUTHENTICATED = "authenticated"
USER_PREFIX = "user:"


@dataclass(frozen=True)
class Rule:
    """Who may read and who may write; None: not set here (a dataset then follows the default)."""

    read: tuple[str, ...] | None = None
    write: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, list[str]]:
        out = {}
        if self.read is not None:
            out["read"] = list(self.read)
        if self.write is not None:
            out["write"] = list(self.write)
        return out


@dataclass(frozen=True)
class Acl:
    """A store's access rules."""

    default: Rule = Rule((), ())
    admin: tuple[str, ...] = ()
    create: tuple[str, ...] = ()
    datasets: dict[str, Rule] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"default": self.default.to_json(), "admin": list(self.admin), "create": list(self.create),
                "datasets": {d: r.to_json() for d, r in sorted(self.datasets.items())}}

    def rule(self, dataset_id: str) -> Rule:
        """The dataset's effective rule: its own entries, the default's for what it does not set."""
        own = self.datasets.get(dataset_id, Rule())
        return Rule(own.read if own.read is not None else self.default.read,
                    own.write if own.write is not None else self.default.write)

    def is_admin(self, who: Identity | None) -> bool:
        return who is not None and bool(who.groups & set(self.admin))

    def may_read(self, who: Identity | None, dataset_id: str) -> bool:
        rule = self.rule(dataset_id)
        return (self.is_admin(who) or matches(rule.read or (), who)
                or (who is not None and matches(rule.write or (), who)))

    def may_write(self, who: Identity | None, dataset_id: str) -> bool:
        return who is not None and (self.is_admin(who) or matches(self.rule(dataset_id).write or (), who))

    def may_create(self, who: Identity | None) -> bool:
        return who is not None and (self.is_admin(who) or bool(who.groups & set(self.create)))


def matches(entries: Iterable[str], who: Identity | None) -> bool:
    """Whether any entry admits `who` (None: anonymous)."""
    for entry in entries:
        if entry == PUBLIC:
            return True
        if who is None:
            continue
        if entry == AUTHENTICATED:
            return True
        if entry.startswith(USER_PREFIX):
            if entry[len(USER_PREFIX):] == who.user:
                return True
        elif entry in who.groups:
            return True
    return False


def check_entries(entries: Sequence[str], what: str) -> tuple[str, ...]:
    """Checked read (`what` = "read") or write entries, in order, without repeats."""
    out: list[str] = []
    for entry in entries:
        if entry == PUBLIC and what != "read":
            raise ConfigError(f"{what} access cannot be `public` (anonymous callers may only read); "
                              "use `authenticated` or a group")
        if entry not in (PUBLIC, AUTHENTICATED):
            name = entry[len(USER_PREFIX):] if entry.startswith(USER_PREFIX) else entry
            check_name(name, f"{what} entry's user" if entry.startswith(USER_PREFIX) else f"{what} group")
        if entry not in out:
            out.append(entry)
    return tuple(out)


def check_groups(groups: Sequence[str], what: str) -> tuple[str, ...]:
    """Plain group names (`admin`, `create`): no `public`, `authenticated` or `user:`."""
    for g in groups:
        if g in (PUBLIC, AUTHENTICATED) or g.startswith(USER_PREFIX):
            raise ConfigError(f"{what} takes group names, not {g!r}")
        check_name(g, f"{what} group")
    return tuple(dict.fromkeys(groups))


def _rule(value: object, where: str) -> Rule:
    if not isinstance(value, dict) or set(value) - {"read", "write"}:
        raise ConfigError(f"{where} must be {{\"read\": [...], \"write\": [...]}}")
    out = {}
    for what in ("read", "write"):
        entries = value.get(what)
        if entries is None:
            continue
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ConfigError(f"{where}.{what} must be a list of entries")
        out[what] = check_entries(entries, what)
    return Rule(**out)


def parse_acl(doc: object | None, where: str = ACL) -> Acl:
    """The Acl of an acl.json document (None: no file, the closed default)."""
    if doc is None:
        return Acl()
    try:
        if not isinstance(doc, dict) or set(doc) - {"default", "admin", "create", "datasets"}:
            raise ConfigError("it must be an object with default, admin, create and datasets")
        default = _rule(doc.get("default", {}), "default")
        datasets = doc.get("datasets", {})
        if not isinstance(datasets, dict):
            raise ConfigError("datasets must be an object {ID: {read, write}}")
        groups = {}
        for what in ("admin", "create"):
            value = doc.get(what, [])
            if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
                raise ConfigError(f"{what} must be a list of group names")
            groups[what] = check_groups(value, what)
        rules = {check_dataset_id(d): _rule(r, f"datasets.{d}") for d, r in datasets.items()}
    except (ConfigError, UnsafePathError) as e:
        raise ConfigError(f"{where}: {e}; fix the file or remove it and set the rules again "
                          "with `dss acl`") from e
    return Acl(Rule(default.read or (), default.write or ()), groups["admin"], groups["create"], rules)


def load(store_root: Path) -> Acl:
    return parse_acl(read_json(store_root / ACL), str(store_root / ACL))


def save(store_root: Path, acl: Acl) -> None:
    ensure_private_dir(store_root, paths.ACCESS)
    write_private_json(store_root / ACL, acl.to_json())


def resolve_dataset(store_root: Path, ref: str) -> str:
    """The id of the dataset `ref` (an id or `~alias`) names in the store; an error if it has none."""
    store = ria.open_store(store_root)
    dsid = ria.resolve_alias(store, ref[1:]) if ref.startswith("~") else check_dataset_id(ref)
    ria.open_dataset(store, dsid)
    return dsid


def set_dataset(store_root: Path, ref: str, read: Sequence[str] | None = None,
                write: Sequence[str] | None = None) -> tuple[str, Rule]:
    """Set a dataset's read and/or write entries (None: leave as is); its id and effective rule."""
    rule = Rule(check_entries(read, "read") if read is not None else None,
                check_entries(write, "write") if write is not None else None)
    dsid = resolve_dataset(store_root, ref)
    with edit_lock(store_root):
        acl = load(store_root)
        old = acl.datasets.get(dsid, Rule())
        new = Rule(rule.read if rule.read is not None else old.read,
                   rule.write if rule.write is not None else old.write)
        acl = replace(acl, datasets=acl.datasets | {dsid: new})
        save(store_root, acl)
    return dsid, acl.rule(dsid)


def grant_write(store_root: Path, dsid: str, entry: str) -> None:
    """Add `entry` to a dataset's write entries (its effective ones: the default's when it has
    none of its own); the dataset need not exist yet (the write API grants its creator first)."""
    check_dataset_id(dsid)
    check_entries([entry], "write")
    with edit_lock(store_root):
        acl = load(store_root)
        old = acl.datasets.get(dsid, Rule())
        write = list(acl.rule(dsid).write or ())
        if entry in write:
            return
        acl = replace(acl, datasets=acl.datasets | {dsid: Rule(old.read, (*write, entry))})
        save(store_root, acl)


def set_default(store_root: Path, read: Sequence[str] | None = None, write: Sequence[str] | None = None,
                admin: Sequence[str] | None = None, create: Sequence[str] | None = None) -> Acl:
    """Change the store's default rule, admin groups and/or creating groups (None: leave as is)."""
    new_read = check_entries(read, "read") if read is not None else None
    new_write = check_entries(write, "write") if write is not None else None
    new_admin = check_groups(admin, "admin") if admin is not None else None
    new_create = check_groups(create, "create") if create is not None else None
    with edit_lock(store_root):
        acl = load(store_root)
        acl = Acl(Rule(new_read if new_read is not None else acl.default.read,
                       new_write if new_write is not None else acl.default.write),
                  new_admin if new_admin is not None else acl.admin,
                  new_create if new_create is not None else acl.create, acl.datasets)
        save(store_root, acl)
    return acl

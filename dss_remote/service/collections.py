"""Collections in the store: owner-private, versioned documents linking files, bundles and collections.

`dss/collections/<uuid>/<version>.json` holds one version, `{uuid, version, owner, created, name,
description, details, contents}`, written once (atomically, mode 0600: 0640 in a group-shared
store) and never changed; a PATCH writes a new version, a delete removes every version. Each
check-then-write of a uuid (put, patch, delete) holds `dss/collections/<uuid>.lock`. The directory
is under `dss/`, which `dss sync` never copies: collections never reach a mirror.

What is checked here: the store's side (who owns a uuid, identical or conflicting versions, the
size of a document). Whether the references exist, and who may see them, is the caller's to check
(the server asks its file index and gate).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ria_store.atomic import fsync_dir, write_bytes_atomic
from ria_store.errors import DssError, NotFoundError, from_os_error
from ria_store.layout import check_dataset_id
from ria_store.listing import list_dir
from ria_store.locks import FileLock

from ..config import paths
from ..history import times
from ..history.bundles import next_version, parse_version

logger = logging.getLogger(__name__)

#: items one request may list (`contents` of a PUT, `add_contents` or `remove_contents` of a PATCH)
MAX_ITEMS = 1000
#: the bytes of one stored version (its JSON)
MAX_DOCUMENT = 1 << 20
#: what an item may link to
TYPES = ("file", "bundle", "collection")
#: a version's file mode: private to the store's owner (or its group, in a shared store)
FILE_MODE = 0o600
_SUFFIX = ".json"
_LOCK_SUFFIX = ".lock"


class CollectionConflictError(DssError):
    """The uuid (or uuid and version) is taken by another document or owner."""


class CollectionTooLargeError(DssError):
    """A version's document would be larger than MAX_DOCUMENT."""


@dataclass(frozen=True)
class Item:
    """One link of a collection: a file, bundle or collection version, and a JSON pointer into it."""

    type: str
    uuid: str
    version: str
    path: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"type": self.type, "uuid": self.uuid, "version": self.version}
        if self.path is not None:
            out["path"] = self.path
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Item:
        return cls(str(doc["type"]), str(doc["uuid"]), str(doc["version"]),
                   None if doc.get("path") is None else str(doc["path"]))


@dataclass(frozen=True)
class Collection:
    """One version of a collection."""

    uuid: str
    version: str
    owner: str
    name: str
    description: str
    details: Mapping[str, Any] = field(default_factory=dict)
    contents: tuple[Item, ...] = ()
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "version": self.version, "owner": self.owner, "created": self.created,
                "name": self.name, "description": self.description, "details": dict(self.details),
                "contents": [i.to_json() for i in self.contents]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Collection:
        return cls(str(doc["uuid"]), str(doc["version"]), str(doc["owner"]), str(doc["name"]),
                   str(doc["description"]), dict(doc["details"]),
                   tuple(Item.from_json(i) for i in doc["contents"]), str(doc.get("created", "")))

    def same_document(self, other: Collection) -> bool:
        """Whether both say the same (the time each was written aside)."""
        return (self.to_json() | {"created": ""}) == (other.to_json() | {"created": ""})


def dedup(items: Iterable[Item]) -> list[Item]:
    """`items` without repeats, each at its first place."""
    return list(dict.fromkeys(items))


def collection_dir(store_root: Path, uuid: str) -> Path:
    return store_root / paths.COLLECTIONS / check_dataset_id(uuid)


def version_path(store_root: Path, uuid: str, version: str) -> Path:
    """Where a version is kept; DssError for a version that is not one (never a path outside)."""
    parse_version(version)
    return collection_dir(store_root, uuid) / f"{version}{_SUFFIX}"


def _lock(store_root: Path, uuid: str) -> FileLock:
    # beside the uuid's directory, not in it: a delete removes the directory, and a writer waiting
    # on a lock inside it would then hold the lock of a file nobody else can open
    return FileLock(store_root / paths.COLLECTIONS / f"{check_dataset_id(uuid)}{_LOCK_SUFFIX}")


def versions(store_root: Path, uuid: str) -> list[str]:
    """The uuid's versions, oldest first; [] for a uuid with none."""
    out = []
    for name in list_dir(collection_dir(store_root, uuid)):
        if name.endswith(_SUFFIX) and not name.startswith("."):
            try:
                parse_version(name[:-len(_SUFFIX)])
            except DssError:
                logger.warning("ignoring %s of collection %s: not a version", name, uuid)
                continue
            out.append(name[:-len(_SUFFIX)])
    return out


def load(store_root: Path, uuid: str, version: str | None = None) -> Collection:
    """A version (the newest without `version`); NotFoundError when there is none."""
    if version is None:
        found = versions(store_root, uuid)
        if not found:
            raise NotFoundError(f"no collection {uuid}")
        version = found[-1]
    path = version_path(store_root, uuid, version)
    try:
        doc = json.loads(path.read_bytes())
        return Collection.from_json(doc)
    except FileNotFoundError as e:
        raise NotFoundError(f"collection {uuid} has no version {version}") from e
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    except (ValueError, KeyError, TypeError) as e:
        raise DssError(f"collection file {path} is damaged ({e}); restore it from a backup or delete "
                       "the collection") from e


def exists(store_root: Path, uuid: str, version: str) -> bool:
    return version_path(store_root, uuid, version).is_file()


def _encode(doc: Collection) -> bytes:
    data = json.dumps(doc.to_json(), ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
    if len(data) > MAX_DOCUMENT:
        raise CollectionTooLargeError(f"collection {doc.uuid} would be {len(data)} bytes, more than the "
                                      f"{MAX_DOCUMENT} bytes a version may have; shorten details or "
                                      "split the contents over several collections")
    return data


def _owner_of(store_root: Path, uuid: str) -> str | None:
    found = versions(store_root, uuid)
    return load(store_root, uuid, found[-1]).owner if found else None


def put(store_root: Path, new: Collection) -> bool:
    """Write `new` as its uuid's version: True if written, False if an identical one was there.

    CollectionConflictError if that version exists with other content, or the uuid is another
    owner's."""
    path = version_path(store_root, new.uuid, new.version)
    data = _encode(new)
    with _lock(store_root, new.uuid):
        owner = _owner_of(store_root, new.uuid)
        if owner is not None and owner != new.owner:
            raise CollectionConflictError(f"collection uuid {new.uuid} is taken; choose another uuid")
        if path.is_file():
            if load(store_root, new.uuid, new.version).same_document(new):
                return False
            raise CollectionConflictError(f"collection {new.uuid} version {new.version} already exists "
                                          "with other content; versions never change: PUT a new version "
                                          "or PATCH this one")
        write_bytes_atomic(path, data, FILE_MODE)
    return True


def patch(store_root: Path, uuid: str, base_version: str, owner: str, *,
          changes: Mapping[str, Any] | None = None, add: Iterable[Item] = (),
          remove: Iterable[Item] = (), now: datetime | None = None) -> Collection:
    """A new version of `owner`'s collection: version `base_version` with `changes` (name,
    description, details) applied, `remove` taken out, then `add` appended (no repeats). Its
    version is now, or just after the newest. NotFoundError when that version is not `owner`'s."""
    changes = dict(changes or {})
    unknown = set(changes) - {"name", "description", "details"}
    if unknown:
        raise DssError(f"a patch changes name, description or details, not {', '.join(sorted(unknown))}")
    gone = set(remove)
    with _lock(store_root, uuid):
        base = load(store_root, uuid, base_version)
        if base.owner != owner:
            raise NotFoundError(f"no collection {uuid} of {owner}")
        contents = dedup([i for i in base.contents if i not in gone] + list(add))
        version = next_version(now or times.now(), versions(store_root, uuid)[-1])
        new = Collection(uuid, version, owner, changes.get("name", base.name),
                         changes.get("description", base.description), changes.get("details", base.details),
                         tuple(contents), times.format_utc(times.now()))
        write_bytes_atomic(version_path(store_root, uuid, version), _encode(new), FILE_MODE)
    return new


def delete(store_root: Path, uuid: str) -> int:
    """Remove every version of the collection; how many there were (0: none)."""
    directory = collection_dir(store_root, uuid)
    with _lock(store_root, uuid):
        found = versions(store_root, uuid)
        for version in found:
            try:
                os.unlink(directory / f"{version}{_SUFFIX}")
            except FileNotFoundError:
                continue
            except OSError as e:
                raise from_os_error(e, str(directory), writing=True) from e
        try:
            for leftover in list_dir(directory):  # a writer's temp file, left by a crash
                os.unlink(directory / leftover)
            directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise from_os_error(e, str(directory), writing=True) from e
        fsync_dir(directory.parent)
    return len(found)


def uuids(store_root: Path) -> list[str]:
    """Every collection uuid in the store, in order."""
    out = []
    for name in list_dir(store_root / paths.COLLECTIONS):
        if name.endswith(_LOCK_SUFFIX):
            continue
        try:
            out.append(check_dataset_id(name))
        except DssError:
            logger.warning("ignoring %s in %s: not a collection uuid", name, store_root / paths.COLLECTIONS)
    return out


def owned(store_root: Path, owner: str) -> list[tuple[str, str]]:
    """(uuid, version) of every version of `owner`'s collections, by uuid then version.

    This scans every collection's newest version (the owner is the same in all of a uuid's
    versions): fine for thousands of collections; an owner index would be the next step."""
    out: list[tuple[str, str]] = []
    for uuid in uuids(store_root):
        found = versions(store_root, uuid)
        if not found:
            continue
        try:
            if load(store_root, uuid, found[-1]).owner != owner:
                continue
        except NotFoundError:  # deleted meanwhile
            continue
        except DssError as e:
            logger.warning("skipping collection %s: %s", uuid, e)
            continue
        out.extend((uuid, v) for v in found)
    return out

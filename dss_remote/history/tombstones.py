"""Tombstones: bundle versions marked dead, as the HCA Data Store has them.

A tombstone is an immutable file beside the manifest it kills,
`dss/bundles/<dataset id>/<version>.tombstone.json`, written once (never changed, never removed
by dss), so it is mirrored like the manifests and a mirror's copy is as good as the store's. Readers
(`dss bundles list/show`, `dss serve`) leave dead versions out; the manifest and the git history
stay, so `dss bundles show --all` and `git log` still see them, and what a dead version alone
references is what `dss gc` may collect. Each tombstone names the `bundle.deleted` event that
announces it; `dss sync` writes that event if a crash left it out.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ria_store.atomic import create_exclusive
from ria_store.errors import DssError, NotFoundError, from_os_error
from ria_store.listing import list_dir
from ria_store.locks import FileLock

from . import bundle_store, bundles, events, times

logger = logging.getLogger(__name__)

FORMAT = "dss-tombstone/1"
SUFFIX = ".tombstone.json"
#: a reason is one line of text, as the DSS's `reason` field
REASON_MAX = 1000


@dataclass(frozen=True)
class Tombstone:
    dataset_id: str
    version: str
    reason: str
    deleted_at: str
    deleted_by: str
    event_id: str

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}


def path(store_root: Path, dsid: str, version: str) -> Path:
    bundles.parse_version(version)
    return bundle_store.bundles_dir(store_root, dsid) / f"{version}{SUFFIX}"


def check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise DssError("--reason is empty: say why the version is deleted (it goes to subscribers "
                       "and stays in the tombstone)")
    if len(text) > REASON_MAX:
        raise DssError(f"--reason is {len(text)} characters long; keep it to {REASON_MAX}")
    return text


def _load(p: Path) -> Tombstone:
    try:
        obj = json.loads(p.read_bytes())
        if obj.pop("format", None) != FORMAT:
            raise ValueError(f"not {FORMAT}")
        return Tombstone(**obj)
    except OSError as e:
        raise from_os_error(e, str(p)) from e
    except (ValueError, TypeError) as e:
        raise DssError(f"tombstone {p} is damaged ({e}); restore it from a mirror (`dss sync`)") from e


def dead(store_root: Path, dsid: str) -> dict[str, Tombstone]:
    """The dataset's tombstoned versions. A damaged tombstone still kills its version (a file of
    that name was written only by a delete), with the reason it cannot be read."""
    directory = bundle_store.bundles_dir(store_root, dsid)
    out: dict[str, Tombstone] = {}
    for name in list_dir(directory):
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue
        version = name[:-len(SUFFIX)]
        try:
            bundles.parse_version(version)
        except DssError:
            continue
        try:
            out[version] = _load(directory / name)
        except DssError as e:
            logger.warning("%s", e)
            out[version] = Tombstone(dsid, version, f"(tombstone unreadable: {e})", "", "", "")
    return out


def is_dead(store_root: Path, dsid: str, version: str) -> bool:
    return path(store_root, dsid, version).exists()


def _event_time(store_root: Path, dsid: str, after: datetime) -> datetime:
    """A time at or after `after` whose event id for this dataset is still free."""
    when = after
    while events.event_path(store_root, f"{bundles.format_version(when)}.{dsid}").exists():
        when += timedelta(microseconds=1)
    return when


def bury(store_root: Path, dsid: str, version: str | None, *, reason: str, who: str,
         now: datetime | None = None) -> list[Tombstone]:
    """Tombstone one version, or (`version` None) every live version of the dataset; return the
    tombstones written. Nothing is written when any check fails."""
    reason = check_reason(reason)
    if version is not None:
        bundles.parse_version(version)
    known = bundle_store.versions(store_root, dsid)
    if not known:
        raise NotFoundError(f"dataset {dsid} has no bundle versions in {store_root} (see `dss "
                            f"bundles list {store_root}`)")
    directory = bundle_store.bundles_dir(store_root, dsid)
    with FileLock(directory / ".lock"):
        gone = dead(store_root, dsid)
        if version is not None:
            if version not in known:
                raise NotFoundError(f"no bundle version {dsid}@{version} (see `dss bundles list "
                                    f"{store_root} --dataset {dsid}`)")
            if version in gone:
                t = gone[version]
                raise DssError(f"bundle version {dsid}@{version} is already deleted ({t.deleted_at}"
                               f" by {t.deleted_by}: {t.reason}); nothing to do")
            targets = [version]
        else:
            targets = [v for v in known if v not in gone]
            if not targets:
                raise DssError(f"every version of dataset {dsid} is already deleted; nothing to do")
        when = now or times.now()
        written = []
        for v in targets:
            when = _event_time(store_root, dsid, when)
            t = Tombstone(dsid, v, reason, times.format_utc(when), who,
                          f"{bundles.format_version(when)}.{dsid}")
            data = json.dumps(t.to_json(), sort_keys=True, indent=1).encode() + b"\n"
            p = path(store_root, dsid, v)
            try:
                if not create_exclusive(p, data, mode=0o444):
                    raise DssError(f"{p} appeared while deleting; run `dss bundles list --all`")
            except OSError as e:
                raise from_os_error(e, str(p), writing=True) from e
            written.append(t)
            when += timedelta(microseconds=1)
    for t in written:
        logger.info("dataset %s: bundle version %s deleted by %s: %s", dsid, t.version, who, reason)
    return written


def event_of(store_root: Path, t: Tombstone) -> tuple[events.Event, list[str]]:
    """The tombstone's `bundle.deleted` event, and the paths of the version it kills (what
    subscribers' path globs match against)."""
    manifest = bundle_store.load(store_root, t.dataset_id, t.version)
    head = manifest.head
    when = times.parse_utc(t.deleted_at)
    event = events.bundle_deleted(t.dataset_id, t.version, head.commit, head.ref, reason=t.reason,
                                  when=when)
    if event.event_id != t.event_id:
        raise DssError(f"tombstone of {t.dataset_id}@{t.version} names event {t.event_id}, but its "
                       f"time makes {event.event_id}")
    return event, [str(f["path"]) for f in manifest.files]

"""`dss sync`'s repair of what a failed hook run missed: bundle versions, events, deliveries.

Versions are rebuilt from the bare repo's reflog (the hook installer turns it on), each with its
push time; a version whose event file is missing gets its deliveries enqueued and its event written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ria_store import bare_repo
from ria_store.errors import DssError, one_line
from ria_store.layout import dataset_relpath

from ..history import bundle_store, bundles, events, meta_records, tombstones
from ..webhooks import outbox
from .install import has_hook
from .publish import publish

logger = logging.getLogger(__name__)


@dataclass
class CatchUp:
    rebuilt: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def rebuild_versions(root: Path, dsid: str, repo: Path, out: CatchUp) -> None:
    """Record every pushed commit of every branch that has no bundle version yet."""
    for ref, head in bare_repo.branches(repo).items():
        if not bundles.is_recorded_branch(ref):
            continue
        pushes = bare_repo.reflog(repo, ref)
        if not pushes or pushes[-1][1] != head:
            pushes.append((0, head))  # no reflog for the current head: record it now
        for stamp, commit in pushes:
            when = datetime.fromtimestamp(stamp, timezone.utc) if stamp else None
            try:
                rec = bundle_store.record(root, dsid, repo, ref, commit=commit, now=when, rebuilt=True)
            except (DssError, OSError) as e:
                out.problems.append(f"{dsid} {ref} {commit[:12]}: {one_line(e)}")
                continue
            if rec is not None:
                out.rebuilt.append(rec.manifest.head.bundle_fqid)


def notify_missing(root: Path, dsid: str, out: CatchUp) -> None:
    """Publish the event of every version, tombstone and metadata record whose event file is
    missing."""
    log = bundle_store.read_log(root, dsid)
    by_version = {e.version: e for e in log}
    for entry in log:
        event = events.bundle_created(dsid, entry.version, entry.commit, entry.ref)
        if events.event_path(root, event.event_id).is_file():
            continue
        try:
            manifest = bundle_store.load(root, dsid, entry.version)
            parent = manifest.head.parent_version
            before = bundle_store.load(root, dsid, parent).files if parent in by_version else None
            publish(root, event, bundles.changed_paths(before, manifest.files))
            out.notified.append(event.event_id)
        except (DssError, OSError) as e:
            out.problems.append(f"event of {dsid}@{entry.version}: {one_line(e)}")
    for t in tombstones.dead(root, dsid).values():
        if not t.event_id or events.event_path(root, t.event_id).is_file():
            continue  # (an unreadable tombstone names no event: its warning is in the log)
        try:
            event, paths = tombstones.event_of(root, t)
            publish(root, event, paths)
            out.notified.append(event.event_id)
        except (DssError, OSError) as e:
            out.problems.append(f"deletion event of {dsid}@{t.version}: {one_line(e)}")
    for rec in meta_records.records(root, dsid):
        if not rec.event_id or events.event_path(root, rec.event_id).is_file():
            continue
        try:
            publish(root, meta_records.event_of(rec), [])
            out.notified.append(rec.event_id)
        except (DssError, OSError, ValueError) as e:
            out.problems.append(f"metadata event of {dsid} at {rec.at}: {one_line(e)}")


def catch_up(root: Path, dsids: list[str], repo_of: dict[str, Path]) -> CatchUp:
    out = CatchUp()
    for dsid in dsids:
        repo = repo_of[dsid]
        try:
            bare_repo.update_server_info(repo)
        except DssError as e:
            # a store this user may only read: fine as long as there was nothing to refresh
            if not bare_repo.server_info_current(repo):
                out.problems.append(f"{dsid}: info/refs is out of date and could not be refreshed "
                                    f"({one_line(e)}); rerun `dss sync` as a user who may write the store")
        rebuild_versions(root, dsid, repo, out)
        notify_missing(root, dsid, out)
    if out.notified:
        outbox.spawn_deliverer(root)
    return out


def catch_up_store(root: Path, dsids: list[str]) -> CatchUp:
    """Catch up the datasets among `dsids` whose bare repo runs our hook (only their bundles are
    kept: a dataset without the hook never had versions to miss)."""
    repo_of = {d: root / dataset_relpath(d) for d in dsids}
    hooked = sorted(d for d, repo in repo_of.items() if has_hook(repo))
    return catch_up(root, hooked, repo_of)

"""What the post-update hook does after a push: bundle versions, events, deliveries, mirroring.

The synchronous part (manifest, event, outbox entries) is plain file I/O and git plumbing, so the
push is barely slowed; webhook delivery and uploads to the mirrors run in detached processes.
Nothing here may fail the push: every problem is printed for the pusher and `dss sync` catches up.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ria_store import bare_repo
from ria_store.atomic import makedirs_durable
from ria_store.errors import DssError, LayoutError, one_line
from ria_store.layout import VERSION_FILE, check_dataset_id
from ria_store.sharing import open_created

from ..config import paths
from ..config.store_config import read_config
from ..history import bundle_store, bundles, events
from ..webhooks import outbox
from .publish import publish

logger = logging.getLogger(__name__)


@dataclass
class HookResult:
    """What one run recorded, and what went wrong (printed to the pusher)."""

    root: Path
    dataset_id: str
    recorded: list[bundle_store.Recorded] = field(default_factory=list)
    events: list[events.Event] = field(default_factory=list)
    queued: int = 0
    problems: list[str] = field(default_factory=list)


def locate(repo: Path) -> tuple[Path, str]:
    """(store root, dataset id) of a dataset's bare repo at `<root>/<id[:3]>/<id[3:]>`."""
    repo = repo.resolve()
    root, dsid = repo.parent.parent, repo.parent.name + repo.name
    try:
        check_dataset_id(dsid)
    except DssError as e:
        raise LayoutError(f"{repo} is not a dataset directory of a RIA store ({e})") from e
    if not (root / VERSION_FILE).is_file():
        raise LayoutError(f"{root} has no {VERSION_FILE}: {repo} is not inside a RIA store")
    return root, dsid


def notify(root: Path, recorded: bundle_store.Recorded, result: HookResult) -> None:
    """Publish the version's bundle.created event (its deliveries queued, then the event written)."""
    head = recorded.manifest.head
    event = events.bundle_created(head.dataset_id, head.version, head.commit, head.ref)
    result.queued += publish(root, event, recorded.changed)
    result.events.append(event)


def run(repo: Path, refs: Sequence[str]) -> HookResult:
    """The hook's synchronous part for the pushed `refs`."""
    root, dsid = locate(repo)
    result = HookResult(root, dsid)
    try:
        bare_repo.update_server_info(repo)
    except DssError as e:
        result.problems.append(one_line(e))
    for ref in refs:
        if not bundles.is_recorded_branch(ref):
            logger.info("dataset %s: %s is not a dataset branch; no bundle version", dsid, ref)
            continue
        try:
            rec = bundle_store.record(root, dsid, repo, ref)
            if rec is not None:
                result.recorded.append(rec)
                notify(root, rec, result)
        except (DssError, OSError) as e:
            result.problems.append(f"{ref}: {one_line(e)}")
    return result


def spawn_followups(root: Path, dsid: str, queued: int) -> None:
    """Deliver webhooks and mirror the git side, detached from the push."""
    if queued:
        outbox.spawn_deliverer(root)
    try:
        mirrored = bool(read_config(root).mirrors)
    except DssError as e:
        logger.warning("%s", e)
        mirrored = False
    if not mirrored:
        return
    log_path = root / paths.GIT_SYNC_LOG
    try:
        makedirs_durable(log_path.parent)
        # handed to the child, closed right after; group-writable in a group-shared store
        log = os.fdopen(open_created(log_path, os.O_WRONLY | os.O_APPEND, 0o664), "ab")
    except OSError as e:
        logger.warning("cannot open %s (%s); mirroring output goes nowhere", log_path, e)
        log = open(os.devnull, "ab")
    with log:
        # Failures land in the log with `dss: ...` lines; `dss sync` later copies whatever was missed.
        subprocess.Popen([sys.executable, "-m", "dss_remote.cli", "sync", str(root), "--dataset", dsid,
                          "--git-only", "--quiet"],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the installed hook; always exits 0 (a post-update hook cannot undo a push)."""
    refs = list(sys.argv[1:] if argv is None else argv)
    repo = Path(os.environ.get("GIT_DIR", "."))
    try:
        result = run(repo, refs)
        spawn_followups(result.root, result.dataset_id, result.queued)
    except (DssError, OSError) as e:
        print(f"dss: warning: post-update hook: {one_line(e)}; run `dss sync` on the store", file=sys.stderr)
        return 0
    for v in result.recorded:
        print(f"dss: bundle version {v.manifest.head.bundle_fqid} ({v.manifest.head.ref})", file=sys.stderr)
    for p in result.problems:
        print(f"dss: warning: post-update hook: {p}; run `dss sync` on the store to catch up",
              file=sys.stderr)
    return 0


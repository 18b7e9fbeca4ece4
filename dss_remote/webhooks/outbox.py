"""The webhook outbox: enqueueing, dead letters, quarantine, the deliverer lock and its start.

`dss/outbox/<subscription id>/<event id>.json` is a delivery still to make; it is written when the
event is enqueued (by the post-update hook), rewritten atomically after each failed attempt, and
removed only after the receiver answered 2xx, so a crash at any point loses nothing. Deliveries
given up on move to `dss/outbox-dead/` (with the reason and the last error), files that cannot be
read to `dss/outbox-quarantine/` (with a `.reason` beside them); the entry format is in
entry_file.py. Enqueueing is plain file I/O and imports nothing heavy: it runs inside `git push`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ria_store.atomic import create_exclusive, fsync_dir, makedirs_durable, write_bytes_atomic
from ria_store.errors import DssError, WriteError, from_os_error
from ria_store.locks import FileLock
from ria_store.sharing import open_created

from ..config import paths
from ..history import times
from ..history.events import Event
from . import subscriptions
from .entry_file import (
    CorruptEntryError,
    Entry,
    delivery_id,
    dumps,
    entry_files,
    entry_path,
    load_entry,
    pending_paths,
)

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
REASON_SUFFIX = ".reason"
LOG_MAX = 10 << 20


def enqueue(store_root: Path, event: Event, changed_paths: Sequence[str]) -> int:
    """Queue `event` for every subscription it matches; return how many subscribers will get it.

    A subscription matches when its `dataset` (if set) is the event's and its `path` glob (if set)
    matches one of `changed_paths` (the paths the bundle version added, changed or removed), and
    its query (if any) matches the event's bundle document (query_filter.py). An entry already
    queued for the same subscription and event is kept as it is (and counted). Fast enough for
    the push hook: a directory listing and one small file per subscription, and the document
    built once, only when a subscription with a query is left after the other filters.
    """
    now = time.time()
    queued = 0
    failures: list[str] = []
    document = None
    for sub in subscriptions.load_all(store_root):
        if sub.has_query and document is None:
            from .query_filter import EventDocument  # noqa: PLC0415  (only stores with queries load it)

            document = EventDocument(store_root, event)
        if not sub.matches(event, changed_paths, document):
            continue
        entry = Entry(entry_path(store_root, sub.id, event.event_id), sub.id, event,
                      delivery_id(sub.id, event.event_id), 0, now, now)
        try:
            created = create_exclusive(entry.path, dumps(entry.to_json()))
        except OSError as e:
            failures.append(str(from_os_error(e, str(entry.path), writing=True)))
            continue
        queued += 1
        logger.info("event %s queued for subscription %s%s", event.event_id, sub.id,
                    "" if created else " (already queued)")
    if failures:
        raise WriteError(f"event {event.event_id}: {len(failures)} webhook deliveries not queued "
                         f"({failures[0]}); fix dss/outbox (permissions, space), then `dss sync` "
                         "queues it again")
    return queued


def dead_letter(store_root: Path, entry: Entry, reason: str) -> Path:
    """Move an entry to `dss/outbox-dead/` with why; written there before it leaves the outbox."""
    target = store_root / paths.OUTBOX_DEAD / entry.subscription_id / entry.path.name
    data = entry.to_json() | {"reason": reason, "dead_at": times.format_utc(time.time())}
    try:
        write_bytes_atomic(target, dumps(data))
        entry.path.unlink(missing_ok=True)
    except OSError as e:
        raise from_os_error(e, str(target), writing=True) from e
    logger.warning("delivery of event %s to subscription %s given up: %s%s (kept in %s; resend with "
                   "`dss deliver --retry-dead`)", entry.event.event_id, entry.subscription_id, reason,
                   f"; last error: {entry.last_error}" if entry.last_error else "", target)
    return target


def quarantine(store_root: Path, path: Path, reason: str) -> FailedDelivery:
    """Move an unreadable outbox file aside, with a `.reason` file beside it."""
    target = store_root / paths.OUTBOX_QUARANTINE / path.parent.name / path.name
    try:
        write_bytes_atomic(target.with_name(target.name + REASON_SUFFIX), reason.encode() + b"\n")
        os.replace(path, target)
        fsync_dir(target.parent)
    except OSError as e:
        raise from_os_error(e, str(target), writing=True) from e
    logger.warning("%s; moved to %s (fix it and move it back, or delete it)", reason, target)
    return _quarantined(target)


def pending_count(store_root: Path, subscription_id: str) -> int:
    """How many deliveries are queued for one subscriber."""
    return len(pending_paths(store_root, subscription_id))


def orphan_reason(subscription_id: str) -> str:
    return f"subscription {subscription_id} was deleted"


@dataclass(frozen=True)
class FailedDelivery:
    """A delivery that needs an admin: given up on (`dead`) or unreadable (`quarantined`).

    `attempts` is 0 when unknown (a quarantined file); `last_error` is the last delivery error (None
    if never attempted); `reason` says why the delivery is here; `path` is its file.
    """

    state: Literal["dead", "quarantined"]
    subscription_id: str
    event_id: str
    attempts: int
    last_error: str | None
    reason: str
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "subscription_id": self.subscription_id, "event_id": self.event_id,
                "attempts": self.attempts, "last_error": self.last_error, "reason": self.reason,
                "path": str(self.path)}


def _dead(path: Path) -> FailedDelivery:
    try:
        obj = json.loads(path.read_bytes())
        entry = load_entry(path)
        return FailedDelivery("dead", entry.subscription_id, entry.event.event_id, entry.attempts,
                              entry.last_error, str(obj.get("reason") or "given up"), path)
    except (OSError, ValueError, DssError) as e:
        return FailedDelivery("dead", path.parent.name, path.name.removesuffix(".json"), 0, None,
                              f"dead-letter file is corrupt ({e})", path)


def _quarantined(path: Path) -> FailedDelivery:
    try:
        reason = path.with_name(path.name + REASON_SUFFIX).read_text(errors="replace").strip()
    except OSError:
        reason = "unreadable outbox entry"
    attempts, last_error = 0, None
    try:
        obj = json.loads(path.read_bytes())
        if isinstance(obj, dict):
            if isinstance(obj.get("attempts"), int):
                attempts = obj["attempts"]
            if isinstance(obj.get("last_error"), str):
                last_error = obj["last_error"]
    except (OSError, ValueError):
        pass
    return FailedDelivery("quarantined", path.parent.name, path.name.removesuffix(".json"), attempts,
                          last_error, reason, path)


def iter_failed(store_root: Path) -> Iterator[FailedDelivery]:
    """Dead-lettered and quarantined deliveries of the store, oldest event first.

    Dead letters (`dss/outbox-dead/<subscription>/<event>.json`) are deliveries given up on: the
    retry schedule ran out, or their subscription was deleted; `dss deliver --retry-dead` sends
    them again. Quarantined files (`dss/outbox-quarantine/…`) were unreadable outbox entries; an
    admin repairs them and moves them back to `dss/outbox/`, or deletes them. Reading never
    changes anything.
    """
    found = [_dead(p) for p in entry_files(store_root / paths.OUTBOX_DEAD)]
    found += [_quarantined(p) for p in entry_files(store_root / paths.OUTBOX_QUARANTINE)]
    yield from sorted(found, key=lambda f: (f.event_id, f.subscription_id, f.state))


def retry_dead(store_root: Path) -> int:
    """Move dead letters back to the outbox with their attempts reset; return how many.

    A dead letter whose subscription no longer exists stays where it is (with a warning).
    """
    live = subscriptions.ids(store_root)
    moved = 0
    now = time.time()
    for path in list(entry_files(store_root / paths.OUTBOX_DEAD)):
        try:
            dead = load_entry(path)
        except FileNotFoundError:
            continue
        except CorruptEntryError as e:
            quarantine(store_root, path, str(e))
            continue
        if dead.subscription_id not in live:
            logger.warning("dead letter %s stays: %s (subscribe again to receive such events)",
                           path, orphan_reason(dead.subscription_id))
            continue
        fresh = replace(dead, path=entry_path(store_root, dead.subscription_id, dead.event.event_id),
                        attempts=0, enqueued=now, next_attempt=now, first_attempt=None,
                        last_attempt=None, last_error=None)
        try:
            create_exclusive(fresh.path, dumps(fresh.to_json()))  # if present, it is pending anyway
            path.unlink()
        except OSError as e:
            raise from_os_error(e, str(fresh.path), writing=True) from e
        moved += 1
        logger.info("dead letter %s queued again", path)
    return moved


class DeliverLock:
    """The store's deliverer lock (`flock` on `dss/outbox/.lock`), only ever tried, never waited for.

    Whoever holds it is the one deliverer of the store. Handshake with enqueue: a deliverer
    releases the lock, then looks at the outbox once more and takes the lock again if it finds
    work; a process that enqueued and then failed to take the lock can rely on that last look.
    """

    def __init__(self, store_root: Path) -> None:
        self.path = store_root / paths.OUTBOX / LOCK_NAME
        self._lock = FileLock(self.path)

    @property
    def held(self) -> bool:
        return self._lock.held

    def try_acquire(self) -> bool:
        if self._lock.held:
            return True
        if not self._lock.acquire(wait=False):
            return False
        os.ftruncate(self._lock.fd, 0)
        os.pwrite(self._lock.fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return True

    def release(self) -> None:
        self._lock.release()

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it (for messages)."""
        try:
            return self.path.read_text().strip() or "unknown process"
        except OSError:
            return "unknown process"


def dead_letter_orphans(store_root: Path) -> int | None:
    """Dead-letter the entries of deleted subscriptions now; None if a deliverer is running (it will)."""
    lock = DeliverLock(store_root)
    if not lock.try_acquire():
        return None
    try:
        live = subscriptions.ids(store_root)
        moved = 0
        for path in pending_paths(store_root):
            if path.parent.name in live:
                continue
            try:
                entry = load_entry(path)
            except (FileNotFoundError, CorruptEntryError):
                continue  # the deliverer quarantines what it cannot read
            dead_letter(store_root, entry, orphan_reason(entry.subscription_id))
            moved += 1
        return moved
    finally:
        lock.release()


def spawn_deliverer(store_root: Path) -> subprocess.Popen[bytes] | None:
    """Start `dss deliver STORE` in the background, detached; None when one is running already.

    The child runs `sys.executable -m dss_remote.cli` (no PATH needed) in a new session, with
    stdin from /dev/null and its output appended to `dss/logs/deliver.log`, so `git push` neither
    waits for it nor kills it. A running deliverer looks at the outbox again before it exits, so
    entries enqueued before this call are delivered either way. Call it after `enqueue` returned
    more than 0.
    """
    lock = DeliverLock(store_root)
    if not lock.try_acquire():
        logger.debug("a deliverer is running (%s); it will pick up the new entries", lock.holder())
        return None
    lock.release()
    store_root = store_root.absolute()
    log = store_root / paths.DELIVER_LOG
    try:
        makedirs_durable(log.parent)
        with contextlib.suppress(FileNotFoundError):
            if log.stat().st_size > LOG_MAX:  # keep one old log, not an ever-growing one
                os.replace(log, log.with_name(log.name + ".1"))
        fd = open_created(log, os.O_WRONLY | os.O_APPEND, 0o664)  # any member's deliverer appends
    except OSError as e:
        raise from_os_error(e, str(log), writing=True) from e
    try:
        return subprocess.Popen([sys.executable, "-m", "dss_remote.cli", "deliver", str(store_root)],
                                stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, cwd="/",
                                start_new_session=True, close_fds=True)
    except OSError as e:
        raise DssError(f"cannot start `dss deliver {store_root}` ({e.strerror or e}); the deliveries "
                       "stay queued: run it by hand or from cron") from e
    finally:
        os.close(fd)

"""`dss deliver`: the store's one deliverer, working through the outbox until nothing is left to do.

At most one runs per store (`outbox.DeliverLock`); a second one exits at once. Without `once` it
keeps going while entries are pending, sleeping until the next is due but looking at the outbox
every `poll` seconds for new ones, and exits when the outbox is empty. With `once` every entry
due is attempted at most once (cron). Before exiting it releases the lock and looks again: work
that arrived meanwhile (whose enqueuer found the lock taken) makes it take the lock and go on.

A subscription made through the HTTP API (it has an `owner`) has its callback host checked again
before every attempt (`callback_guard`: DNS answers change after subscribe time); a refused one
is a failed attempt with the guard's reason, retried and dead-lettered like any other, never sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ria_store.errors import DssError, NotFoundError
from ria_store.urls import redact_url

from ..config.delivery_policy import DeliveryPolicy
from ..config.store_config import read_config
from ..history import times
from . import callback_guard, entry_file, outbox, subscriptions
from . import request as webhooks
from .entry_file import CorruptEntryError, Entry
from .outbox import FailedDelivery
from .subscriptions import Subscription

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0


@dataclass
class DeliveryReport:
    """What one `dss deliver` run did."""

    delivered: int = 0
    failed: int = 0
    dead: list[FailedDelivery] = field(default_factory=list)
    quarantined: list[FailedDelivery] = field(default_factory=list)
    requeued: int = 0
    pending: int = 0
    busy: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "failed_attempts": self.failed,
                "dead": [d.to_json() for d in self.dead],
                "quarantined": [q.to_json() for q in self.quarantined],
                "requeued": self.requeued, "pending": self.pending, "busy": self.busy}


class Deliverer:
    """One run of the deliverer over a store's outbox (see the module docstring)."""

    def __init__(self, store_root: Path, policy: DeliveryPolicy, *, once: bool = False,
                 poll: float = POLL_SECONDS) -> None:
        self.store_root = store_root
        self.policy = policy
        self.once = once
        self.poll = poll
        self.report = DeliveryReport()
        self._lock = outbox.DeliverLock(store_root)
        self._entries: dict[Path, Entry] = {}  # only the lock holder rewrites entries: safe to cache
        self._attempted: set[Path] = set()
        self._session: requests.Session | None = None
        self._allow_private: bool | None = None  # the store config's, read when first needed

    def run(self) -> DeliveryReport:
        if not self._lock.try_acquire():
            self.report.busy = self._lock.holder()
            logger.info("another deliverer holds %s (%s); it delivers new entries too",
                        self._lock.path, self.report.busy)
            return self.report
        try:
            while True:
                wait = self._pass()
                if wait is not None:
                    time.sleep(min(max(wait, 0.0), self.poll))
                    continue
                self._lock.release()
                if not self._work_left() or not self._lock.try_acquire():
                    break  # nothing new, or the deliverer that took the lock will see it
                self._entries.clear()  # another deliverer may have run in between: read afresh
        finally:
            self._lock.release()
            if self._session is not None:
                self._session.close()
        self.report.pending = len(self._entries)
        return self.report

    def _due(self, entry: Entry) -> float:
        return entry.next_attempt if entry.attempts else self.policy.first_due(entry.enqueued)

    def _scan(self, fix: bool) -> tuple[list[Entry], int]:
        """The outbox's entries (cached ones as we left them) and how many files are unreadable;
        with `fix`, unreadable files are quarantined."""
        paths = entry_file.pending_paths(self.store_root)
        present = set(paths)
        self._entries = {p: e for p, e in self._entries.items() if p in present}
        corrupt = 0
        for p in paths:
            if p in self._entries:
                continue
            try:
                self._entries[p] = entry_file.load_entry(p)
            except FileNotFoundError:
                continue
            except CorruptEntryError as e:
                corrupt += 1
                if fix:
                    self.report.quarantined.append(outbox.quarantine(self.store_root, p, str(e)))
        return list(self._entries.values()), corrupt

    def _pass(self) -> float | None:
        """Attempt every due entry once; seconds until the next is due, or None when done."""
        entries, _ = self._scan(fix=True)
        live = subscriptions.ids(self.store_root)
        now = time.time()
        due = []
        for e in entries:
            if e.subscription_id not in live:
                self._dead(e, outbox.orphan_reason(e.subscription_id))
            elif self._due(e) <= now and not (self.once and e.path in self._attempted):
                due.append(e)
        due.sort(key=lambda e: (self._due(e), e.event.event_id))
        subs: dict[str, Subscription | DssError] = {}
        unreachable: dict[str, str] = {}
        for e in due:
            self._attempt(e, subs, unreachable)
        if self.once or not self._entries:
            return None
        return min(self._due(e) for e in self._entries.values()) - time.time()

    def _work_left(self) -> bool:
        """After releasing the lock: whether the outbox holds work this run must not leave behind."""
        entries, corrupt = self._scan(fix=False)
        if corrupt:
            return True
        if not self.once:
            return bool(entries)
        live = subscriptions.ids(self.store_root)
        now = time.time()
        return any(e.subscription_id not in live or (self._due(e) <= now and e.path not in self._attempted)
                   for e in entries)

    def _subscription(self, sub_id: str, subs: dict[str, Subscription | DssError]
                      ) -> Subscription | DssError:
        if sub_id not in subs:
            try:
                subs[sub_id] = subscriptions.load(self.store_root, sub_id)
            except DssError as e:  # NotFoundError included
                subs[sub_id] = e
        return subs[sub_id]

    def _attempt(self, entry: Entry, subs: dict[str, Subscription | DssError],
                 unreachable: dict[str, str]) -> None:
        self._attempted.add(entry.path)
        sub = self._subscription(entry.subscription_id, subs)
        if isinstance(sub, NotFoundError):
            self._dead(entry, outbox.orphan_reason(entry.subscription_id))
            return
        if isinstance(sub, DssError):
            self._failed(entry, str(sub))
            return
        refused = self._refused(sub)
        if refused is not None:
            self._failed(entry, f"not sent: {refused}")
            return
        if sub.id in unreachable:  # one timeout per receiver and pass, not one per entry
            self._failed(entry, f"not sent, as this receiver just failed: {unreachable[sub.id]}")
            return
        if self._session is None:
            self._session = webhooks.new_session()
        outcome = webhooks.post(self._session, sub, entry, self.policy.timeout)
        if outcome.ok:
            entry_file.remove(entry)
            self._entries.pop(entry.path, None)
            self.report.delivered += 1
            logger.info("delivered event %s to %s (subscription %s, delivery %s, HTTP %s, attempt %d)",
                        entry.event.event_id, redact_url(sub.url), sub.id, entry.delivery_id,
                        outcome.status, entry.attempts + 1)
            return
        error = outcome.error or "failed"
        if outcome.unreachable:
            unreachable[sub.id] = error
        self._failed(entry, error)

    def _refused(self, sub: Subscription) -> str | None:
        """Why the guard refuses `sub`'s callback now; None to send (admin-made ones always)."""
        if sub.owner is None:
            return None
        try:
            if self._allow_private is None:
                self._allow_private = read_config(self.store_root).server.allow_private_callbacks
            callback_guard.check_callback(sub.url, allow_private=self._allow_private)
        except DssError as e:  # CallbackRefusedError, or a config that cannot be read
            return str(e)
        return None

    def _failed(self, entry: Entry, error: str) -> None:
        now = time.time()
        attempts = entry.attempts + 1
        first = entry.first_attempt if entry.first_attempt is not None else now
        nxt = self.policy.next_attempt(attempts, now, first)
        updated = replace(entry, attempts=attempts, first_attempt=first, last_attempt=now,
                          last_error=error, next_attempt=nxt if nxt is not None else now)
        if nxt is None:
            self._dead(updated, f"gave up after {attempts} attempts over {now - first:.0f} s")
            return
        entry_file.save(updated)
        self._entries[entry.path] = updated
        self.report.failed += 1
        logger.warning("delivery of event %s to subscription %s failed (attempt %d): %s; next attempt "
                       "at %s", entry.event.event_id, entry.subscription_id, attempts, error,
                       times.format_utc(nxt))

    def _dead(self, entry: Entry, reason: str) -> None:
        path = outbox.dead_letter(self.store_root, entry, reason)
        self._entries.pop(entry.path, None)
        self.report.dead.append(FailedDelivery("dead", entry.subscription_id, entry.event.event_id,
                                               entry.attempts, entry.last_error, reason, path))


def deliver(store_root: Path, policy: DeliveryPolicy, *, once: bool = False, retry_dead: bool = False,
            poll: float = POLL_SECONDS) -> DeliveryReport:
    """Deliver the store's due outbox entries (see the module docstring); `retry_dead` first moves
    the dead letters back to the outbox with their attempts reset."""
    requeued = outbox.retry_dead(store_root) if retry_dead else 0
    report = Deliverer(store_root, policy, once=once, poll=poll).run()
    report.requeued = requeued
    return report

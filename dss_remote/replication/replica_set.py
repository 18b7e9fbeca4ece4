"""ReplicaSet: one dataset across its replicas; verified reads in cost order, parallel quorum writes."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ria_store.atomic import TMP_PREFIX
from ria_store.errors import DssError, NotFoundError, UnavailableError, WriteError, from_os_error
from ria_store.keys import AnnexKey

from ..backends.base import Progress
from . import key_checksums, repair_queue
from .replica import Failures, Replica, first_success, named

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _MinProgress:
    """Reports the bytes the slowest replica has written, from any writer thread."""

    def __init__(self, progress: Progress, replicas: int) -> None:
        self.progress = progress
        self.done = [0] * replicas
        self.reported = 0
        self.lock = threading.Lock()

    def for_replica(self, i: int) -> Progress:
        def update(total: int) -> None:
            with self.lock:
                self.done[i] = total
                low = min(self.done)
                if low > self.reported:
                    self.reported = low
                    self.progress(low)
        return update


class ReplicaSet:
    """The replicas of one dataset, cheapest first (the POSIX store, then its mirrors in order).

    Reads use every replica; writes, presence and removal only the writable ones (`writers`): a
    read-only mirror (http, or marked read_only) is filled by something else, so dss neither
    writes it nor counts it.

    - `present` is True when `quorum` writers hold the key (see there); UnavailableError only
      when no writer could answer (git-annex must then hear "cannot tell", not "absent").
    - `retrieve` tries replicas in order; each read is verified (size, and the key's checksum
      where it has one) and any failure falls back to the next; the error names each replica.
    - `store` writes all writers in parallel and succeeds when `quorum` of them took the key;
      every writer that missed it gets a repair-queue entry on the writers that have it.
      Nothing is rolled back: a complete object is never harmful, and removing it could race
      with another clone that stored the same key. Where the POSIX store is written, a thread
      computes the key's DSS checksums meanwhile (`key_checksums`), recorded once the store took
      the key; a failure there is logged, never the write's (`dss checksums` fills it in).
    - `remove` removes from every writer, and fails (so git-annex keeps the location) if any
      writer may still hold the key.
    """

    def __init__(self, replicas: list[Replica], quorum: int | None = None) -> None:
        if not replicas:
            raise ValueError("a ReplicaSet needs at least one replica")
        self.replicas = replicas
        #: the store itself reached read-only (ria+http): this clone writes nothing anywhere, and a
        #: key is present when any replica holds it
        self.read_only = not replicas[0].backend.writable
        self.writers = [] if self.read_only else [r for r in replicas if r.backend.writable]
        self.quorum = (len(self.writers) if quorum is None else quorum) if self.writers else 1
        self._pool: ThreadPoolExecutor | None = None
        self._sums_pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> ReplicaSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _why(self, failures: Failures) -> str:
        return failures.line(named=len(self.replicas) > 1)

    def named(self, name: str) -> Replica:
        """The replica called `name`; DssError naming the replicas there are."""
        return named(((r.name, r) for r in self.replicas), name)

    def _each(self, work: Callable[[int, Replica], T]) -> list[T | DssError]:
        """Run `work` on every writer (in parallel when there are several); DssErrors are
        returned in place of results."""
        def one(i: int) -> T | DssError:
            try:
                return work(i, self.writers[i])
            except DssError as e:
                return e

        if len(self.writers) == 1:
            return [one(0)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(self.writers),
                                            thread_name_prefix="dss-replica")
        return list(self._pool.map(one, range(len(self.writers))))

    def _failed(self, results: list[T | DssError]) -> Failures:
        """The writers whose result in `results` (from `_each`) is an error."""
        failures = Failures()
        for r, e in zip(self.writers, results, strict=True):
            if isinstance(e, DssError):
                failures.add(r.name, e)
        return failures

    def present(self, key: AnnexKey) -> bool:
        """Present when `quorum` replicas hold the key: "stored as the store's policy asks".
        A key on fewer is absent, so `copy --to` writes it again (filling the replicas that miss
        it) and git-annex never counts a copy the policy does not consider safe. "Absent" is the
        safe side when some replicas cannot answer (git-annex only drops on "present"); only when
        none can answer is it "cannot tell" (an unmounted store without reachable mirrors)."""
        have = 0
        failures = Failures()
        asked = self.writers or self.replicas
        for i, r in enumerate(asked):
            try:
                if r.present(key):
                    have += 1
                    if have >= self.quorum:
                        return True
            except DssError as e:
                failures.add(r.name, e)
            if have + len(asked) - i - 1 < self.quorum and len(failures) <= i:
                # the quorum cannot hold any more and some replica answered: "absent" without
                # asking the rest (a new key costs the mirrors no request until it is stored)
                break
        if len(failures) == len(asked):
            raise UnavailableError(self._why(failures))
        if failures:
            logger.info("%s: on %d replicas, write_quorum %d; unknown on %s", key, have, self.quorum,
                        self._why(failures))
        return False

    def retrieve(self, key: AnnexKey, dst: Path, progress: Progress | None = None) -> None:
        """Every replica but the last is read into a temp file beside `dst`, verified, and renamed
        into place: git-annex verifies `dst` while it grows (tailing it), so bytes written there
        must never be taken back. The last replica (the only one, without mirrors) writes `dst`
        directly with a size check; git-annex's own verification covers its checksum."""
        last = self.replicas[-1]

        def attempt(r: Replica) -> None:
            if r is last:
                r.retrieve(key, dst, progress, checksum=False)
            else:
                self._retrieve_verified(r, key, dst, progress)

        def error(failures: Failures) -> DssError:
            kind = NotFoundError if failures.all_absent() else UnavailableError
            return kind(self._why(failures))

        first_success(self.replicas, attempt, error, f"{key}: read")

    @staticmethod
    def _retrieve_verified(r: Replica, key: AnnexKey, dst: Path, progress: Progress | None) -> None:
        tmp = dst.with_name(f"{TMP_PREFIX}{dst.name}")
        try:
            r.retrieve(key, tmp, progress)
            os.replace(tmp, dst)
        except DssError:
            raise  # NotFoundError is an OSError too
        except OSError as e:
            raise from_os_error(e, f"local file {dst}", writing=True) from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _refuse_read_only(self, what: str) -> None:
        if self.read_only:
            raise WriteError(f"cannot {what}: this remote reaches the store read-only "
                             f"({self.replicas[0].name}); push with a writable url "
                             "(git config remote.NAME.dss-url ria+file:///path/to/store)")

    def store(self, key: AnnexKey, src: Path, progress: Progress | None = None) -> None:
        self._refuse_read_only(f"store {key}")
        sums = self._start_checksums(key, src)
        tracker = _MinProgress(progress, len(self.writers)) if progress is not None else None

        def one(i: int, r: Replica) -> None:
            report = tracker.for_replica(i) if tracker is not None else None
            r.store(key, src, report)
            if report is not None:  # a replica that had the key already reported nothing
                report(src.stat().st_size)

        results = self._each(one)
        if sums is not None and not isinstance(results[0], DssError):
            self._record_checksums(key, sums)
        failures = self._failed(results)
        if not failures:
            return
        took = [r for r, e in zip(self.writers, results, strict=True) if not isinstance(e, DssError)]
        for name, e in failures:
            repair_queue.record([r.backend for r in took], name, self.replicas[0].dsid, key.text, str(e))
        if len(took) >= self.quorum:
            logger.warning("%s: stored on %d of %d replicas (write_quorum %d); queued for repair: %s",
                           key, len(took), len(self.writers), self.quorum, self._why(failures))
            return
        raise WriteError(
            f"{self._why(failures)} ({len(took)} of {len(self.writers)} replicas took {key}, "
            f"write_quorum needs {self.quorum}; fix the replica and retry, or run `dss sync` later)")

    def _store_root(self) -> Path | None:
        """The POSIX store's root when it is the first writer (a directory on this machine)."""
        if not self.writers or self.writers[0] is not self.replicas[0]:
            return None
        return self.replicas[0].backend.local_root

    def _start_checksums(self, key: AnnexKey, src: Path) -> Future[key_checksums.KeyChecksums] | None:
        """Start hashing `src` beside the uploads when the POSIX store is written and has no
        record of `key` yet; hashlib releases the GIL on large updates, so the pass runs on a
        core of its own while the replicas copy."""
        root = self._store_root()
        if root is None:
            return None
        dsid = self.replicas[0].dsid
        try:
            if key_checksums.read(root, dsid, key.text) is not None:
                return None
        except DssError as e:  # a corrupt record, an unreadable directory: logged, never the write's
            self._not_recorded(key, root, e)
            return None
        if self._sums_pool is None:
            self._sums_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dss-checksums")
        return self._sums_pool.submit(key_checksums.compute_file, src, key)

    def _record_checksums(self, key: AnnexKey, sums: Future[key_checksums.KeyChecksums]) -> None:
        root = self._store_root()
        assert root is not None  # _start_checksums only starts where there is one
        dsid = self.replicas[0].dsid
        try:
            key_checksums.record(root, dsid, key.text, sums.result())
        except Exception as e:  # never fail a write the replicas took; `dss checksums` redoes it
            self._not_recorded(key, root, e)

    def _not_recorded(self, key: AnnexKey, root: Path, e: Exception) -> None:
        logger.warning("%s: checksums not recorded (%s); `dss checksums %s --dataset %s` fills them in",
                       key, e, root, self.replicas[0].dsid)
        logger.debug("checksums of %s", key, exc_info=True)

    def remove(self, key: AnnexKey) -> None:
        self._refuse_read_only(f"remove {key}")
        results = self._each(lambda _i, r: r.remove(key))
        failures = self._failed(results)
        if failures:
            raise WriteError(f"{self._why(failures)} (the key may still be there; fix and drop again)")

    def whereis(self, key: AnnexKey) -> str | None:
        places = []
        for r in self.replicas:
            try:
                where = r.whereis(key)
            except DssError:
                continue
            if where:
                places.append(where)
        return " ".join(places) or None

    def close(self) -> None:
        """Shut down the writer threads (waiting for any running write); the set can still be
        used afterwards, and then starts new ones."""
        if self._sums_pool is not None:
            self._sums_pool.shutdown(wait=True)
            self._sums_pool = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            logger.debug("dataset %s: replica writer threads shut down", self.replicas[0].dsid)

"""The server's derived index: every bundle version's files and every file version, in SQLite.

Built from the manifests, kept fresh by following the event journal (checked at most once per
`refresh_seconds` per process; a stat of each dataset's version log catches versions `dss sync`
rebuilt, whose events sort in the journal's past), rebuilt from scratch when missing, corrupt or
of an older schema.
It holds nothing the store does not: deleting the cache directory only costs a rebuild.

Several workers share one cache directory. One builder at a time (a FileLock); a full build
writes a new generation file and then points `current` at it, and an update is one transaction
in WAL mode, so a reader never sees a half-built index.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ria_store.atomic import makedirs_durable, write_bytes_atomic
from ria_store.errors import DssError
from ria_store.locks import FileLock

from ..history import bundle_store, events, tombstones
from . import dss_mapping
from .errors import ApiError, NeedsThread

logger = logging.getLogger(__name__)

SCHEMA = 4
_CURRENT = "current"
_LOCK = "build.lock"
_DDL = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE bundles (dataset_id TEXT NOT NULL, version TEXT NOT NULL, file_count INTEGER NOT NULL,
                      PRIMARY KEY (dataset_id, version));
CREATE TABLE contents (file_uuid TEXT NOT NULL, file_version TEXT NOT NULL, dataset_id TEXT NOT NULL,
                       path TEXT NOT NULL, content TEXT NOT NULL, type TEXT NOT NULL,
                       size INTEGER NOT NULL, content_type TEXT NOT NULL,
                       PRIMARY KEY (file_uuid, file_version));
CREATE INDEX contents_of_dataset ON contents (dataset_id);
CREATE TABLE logs (dataset_id TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE bundle_files (dataset_id TEXT NOT NULL, version TEXT NOT NULL, seq INTEGER NOT NULL,
                           file_uuid TEXT NOT NULL, file_version TEXT NOT NULL,
                           PRIMARY KEY (dataset_id, version, seq));
CREATE INDEX bundle_files_of_file ON bundle_files (file_uuid, file_version);
"""


@dataclass(frozen=True)
class IndexedFile:
    """One file version: where it is in which dataset, and what its content is."""

    file_uuid: str
    file_version: str
    dataset_id: str
    path: str
    type: str
    content: str
    size: int
    content_type: str

    @property
    def row(self) -> dict[str, Any]:
        """The file as a manifest row (what checksums and content are read from)."""
        out: dict[str, Any] = {"path": self.path, "type": self.type, "size": self.size,
                               "content_type": self.content_type}
        out["key" if self.type == "annex" else "git_blob"] = self.content
        return out


#: a file version some live bundle version lists (one of a tombstoned version alone is not served;
#: its row stays, so file version ids do not depend on whether the index was rebuilt since)
_LISTED = ("EXISTS (SELECT 1 FROM bundle_files b WHERE b.file_uuid = c.file_uuid AND "
           "b.file_version = c.file_version)")
_FILE_COLUMNS = "c.file_uuid, c.file_version, c.dataset_id, c.path, c.type, c.content, c.size, c.content_type"


def default_cache_dir(store_root: Path) -> Path:
    """`$XDG_CACHE_HOME/dss-remote/serve/<hash of the store's real path>`."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(str(store_root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return base / "dss-remote" / "serve" / digest[:24]


class FileIndex:
    """The index of one store in one cache directory."""

    def __init__(self, store_root: Path, cache_dir: Path | None = None, *,
                 refresh_seconds: float = 1.0) -> None:
        self.store_root = store_root
        self.cache_dir = cache_dir or default_cache_dir(store_root)
        self.refresh_seconds = refresh_seconds
        self._checked = -float("inf")
        self._mutex = threading.Lock()
        #: each thread's open connection to the current generation (opening one, and SQLite
        #: reading the schema, cost about 100 times the query of a file's GET)
        self._local = threading.local()
        #: a query failed on a damaged database whose meta table still reads fine
        self._must_rebuild = False
        #: the generation `current` named when refresh() last looked (read once per check, not
        #: per request: reading the file was a sixth of a small file's GET)
        self._current: Path | None = None

    # -- reading ---------------------------------------------------------------------------------

    def bundle_versions(self, dataset_id: str) -> list[str]:
        with self._reader() as db:
            return [r[0] for r in db.execute(
                "SELECT version FROM bundles WHERE dataset_id = ? ORDER BY version", (dataset_id,))]

    def file_count(self, dataset_id: str, version: str) -> int | None:
        with self._reader() as db:
            r = db.execute("SELECT file_count FROM bundles WHERE dataset_id = ? AND version = ?",
                           (dataset_id, version)).fetchone()
        return None if r is None else int(r[0])

    def bundle_files(self, dataset_id: str, version: str, start: int, count: int) -> list[IndexedFile]:
        """Files `start`..`start+count-1` of a bundle version, in the manifest's (git's) order."""
        with self._reader() as db:
            rows = db.execute(
                f"SELECT {_FILE_COLUMNS} FROM bundle_files b JOIN contents c ON "
                "c.file_uuid = b.file_uuid AND c.file_version = b.file_version "
                "WHERE b.dataset_id = ? AND b.version = ? AND b.seq >= ? ORDER BY b.seq LIMIT ?",
                (dataset_id, version, start, count)).fetchall()
        return [IndexedFile(*r) for r in rows]

    def file(self, file_uuid: str, file_version: str | None = None, *, quick: bool = False
             ) -> IndexedFile | None:
        """A file version; the newest one without `file_version`. `quick`: NeedsThread instead of
        a refresh that is due (following the journal or a rebuild may take seconds)."""
        with self._reader(quick=quick) as db:
            if file_version is None:
                r = db.execute(f"SELECT {_FILE_COLUMNS} FROM contents c WHERE c.file_uuid = ? AND {_LISTED} "
                               "ORDER BY c.file_version DESC LIMIT 1", (file_uuid,)).fetchone()
            else:
                r = db.execute(f"SELECT {_FILE_COLUMNS} FROM contents c WHERE c.file_uuid = ? AND "
                               f"c.file_version = ? AND {_LISTED}", (file_uuid, file_version)).fetchone()
        return None if r is None else IndexedFile(*r)

    def all_bundles(self, prefix: str, after: tuple[str, str] | None, limit: int
                    ) -> list[tuple[str, str]]:
        """(dataset id, version) pairs whose uuid starts with `prefix`, in order, after `after`."""
        after = after or ("", "")
        with self._reader() as db:
            rows = db.execute(
                "SELECT dataset_id, version FROM bundles WHERE dataset_id >= ? AND dataset_id < ? "
                "AND (dataset_id > ? OR (dataset_id = ? AND version > ?)) "
                "ORDER BY dataset_id, version LIMIT ?",
                (prefix, prefix + "\uffff", after[0], after[0], after[1], limit)).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    @contextlib.contextmanager
    def _reader(self, *, quick: bool = False) -> Iterator[sqlite3.Connection]:
        if quick and not self._fresh():
            raise NeedsThread
        try:
            if not quick:
                self.refresh()
        except DssError as e:
            logger.error("index %s: %s", self.cache_dir, e)
            raise ApiError(503, "unavailable", "the server cannot read or build its index of the "
                           "store now; retry later (the cause is in the server's log)",
                           {"Retry-After": "10"}) from e
        try:
            db = self._thread_db()
        except (sqlite3.Error, OSError) as e:
            logger.error("index %s unreadable: %s", self.cache_dir, e)
            self._checked, self._current = -float("inf"), None  # look again on the next request
            raise ApiError(503, "unavailable", "the server's index of the store is unreadable; "
                           "retry (it is rebuilt)", {"Retry-After": "1"}) from e
        try:
            yield db
        except sqlite3.DatabaseError as e:
            logger.error("index %s failed: %s", self.cache_dir, e)
            self._drop_thread_db()
            self._checked, self._must_rebuild, self._current = -float("inf"), True, None
            raise ApiError(503, "unavailable", "the server's index of the store failed; retry (it "
                           "is rebuilt)", {"Retry-After": "1"}) from e

    def _fresh(self) -> bool:
        """Whether no refresh is due (read without the mutex: a quick read must never wait)."""
        return (self._current is not None and not self._must_rebuild
                and time.monotonic() - self._checked < self.refresh_seconds)

    def _thread_db(self) -> sqlite3.Connection:
        """This thread's connection to the generation `current` names now (a rebuild in any
        worker switches `current`: the next request here then opens the new one)."""
        path = self._current or self._current_path()
        cached: tuple[Path, sqlite3.Connection] | None = getattr(self._local, "db", None)
        if cached is not None and cached[0] == path:
            return cached[1]
        self._drop_thread_db()
        try:
            db = self._connect(path)
        except sqlite3.OperationalError:
            # another worker's rebuild replaced the generation between reading `current` and
            # opening it: `current` names the new one now
            path = self._current_path()
            db = self._connect(path)
        self._local.db = (path, db)
        return db

    def _drop_thread_db(self) -> None:
        cached: tuple[Path, sqlite3.Connection] | None = getattr(self._local, "db", None)
        self._local.db = None
        if cached is not None:
            cached[1].close()

    # -- keeping it fresh ------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """Bring the index up to the journal (at most once per `refresh_seconds` unless `force`)."""
        with self._mutex:
            if not force and time.monotonic() - self._checked < self.refresh_seconds:
                return
            with FileLock(self.cache_dir / _LOCK):
                if self._must_rebuild or not self._follow_journal():
                    self._build()
                try:
                    self._current = self._current_path()
                except OSError:
                    self._current = None
            self._checked, self._must_rebuild = time.monotonic(), False

    def _current_path(self) -> Path:
        name = (self.cache_dir / _CURRENT).read_text(encoding="utf-8").strip()
        if not name.startswith("index-") or "/" in name:
            raise OSError(f"{_CURRENT} names {name!r}")
        return self.cache_dir / name

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # mode=rw: a generation removed by a rebuild in another worker must fail to open, not be
        # created again empty
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=30)
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def _follow_journal(self) -> bool:
        """Apply the events after the index's cursor; False if the index must be rebuilt."""
        try:
            db = self._connect(self._current_path())
        except (OSError, sqlite3.Error):
            return False
        try:
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if meta.get("schema") != str(SCHEMA) or meta.get("store") != str(self.store_root.resolve()):
                logger.info("index %s: schema or store changed; rebuilding", self.cache_dir)
                return False
            cursor = meta.get("cursor") or None
            for event, path in events.iter_events(self.store_root, cursor):
                with db:
                    if event is not None and event.type == events.BUNDLE_CREATED:
                        self._add_version(db, event.dataset_id, event.version)
                    elif event is not None and event.type == events.BUNDLE_DELETED:
                        self._drop_version(db, event.dataset_id, event.version)
                    # past a corrupt event file too: it is warned about once, not every second
                    db.execute("UPDATE meta SET value = ? WHERE name = 'cursor'", (path.name[:-5],))
            self._add_unjournaled(db)
            return True
        except sqlite3.DatabaseError as e:
            logger.warning("index %s is corrupt (%s); rebuilding", self.cache_dir, e)
            return False
        finally:
            db.close()

    def _build(self) -> None:
        """A new generation from every manifest of the store, then `current` points at it."""
        makedirs_durable(self.cache_dir)
        name = f"index-{time.time_ns()}-{os.getpid()}.sqlite"
        path = self.cache_dir / name
        # the cursor first: an event written during the build is applied again, which is a no-op
        cursor = ""
        for _event, p in events.iter_events(self.store_root):
            cursor = p.name[:-5]
        started = time.monotonic()
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(_DDL)
            with db:
                db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema", str(SCHEMA)), ("store", str(self.store_root.resolve())),
                    ("cursor", cursor)])
                for dsid in bundle_store.datasets(self.store_root):
                    db.execute("INSERT INTO logs VALUES (?, ?)", (dsid, self._log_size(dsid)))
                    try:
                        versions = bundle_store.versions(self.store_root, dsid)
                    except DssError as e:
                        logger.warning("dataset %s: versions unreadable (%s); left out", dsid, e)
                        continue
                    known: dict[tuple[str, str], str] = {}
                    for version in versions:
                        self._add_version(db, dsid, version, known)
        except BaseException:
            db.close()
            path.unlink(missing_ok=True)
            raise
        db.close()
        old = [p for p in self.cache_dir.glob("index-*.sqlite*") if not p.name.startswith(name)]
        write_bytes_atomic(self.cache_dir / _CURRENT, name.encode() + b"\n")
        for p in old:  # workers holding one open keep reading it until they reconnect
            p.unlink(missing_ok=True)
        logger.info("index %s built in %.1f s", path, time.monotonic() - started)

    def _log_size(self, dsid: str) -> int:
        try:
            return (bundle_store.bundles_dir(self.store_root, dsid) / "log.jsonl").stat().st_size
        except (OSError, DssError):
            return -1

    def _add_unjournaled(self, db: sqlite3.Connection) -> None:
        """Versions whose events sort before the cursor: `dss sync` rebuilds a missed version from
        the reflog with its push time, so its event lands in the journal's past. A dataset's
        version log grows with every version, so one stat per dataset finds them."""
        seen = dict(db.execute("SELECT dataset_id, size FROM logs").fetchall())
        for dsid in bundle_store.datasets(self.store_root):
            size = self._log_size(dsid)
            if seen.get(dsid) == size:
                continue
            try:
                versions = bundle_store.versions(self.store_root, dsid)
            except DssError as e:
                logger.warning("dataset %s: versions unreadable (%s)", dsid, e)
                continue
            with db:
                for version in versions:
                    self._add_version(db, dsid, version)
                db.execute("INSERT OR REPLACE INTO logs VALUES (?, ?)", (dsid, size))

    def _add_version(self, db: sqlite3.Connection, dsid: str, version: str,
                     known: dict[tuple[str, str], str] | None = None) -> None:
        """One bundle version's rows; a version already there, or unreadable, is skipped.

        `known` ((path, content) -> file version of the dataset) is read from the index when not
        given; a full build passes one per dataset, so it costs one pass over each manifest."""
        if db.execute("SELECT 1 FROM bundles WHERE dataset_id = ? AND version = ?",
                      (dsid, version)).fetchone():
            return
        try:
            manifest = bundle_store.load(self.store_root, dsid, version)
        except DssError as e:
            logger.warning("dataset %s: bundle version %s left out of the index (%s)", dsid, version, e)
            return
        if known is None:
            known = {(p, c): v for p, c, v in db.execute(
                "SELECT path, content, MIN(file_version) FROM contents WHERE dataset_id = ? "
                "GROUP BY path, content", (dsid,))}
        dead = tombstones.is_dead(self.store_root, dsid, version)
        new_contents: list[tuple[str, str, str, str, str, str, int, str]] = []
        listed: list[tuple[str, str, int, str, str]] = []
        for row in manifest.files:
            if not dss_mapping.is_served(row):
                continue
            path, content = str(row["path"]), dss_mapping.content_id(row)
            fuuid = dss_mapping.file_uuid(dsid, path)
            given_uuid, given_version = row.get("file_uuid"), row.get("file_version")
            if isinstance(given_uuid, str) and isinstance(given_version, str):
                # a writer of the DSS API named this file version (bundle_commit's identities)
                fuuid, fversion = given_uuid, given_version
                if known.get((path, content)) is None:
                    known[(path, content)] = fversion
                new_contents.append((fuuid, fversion, dsid, path, content, str(row["type"]),
                                     int(row.get("size") or 0),
                                     str(row.get("content_type") or "application/octet-stream")))
                listed.append((dsid, version, len(listed), fuuid, fversion))
                continue
            found = known.get((path, content))
            if found is None:
                # a path's file version: the first bundle version in which it had this content
                fversion = known[(path, content)] = version
                new_contents.append((fuuid, fversion, dsid, path, content, str(row["type"]),
                                     int(row.get("size") or 0),
                                     str(row.get("content_type") or "application/octet-stream")))
            else:
                fversion = found
            listed.append((dsid, version, len(listed), fuuid, fversion))
        db.executemany("INSERT OR IGNORE INTO contents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", new_contents)
        if dead:  # its contents name file versions that later versions share; nothing else
            return
        db.executemany("INSERT INTO bundle_files VALUES (?, ?, ?, ?, ?)", listed)
        db.execute("INSERT INTO bundles VALUES (?, ?, ?)", (dsid, version, len(listed)))

    @staticmethod
    def _drop_version(db: sqlite3.Connection, dsid: str, version: str) -> None:
        """A tombstoned version leaves the bundles (its contents rows stay: see _LISTED)."""
        db.execute("DELETE FROM bundle_files WHERE dataset_id = ? AND version = ?", (dsid, version))
        db.execute("DELETE FROM bundles WHERE dataset_id = ? AND version = ?", (dsid, version))


"""The embedded search index: one SQLite file (FTS5 + JSON), `dss/index/search.sqlite`.

A cache, never the source of truth: every document is built again from the store
(documents.build) whenever an event names its version, so applying an event twice, out of order,
or after `rebuild` gives the same index, and `rebuild` from manifests alone gives what catching up
from the journal gives. A file that is not an index of this schema (corrupt, older, truncated)
is moved aside and rebuilt, with a warning saying so. Writers (catch-up, rebuild) hold
`search.sqlite.lock`; readers never wait for them (SQLite's own locking, rollback journal: a
store on NFS has no shared memory for WAL).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ria_store.errors import DssError, NotFoundError, from_os_error
from ria_store.listing import list_dir
from ria_store.locks import FileLock

from ..config import paths
from ..config.search_settings import SearchSettings
from ..config.store_config import read_config
from ..history import bundle_store, events, meta_records, tombstones
from . import documents, sql_compile
from . import leaves as lv
from .documents import Problem
from .engine import Hit, Results
from .query import SORT_FIELDS, Query, QueryError, Sort

logger = logging.getLogger(__name__)

SCHEMA = 2
FILE_NAME = "search.sqlite"
#: a day directory changed this recently may still get events in the same mtime tick: list it again
_SETTLE_NS = 2_000_000_000
_BATCH = 200
#: how a problem of content not (yet) in the store starts (documents.ContentReader says so)
MISSING_CONTENT = "its content is not"

_DDL = """
CREATE TABLE info(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE docs(id INTEGER PRIMARY KEY, bundle_fqid TEXT UNIQUE NOT NULL, dataset_id TEXT NOT NULL,
  version TEXT NOT NULL, uuid TEXT NOT NULL, alias TEXT, created TEXT NOT NULL, size INTEGER NOT NULL,
  file_count INTEGER NOT NULL);
CREATE TABLE bodies(id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE INDEX docs_dataset ON docs(dataset_id, version);
CREATE TABLE leaves(id INTEGER PRIMARY KEY, doc INTEGER NOT NULL, field TEXT NOT NULL, sub TEXT,
  kind TEXT NOT NULL, value);
CREATE INDEX leaves_field ON leaves(field, kind, value, doc);
CREATE INDEX leaves_sub ON leaves(sub, kind, value, doc) WHERE sub IS NOT NULL;
CREATE INDEX leaves_doc ON leaves(doc);
CREATE VIRTUAL TABLE leaf_text USING fts5(value, tokenize = 'unicode61 remove_diacritics 0');
CREATE TABLE journal_days(day TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE applied(event_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE problems(ident TEXT NOT NULL, path TEXT NOT NULL, dataset_id TEXT NOT NULL,
  version TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY(ident, path)) WITHOUT ROWID;
"""


@dataclass
class CatchUp:
    """What one catch-up or rebuild did."""

    events: int = 0
    documents: int = 0
    removed: int = 0
    #: indexed files newly found without usable content (each reported once per file)
    problems: list[Problem] = field(default_factory=list)
    rebuilt_because: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "documents": self.documents, "removed": self.removed,
                "problems": [p.__dict__ for p in self.problems], "rebuilt_because": self.rebuilt_because}


def index_path(store_root: Path) -> Path:
    return store_root / paths.SEARCH_INDEX / FILE_NAME


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    con.execute("PRAGMA journal_mode = DELETE")
    con.execute("PRAGMA synchronous = NORMAL")
    return con


def _pack(doc: dict[str, Any]) -> bytes:
    """A document as stored: zlib-compressed JSON (a fifth of the bytes; only raw output reads it)."""
    return zlib.compress(json.dumps(doc, ensure_ascii=False).encode(), 6)


def _unpack(body: bytes) -> Any:
    return json.loads(zlib.decompress(body))


def _create(con: sqlite3.Connection) -> None:
    """The schema in an empty database, in one transaction (one sync, not one per table)."""
    con.executescript(f"BEGIN; {_DDL} PRAGMA user_version = {SCHEMA}; COMMIT;")


def _why_unusable(path: Path) -> str | None:
    """Why the file at `path` is not an index of this schema (None: it is)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA:
                return f"it has schema {version}, this dss-remote writes {SCHEMA}"
            con.execute("SELECT count(*) FROM info").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        return f"it is not a readable SQLite index ({e})"
    return None


class SqliteIndex:
    """The store's embedded index (see the module docstring); `engine.SearchIndex` is its contract."""

    def __init__(self, store_root: Path, path: Path | None = None, *,
                 settings: SearchSettings | None = None, retry_missing_every: float = 0.0) -> None:
        """`retry_missing_every`: seconds between looks for content that was missing (a server,
        which catches up every second, looks once a minute; a command every time)."""
        self.store_root = store_root
        self.retry_missing_every = retry_missing_every
        self.path = path or index_path(store_root)
        self._settings = settings
        self._settings_from_store = settings is None
        self._con: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._aliases: dict[str, list[str]] | None = None
        self._meta: dict[str, list[meta_records.MetaRecord]] = {}
        self._readers: dict[str, documents.ContentReader] = {}
        self._replicas: Any = None
        self._parsed = documents.ParsedCache()  # shared by every dataset's reader

    # -- opening --------------------------------------------------------------------------
    @property
    def settings(self) -> SearchSettings:
        if self._settings is None:
            self._settings = read_config(self.store_root).search
        return self._settings

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._replicas is not None:
            self._replicas.close()
            self._replicas = None

    def __enter__(self) -> SqliteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lock(self) -> FileLock:
        return FileLock(self.path.with_name(self.path.name + ".lock"))

    def _connection(self) -> sqlite3.Connection:
        """The open index; opened again when `rebuild` (maybe another process's) replaced it."""
        try:
            st = self.path.stat()
            ident = (st.st_dev, st.st_ino)
        except FileNotFoundError as e:
            raise NotFoundError(f"no search index at {self.path}; build it with `dss index "
                                f"{self.store_root}`") from e
        except OSError as e:
            raise from_os_error(e, str(self.path)) from e
        if self._con is None or ident != self._inode:
            if self._con is not None:
                self._con.close()
            self._con = _connect(self.path)
            self._inode = ident
        return self._con

    def ensure(self) -> CatchUp | None:
        """Make sure a usable index file exists: build it when missing, rebuild it (saying why)
        when it is not an index of this schema. The report of a build, None when none was needed."""
        why = _why_unusable(self.path) if self.path.exists() else None
        if self.path.exists() and why is None:
            return None
        if why is not None:
            logger.warning("search index %s: %s; rebuilding it from the store's manifests",
                           self.path, why)
            aside = self.path.with_name(f"{self.path.name}.unusable")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)  # kept for a post-mortem, replaced by the next one
        report = self.rebuild()
        report.rebuilt_because = why
        return report

    # -- the SearchIndex contract ---------------------------------------------------------
    def catch_up(self) -> CatchUp:
        """Apply every journal event this index has not seen (the journal may gain events out of
        order: `dss sync` writes missed ones later, so days are compared, not a cursor)."""
        report = self.ensure() or CatchUp()
        with self._lock():
            self._forget_cache()  # aliases and metadata records as they are now
            con = self._connection()
            known = dict(con.execute("SELECT day, mtime_ns FROM journal_days").fetchall())
            root = self.store_root / paths.EVENTS
            for day in list_dir(root):
                if not events.DAY_RE.fullmatch(day):
                    continue
                try:
                    mtime = (root / day).stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                if known.get(day) == mtime:
                    continue
                self._catch_up_day(con, root / day, day, report)
                settled = time.time_ns() - mtime > _SETTLE_NS
                con.execute("INSERT OR REPLACE INTO journal_days VALUES (?, ?)",
                            (day, mtime if settled else -1))
            self._retry_missing(con, report)
        return report

    def _retry_missing(self, con: sqlite3.Connection, report: CatchUp) -> None:
        """Build again the documents of versions pushed before their content (`git push` first,
        `git annex copy` later): no event says the content arrived."""
        # the time is kept in the index, not here: `dss index` and `dss search` are a new process each
        row = con.execute("SELECT value FROM info WHERE key = 'missing_retried_at'").fetchone()
        now = time.time()
        if row is not None and 0 <= now - float(row[0]) < self.retry_missing_every:
            return
        con.execute("INSERT OR REPLACE INTO info VALUES ('missing_retried_at', ?)", (str(now),))
        waiting = con.execute("SELECT DISTINCT dataset_id, version FROM problems WHERE reason LIKE ?",
                              (MISSING_CONTENT + "%",)).fetchall()
        for dsid, version in waiting:
            with self._transaction(con):
                con.execute("DELETE FROM problems WHERE dataset_id = ? AND version = ? AND reason LIKE ?",
                            (dsid, version, MISSING_CONTENT + "%"))
                quiet = CatchUp()  # still missing: reported when first found, not again
                self._refresh(con, dsid, version, quiet)
                report.documents += quiet.documents

    def _catch_up_day(self, con: sqlite3.Connection, directory: Path, day: str, report: CatchUp) -> None:
        done = {r[0] for r in con.execute(
            "SELECT event_id FROM applied WHERE event_id >= ? AND event_id < ?", (day, day + "~"))}
        todo = [n[:-5] for n in list_dir(directory)
                if n.endswith(".json") and not n.startswith(".") and n[:-5] not in done]
        for start in range(0, len(todo), _BATCH):
            with self._transaction(con):
                for eid in todo[start:start + _BATCH]:
                    try:
                        event = events.load(directory / f"{eid}.json")
                    except FileNotFoundError:
                        continue
                    except DssError as e:
                        logger.warning("search index: skipping event %s (%s)", eid, e)
                    else:
                        self._apply_safely(con, event, report)
                    con.execute("INSERT OR IGNORE INTO applied VALUES (?)", (eid,))
                    report.events += 1

    def apply(self, event: events.Event) -> CatchUp:
        """Bring the index up to date with one event (idempotent)."""
        report = CatchUp()
        with self._lock():
            con = self._connection()
            with self._transaction(con):
                self._apply(con, event, report)
                con.execute("INSERT OR IGNORE INTO applied VALUES (?)", (event.event_id,))
        return report

    def rebuild(self) -> CatchUp:
        """A new index from the store's manifests, tombstones and metadata records alone, put in
        place atomically (readers keep the old one until they look again)."""
        report = CatchUp()
        with self._lock():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.path.parent.glob(f".{self.path.name}.rebuild-*"):
                stale.unlink(missing_ok=True)  # of a rebuild that was killed (we hold the lock)
            tmp = self.path.with_name(f".{self.path.name}.rebuild-{os.getpid()}")
            con = _connect(tmp)
            try:
                _create(con)
                # events listed first: one written while we scan is applied again by the next catch-up
                root = self.store_root / paths.EVENTS
                with self._transaction(con):
                    for day in list_dir(root):
                        if events.DAY_RE.fullmatch(day):
                            con.executemany("INSERT OR IGNORE INTO applied VALUES (?)",
                                            [(n[:-5],) for n in list_dir(root / day)
                                             if n.endswith(".json") and not n.startswith(".")])
                            con.execute("INSERT INTO journal_days VALUES (?, -1)", (day,))
                self._forget_cache()
                for dsid in bundle_store.datasets(self.store_root):
                    with self._transaction(con):
                        self._refresh_dataset(con, dsid, report)
                con.close()
                # A writer that died mid-transaction left the old file's rollback journal; SQLite
                # would play it onto the new file (and corrupt it). Nobody else writes: we hold
                # the lock, so it is a dead writer's, and the old file goes anyway.
                self.path.with_name(self.path.name + "-journal").unlink(missing_ok=True)
                os.replace(tmp, self.path)
            except BaseException:
                con.close()
                tmp.unlink(missing_ok=True)
                raise
        logger.info("search index %s rebuilt: %d documents", self.path, report.documents)
        return report

    def search(self, query: Query, *, allowed: Collection[str] | None = None, sort: Sort | None = None,
               limit: int = 100, offset: int = 0, after: str | None = None,
               with_docs: bool = False) -> Results:
        """Documents matching `query`, only of the datasets in `allowed` (None: every dataset),
        ordered by `sort` then bundle fqid; `after` (a bundle fqid) pages by fqid order."""
        sort = sort or Sort()
        if sort.field not in SORT_FIELDS:
            raise QueryError(f"cannot sort by {sort.field!r}; sort by one of {', '.join(SORT_FIELDS)}")
        if after is not None and (sort.field != "bundle_fqid" or sort.descending):
            raise QueryError("paging with `after` needs results sorted by bundle_fqid, ascending")
        cond, params = sql_compile.Compiler().compile(query)
        if allowed is not None:
            cond = f"({cond}) AND d.dataset_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(allowed)))
        direction = "DESC" if sort.descending else "ASC"
        # one pass: the matches, counted by a window over all of them, then this page of them
        inner = (f"SELECT d.id, d.bundle_fqid, d.dataset_id, d.version, d.{sort.field} AS s, "
                 f"count(*) OVER () AS total FROM docs d WHERE {cond}")
        sql = (f"SELECT x.bundle_fqid, x.dataset_id, x.version, x.total{', b.body' if with_docs else ''} "
               f"FROM ({inner}) x {'JOIN bodies b ON b.id = x.id' if with_docs else ''} "
               f"WHERE {'x.bundle_fqid > ?' if after is not None else '1'} "
               f"ORDER BY x.s {direction}, x.bundle_fqid ASC LIMIT ? OFFSET ?")
        con = self._connection()
        try:
            rows = con.execute(sql, [*params, *([after] if after is not None else []), limit,
                                     offset]).fetchall()
            if rows:
                total = rows[0][3]
            elif offset or after is not None:  # past the last page: count them apart
                total = con.execute(f"SELECT count(*) FROM docs d WHERE {cond}", params).fetchone()[0]
            else:
                total = 0
        except sqlite3.DatabaseError as e:
            raise DssError(f"search index {self.path} cannot answer ({e}); rebuild it with "
                           f"`dss index {self.store_root} --rebuild`") from e
        hits = [Hit(r[0], r[1], r[2], _unpack(r[4]) if with_docs else None) for r in rows]
        return Results(total, hits)

    def put_documents(self, docs: Iterable[dict[str, Any]]) -> int:
        """Index documents as they are, replacing those of the same bundle fqid (an empty index
        is made first if there is none): how a feeder other than the journal, a test or a
        benchmark fills the index. `catch_up` may later replace them from the store."""
        with self._lock():
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                con = _connect(self.path)
                _create(con)
                con.close()
            con = self._connection()
            n = 0
            with self._transaction(con):
                for doc in docs:
                    self._remove(con, str(doc["bundle_fqid"]))
                    self._insert(con, doc)
                    n += 1
        return n

    def stats(self) -> dict[str, int]:
        con = self._connection()
        docs = con.execute("SELECT count(*) FROM docs").fetchone()[0]
        leaves = con.execute("SELECT count(*) FROM leaves").fetchone()[0]
        return {"documents": docs, "leaves": leaves, "bytes": self.path.stat().st_size}

    def problems(self) -> list[dict[str, str]]:
        con = self._connection()
        rows = con.execute("SELECT dataset_id, version, path, reason FROM problems ORDER BY 1, 3")
        return [dict(zip(("dataset_id", "version", "path", "reason"), r, strict=True)) for r in rows]

    # -- internals ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, con: sqlite3.Connection) -> Iterator[None]:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _forget_cache(self) -> None:
        """Forget what may change without an event: aliases, metadata records (their events are
        applied after this), the store's search settings and the readers made with them. Parsed
        file contents stay: they are content-addressed."""
        self._aliases = None
        self._meta.clear()
        if self._settings_from_store:
            self._settings = None
            self._readers.clear()

    def _apply_safely(self, con: sqlite3.Connection, event: events.Event, report: CatchUp) -> None:
        """`_apply`, where a failure leaves this one version out (warned, and fixed by the next
        `--rebuild`) rather than stopping the index at this event for good."""
        try:
            with self._savepoint(con):
                self._apply(con, event, report)
        except (DssError, OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("search index: event %s of %s not applied (%s); `dss index --rebuild` "
                           "tries it again", event.event_id, event.dataset_id, e)

    @contextlib.contextmanager
    def _savepoint(self, con: sqlite3.Connection) -> Iterator[None]:
        con.execute("SAVEPOINT apply")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK TO apply")
            con.execute("RELEASE apply")
            raise
        con.execute("RELEASE apply")

    def _apply(self, con: sqlite3.Connection, event: events.Event, report: CatchUp) -> None:
        if event.type in (events.BUNDLE_CREATED, events.BUNDLE_DELETED) and event.version:
            self._refresh(con, event.dataset_id, event.version, report)
        elif event.type == events.META_UPDATED:
            self._meta.pop(event.dataset_id, None)
            if event.version:
                self._refresh(con, event.dataset_id, event.version, report)
            else:
                self._refresh_dataset(con, event.dataset_id, report)

    def _refresh_dataset(self, con: sqlite3.Connection, dsid: str, report: CatchUp) -> None:
        try:
            versions = bundle_store.versions(self.store_root, dsid)
        except DssError as e:
            logger.warning("search index: cannot list versions of %s (%s)", dsid, e)
            return
        dead = tombstones.dead(self.store_root, dsid)
        indexed = {r[0] for r in con.execute("SELECT version FROM docs WHERE dataset_id = ?", (dsid,))}
        for v in sorted(set(versions) | indexed):
            self._refresh(con, dsid, v, report, dead=v in dead)

    def _refresh(self, con: sqlite3.Connection, dsid: str, version: str, report: CatchUp, *,
                 dead: bool | None = None) -> None:
        fqid = f"{dsid}.{version}"
        if dead is None:
            dead = tombstones.is_dead(self.store_root, dsid, version)
        doc = None
        if not dead:
            try:
                manifest = bundle_store.load(self.store_root, dsid, version)
            except NotFoundError:
                manifest = None
            except DssError as e:
                logger.warning("search index: leaving out %s (%s)", fqid, e)
                manifest = None
            if manifest is not None:
                doc, problems = documents.build(
                    self.store_root, manifest, settings=self.settings,
                    aliases=self._aliases_of(dsid), meta=self._meta_of(dsid), reader=self._reader(dsid))
                self._note_problems(con, dsid, version, problems, report)
        if self._remove(con, fqid) and doc is None:
            report.removed += 1
        if doc is not None:
            self._insert(con, doc)
            report.documents += 1

    def _note_problems(self, con: sqlite3.Connection, dsid: str, version: str,
                       problems: Sequence[Problem], report: CatchUp) -> None:
        for p in problems:
            cur = con.execute("INSERT OR IGNORE INTO problems VALUES (?, ?, ?, ?, ?)",
                              (p.ident, p.path, dsid, version, p.reason))
            if cur.rowcount:
                logger.warning("search index: %s of %s@%s is indexed without its content: %s",
                               p.path, dsid, version, p.reason)
                report.problems.append(p)

    def _remove(self, con: sqlite3.Connection, fqid: str) -> bool:
        row = con.execute("SELECT id FROM docs WHERE bundle_fqid = ?", (fqid,)).fetchone()
        if row is None:
            return False
        con.execute("DELETE FROM leaf_text WHERE rowid IN (SELECT id FROM leaves WHERE doc = ? "
                    "AND kind = 's')", (row[0],))  # (rowids of keyword leaves are simply not there)
        con.execute("DELETE FROM leaves WHERE doc = ?", (row[0],))
        con.execute("DELETE FROM docs WHERE id = ?", (row[0],))
        con.execute("DELETE FROM bodies WHERE id = ?", (row[0],))
        return True

    def _insert(self, con: sqlite3.Connection, doc: dict[str, Any]) -> None:
        rows = doc["manifest"]["files"]
        size = sum(r.get("size") or 0 for r in rows if isinstance(r.get("size"), int))
        alias = doc.get("alias")
        first_alias = alias if isinstance(alias, str) else (alias[0] if alias else None)
        cur = con.execute(
            "INSERT INTO docs(bundle_fqid, dataset_id, version, uuid, alias, created, size, file_count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (doc["bundle_fqid"], doc["dataset_id"], doc["version"], doc["uuid"], first_alias,
             doc["created"], size, len(rows)))
        doc_id = cur.lastrowid
        con.execute("INSERT INTO bodies VALUES (?, ?)", (doc_id, _pack(doc)))
        start = con.execute("SELECT coalesce(max(id), 0) FROM leaves").fetchone()[0] + 1
        leaf_rows = []
        text_rows = []
        for i, (f, v) in enumerate(lv.leaves(doc), start):
            kind = sql_compile.kind_of(v)
            leaf_rows.append((i, doc_id, f, lv.sub_field(f), kind, sql_compile.stored(v)))
            if kind == "s" and lv.is_text(f):
                text_rows.append((i, v))
        con.executemany("INSERT INTO leaves VALUES (?, ?, ?, ?, ?, ?)", leaf_rows)
        con.executemany("INSERT INTO leaf_text(rowid, value) VALUES (?, ?)", text_rows)

    def _aliases_of(self, dsid: str) -> list[str]:
        if self._aliases is None:
            self._aliases = documents.dataset_aliases(self.store_root)
        return self._aliases.get(dsid, [])

    def _meta_of(self, dsid: str) -> list[meta_records.MetaRecord]:
        if dsid not in self._meta:
            self._meta[dsid] = meta_records.records(self.store_root, dsid)
        return self._meta[dsid]

    def _reader(self, dsid: str) -> documents.ContentReader:
        if dsid not in self._readers:
            if self._replicas is None:
                from ..replication.store_replicas import open_store_replicas  # noqa: PLC0415

                try:
                    self._replicas = open_store_replicas(self.store_root)
                except DssError as e:
                    logger.warning("search index: reading loose objects only (%s)", e)
            self._readers[dsid] = documents.ContentReader(self.store_root, dsid, self.settings,
                                                          self._replicas, self._parsed)
        return self._readers[dsid]

"""Checkout: a bundle version copied to `<destination>/bundles/<uuid>.<version>/<name>`, and the job
that does it for `dss serve`.

The copy (`checkout`) takes each file of the version's manifest (annexed and git files; subdatasets
and plain symlinks are not files of a bundle) and, unless the destination holds it already
(checkout_dest.py says how that is known), copies it: server-side from a replica in the
destination's service, else from the POSIX store's loose object on disk, else through a temp file
the store's ReplicaSet fills (verified, from whichever replica has it: a mirror, an archive
member); a git file from the dataset's bare repo. Files go in parallel (THREADS); the first
failure stops the copy, and its cause is the job's. Copying again resumes: what is there is kept.

A job (`dss/checkout/<job id>.json`, never mirrored, written atomically) is RUNNING, SUCCEEDED or
FAILED with a one-line `cause`, and counts what was copied and what was there already. Its work is
done by a detached process, `python -m dss_remote.cli checkout --run-job JOB STORE`, in its own
session, so it outlives the server that started it (a restart, a worker recycled by uvicorn). The
worker holds the flock `dss/checkout/<job id>.lock` while it runs; a poll that finds a RUNNING job
whose lock nobody holds (the worker was killed, the machine rebooted) starts a new worker, which
resumes. A worker that finds the lock taken, or the job finished, exits at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ria_store.atomic import write_bytes_atomic
from ria_store.errors import DssError, KeyFormatError, NotFoundError, one_line
from ria_store.keys import AnnexKey, parse_key
from ria_store.layout import dataset_relpath, object_relpath
from ria_store.locks import FileLock

from ..config import paths
from ..config.store_config import read_config
from ..history import bundle_store, times, tombstones
from ..replication import key_checksums
from ..replication.replica_set import ReplicaSet
from ..replication.store_replicas import StoreReplicas, open_store_replicas
from .checkout_dest import META_SOURCE, Destination, DirDestination, Existing, parse_destination

logger = logging.getLogger(__name__)

FORMAT = "dss-checkout-job/1"
RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"
#: files copied at once (each a request or a local copy)
THREADS = 16
#: a running job's counts are written at most this often (seconds)
SAVE_EVERY = 1.0
#: the manifest row types that are files of a bundle
FILE_TYPES = ("annex", "git")
_HASH_CHUNK = 4 << 20


@dataclass
class Counts:
    """How far a checkout got."""

    files: int = 0
    copied: int = 0
    present: int = 0
    bytes_copied: int = 0


@dataclass
class Job:
    """One checkout job, as its file holds it."""

    job_id: str
    dataset: str
    version: str
    destination: str
    replica: str | None = None
    status: str = RUNNING
    cause: str | None = None
    requested_by: str | None = None
    email: str | None = None
    created: str = ""
    updated: str = ""
    pid: int | None = None
    counts: Counts = field(default_factory=Counts)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Job:
        if obj.get("format") != FORMAT:
            raise ValueError(f"format {obj.get('format')!r}, not {FORMAT}")
        fields = {k: v for k, v in obj.items() if k != "format"}
        fields["counts"] = Counts(**fields.get("counts", {}))
        return cls(**fields)

    @property
    def location(self) -> str:
        """Where the bundle version lands."""
        return f"{self.destination}/bundles/{self.dataset}.{self.version}"

    def status_doc(self) -> dict[str, Any]:
        """What `GET /v1/bundles/checkout/{job_id}` answers: the DSS's `status` (and `cause` when
        FAILED), then ours."""
        doc: dict[str, Any] = {"status": self.status}
        if self.status == FAILED:
            doc["cause"] = self.cause or "unknown"
        doc.update({"checkout_job_id": self.job_id, "bundle_uuid": self.dataset,
                    "bundle_version": self.version, "destination": self.destination,
                    "location": self.location, "files": self.counts.files, "copied": self.counts.copied,
                    "already_present": self.counts.present, "bytes_copied": self.counts.bytes_copied,
                    "created": self.created, "updated": self.updated})
        return doc


# -- job files --------------------------------------------------------------------------------

def check_job_id(text: str) -> str:
    """`text` if it is a job id (a lower-case UUID); NotFoundError otherwise (no path games)."""
    try:
        ok = str(uuid.UUID(text)) == text
    except ValueError:
        ok = False
    if not ok:
        raise NotFoundError(f"no checkout job {text!r}: job ids are lower-case UUIDs")
    return text


def _jobs(store_root: Path) -> Path:
    return store_root / paths.CHECKOUT_JOBS


def load_job(store_root: Path, job_id: str) -> Job:
    """The job; NotFoundError when there is none."""
    p = _jobs(store_root) / f"{check_job_id(job_id)}.json"
    try:
        text = p.read_text()
    except FileNotFoundError as e:
        raise NotFoundError(f"no checkout job {job_id} in this store") from e
    except OSError as e:
        raise DssError(f"checkout job file {p}: {e.strerror}") from e
    try:
        import json  # noqa: PLC0415

        return Job.from_json(json.loads(text))
    except (ValueError, TypeError) as e:
        raise DssError(f"checkout job file {p} is damaged ({one_line(e)}); delete it and check out again"
                       ) from e


def save_job(store_root: Path, job: Job) -> None:
    import json  # noqa: PLC0415

    job.updated = times.format_utc(times.now())
    write_bytes_atomic(_jobs(store_root) / f"{job.job_id}.json",
                       json.dumps(job.to_json(), indent=1).encode(), mode=0o600)


def _lock(store_root: Path, job_id: str) -> FileLock:
    return FileLock(_jobs(store_root) / f"{job_id}.lock")


# -- what to copy -----------------------------------------------------------------------------

def live_version(store_root: Path, dsid: str, version: str | None) -> str:
    """The version asked for, or the newest live one; NotFoundError for an unknown or dead one."""
    dead = tombstones.dead(store_root, dsid)
    known = bundle_store.versions(store_root, dsid)
    live = [v for v in known if v not in dead]
    if version is None:
        if not live:
            raise NotFoundError(f"bundle {dsid} not found: no live versions in this store")
        return live[-1]
    if version not in live:
        why = "was deleted" if version in dead else "does not exist"
        raise NotFoundError(f"bundle {dsid} has no version {version} (it {why}); list its versions with "
                            f"GET /v1/bundles/all?prefix={dsid}")
    return version


def store_destination(store_root: Path, text: str, *, checkout_dirs: Sequence[str] | None = None,
                      replica_scheme: str | None = None) -> Destination:
    """The destination `text` names, as this store allows it: a directory under `checkout_dirs`
    (None: the store's `server.checkout_dirs`), a bucket that is none of its mirrors'."""
    config = read_config(store_root)
    dirs = config.server.checkout_dirs if checkout_dirs is None else checkout_dirs
    return parse_destination(text, dirs, refuse=[m.url for m in config.mirrors],
                             replica_scheme=replica_scheme)


def _metadata(store_root: Path, dsid: str, row: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The row's source id (annex key or `git:<blob>`) and the metadata its copy carries."""
    if row.get("type") == "git":
        source = f"git:{row['git_blob']}"
        return source, {META_SOURCE: source}
    key = str(row["key"])
    meta = {META_SOURCE: quote(key, safe="-_.~:+@=,")}
    try:
        record = key_checksums.read(store_root, dsid, key)
    except DssError as e:
        logger.warning("dataset %s: %s", dsid, e)
        record = None
    if record is not None:
        meta.update({f"hca-dss-{n}": getattr(record, n) for n in ("sha256", "sha1", "crc32c", "s3_etag")})
    else:
        named = parse_key(key).checksum
        if named is not None and named[0] in ("sha256", "sha1"):
            meta[f"hca-dss-{named[0]}"] = named[1]
    return key, meta


def _same_in_bucket(have: Existing, size: int, meta: Mapping[str, str]) -> bool:
    if have.size != size:
        return False
    if have.meta.get(META_SOURCE) == meta[META_SOURCE]:
        return True
    sha = meta.get("hca-dss-sha256")
    return bool(sha) and have.meta.get("hca-dss-sha256") == sha


def _same_in_dir(dest: DirDestination, name: str, row: Mapping[str, Any], meta: Mapping[str, str]) -> bool:
    """A file of the right size whose bytes hash to what the row names."""
    if row.get("type") == "git":
        want, digest = str(row["git_blob"]), hashlib.sha1(f"blob {int(row['size'])}\0".encode())
    else:
        named = parse_key(str(row["key"])).checksum
        if named is not None:
            want, digest = named[1], hashlib.new(named[0])
        elif meta.get("hca-dss-sha256"):
            want, digest = meta["hca-dss-sha256"], hashlib.sha256()
        else:
            return False  # a key without a checksum (WORM, URL): nothing to compare with
    fd = dest.open_existing(name)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == want


# -- the copy ---------------------------------------------------------------------------------

class _Copier:
    """Copies the rows of one bundle version of one dataset to one destination."""

    def __init__(self, store_root: Path, replicas: StoreReplicas, dsid: str, version: str, *,
                 dest: Destination, replica: str | None) -> None:
        self.store_root, self.replicas, self.dsid, self.dest = store_root, replicas, dsid, dest
        self.prefix = f"bundles/{dsid}.{version}"
        names = [n for n, _ in replicas.backends]
        first = replica if replica in names else None
        self.order = ([first] if first else []) + [n for n in names if n != first]
        self.tmp = store_root / paths.CHECKOUT_JOBS / "tmp"
        self._set: ReplicaSet | None = None
        self._set_lock = threading.Lock()
        #: what the destination holds below the version's prefix (name: size), when it can list
        self.listed = dest.sizes_below(self.prefix)

    def replica_set(self) -> ReplicaSet:
        with self._set_lock:
            if self._set is None:
                self._set = self.replicas.for_dataset(self.dsid)
            return self._set

    @contextmanager
    def temp(self) -> Iterator[Path]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".dss-tmp-checkout-", dir=self.tmp)
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def one(self, row: Mapping[str, Any]) -> int:
        """Copy one row; the bytes copied, -1 when it was there already."""
        name = f"{self.prefix}/{row['path']}"
        size = int(row.get("size") or 0)
        source, meta = _metadata(self.store_root, self.dsid, row)
        listed = self.listed
        have = None if listed is not None and listed.get(name) != size else self.dest.existing(name)
        if have is not None:
            same = (_same_in_dir(self.dest, name, row, meta) if isinstance(self.dest, DirDestination)
                    else _same_in_bucket(have, size, meta))
            if same:
                return -1
        if row.get("type") == "git":
            self._git_file(str(row["git_blob"]), name, meta)
            return size
        key = parse_key(source)
        if self._server_side(key, name, meta):
            return size
        loose = self._local_loose(key)
        if loose is not None:
            self.dest.put_file(loose, name, meta)
            return size
        with self.temp() as tmp:
            self.replica_set().retrieve(key, tmp)
            self.dest.put_file(tmp, name, meta)
        return size

    def _server_side(self, key: AnnexKey, name: str, meta: Mapping[str, str]) -> bool:
        for replica in self.order:
            backend = self.replicas.named(replica)
            if backend.local_root is not None:
                continue
            try:
                version = self.replica_set().named(replica).object_tree_version()
                rel = f"{dataset_relpath(self.dsid)}/{object_relpath(key, version)}"
                if self.dest.copy_from(backend, rel, name, meta):
                    return True
            except DssError as e:  # not there (packed, not yet mirrored), or refused: copy otherwise
                logger.info("%s: no server-side copy from %s (%s)", key, replica, e)
        return False

    def _local_loose(self, key: AnnexKey) -> Path | None:
        primary = self.replicas.primary
        if primary.local_root is None:
            return None
        try:
            version = self.replica_set().replicas[0].object_tree_version()
        except DssError:
            return None
        path = primary.local_root / dataset_relpath(self.dsid) / object_relpath(key, version)
        try:
            st = path.stat()
        except OSError:
            return None
        return path if key.expected_size in (None, st.st_size) else None

    def _git_file(self, blob: str, name: str, meta: Mapping[str, str]) -> None:
        repo = self.store_root / dataset_relpath(self.dsid)
        with self.temp() as tmp:
            with open(tmp, "wb") as out:
                res = subprocess.run(["git", "--git-dir", str(repo), "cat-file", "blob", blob],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                                     check=False)
            if res.returncode != 0:
                why = one_line(res.stderr.decode(errors="replace"))
                raise DssError(f"git file {blob} of dataset {self.dsid} cannot be read from its repository "
                               f"({why}); run `dss fsck` on the store")
            self.dest.put_file(tmp, name, meta)


def bundle_rows(store_root: Path, dsid: str, version: str) -> list[dict[str, Any]]:
    """The files of a bundle version (annexed and git files)."""
    return [r for r in bundle_store.load(store_root, dsid, version).files if r.get("type") in FILE_TYPES]


def checkout(store_root: Path, dsid: str, version: str, dest: Destination, *, replica: str | None = None,
             progress: Callable[[Counts], None] | None = None, threads: int = THREADS) -> Counts:
    """Copy the bundle version to `dest`; the counts. The first file that fails stops it: a
    DssError naming the file and the cause (what was copied stays, and is kept by the next run)."""
    rows = bundle_rows(store_root, dsid, version)
    for row in rows:
        if row.get("type") == "annex":
            try:
                parse_key(str(row.get("key")))
            except KeyFormatError as e:
                raise DssError(f"manifest of {dsid}.{version}: {e}; restore it from a mirror "
                               "(`dss sync`)") from e
    counts = Counts(files=len(rows))
    if progress is not None:
        progress(counts)
    with open_store_replicas(store_root) as replicas, ThreadPoolExecutor(threads) as pool:
        copier = _Copier(store_root, replicas, dsid, version, dest=dest, replica=replica)
        futures: dict[Future[int], str] = {pool.submit(copier.one, row): str(row["path"]) for row in rows}
        pending: set[Future[int]] = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for f in done:
                failure = f.exception()
                if failure is not None:
                    for other in pending:
                        other.cancel()
                    wait(pending)
                    if isinstance(failure, DssError):
                        raise DssError(f"{futures[f]}: {one_line(failure)}") from failure
                    raise failure
                n = f.result()
                if n < 0:
                    counts.present += 1
                else:
                    counts.copied += 1
                    counts.bytes_copied += n
            if progress is not None:
                progress(counts)
    return counts


# -- jobs -------------------------------------------------------------------------------------

def create_job(store_root: Path, dsid: str, version: str | None, destination: Destination, *,
               replica: str | None = None, requested_by: str | None = None, email: str | None = None) -> Job:
    """A new RUNNING job (its file written); `start_worker` sets it going. NotFoundError for an
    unknown or dead version; the destination's own error when it is known bad up front."""
    version = live_version(store_root, dsid, version)
    destination.check()
    now = times.format_utc(times.now())
    job = Job(str(uuid.uuid4()), dsid, version, destination.url, replica, requested_by=requested_by,
              email=email, created=now)
    save_job(store_root, job)
    return job


def start_worker(store_root: Path, job_id: str) -> None:
    """Start the detached process that runs the job (it outlives this one); its stderr goes to
    `dss/checkout/<job id>.log`."""
    log = _jobs(store_root) / f"{job_id}.log"
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dss_remote.cli", "checkout", "--run-job", job_id,
                                 str(store_root)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True, close_fds=True)
    # reaped here while this process lives, so it never lingers as a zombie
    threading.Thread(target=proc.wait, name=f"dss-checkout-{job_id[:8]}", daemon=True).start()


def worker_alive(store_root: Path, job_id: str) -> bool:
    """Whether a worker holds the job's lock."""
    lock = _lock(store_root, job_id)
    if lock.acquire(wait=False):
        lock.release()
        return False
    return True


def resume_if_orphaned(store_root: Path, job: Job) -> bool:
    """Start a new worker for a RUNNING job nobody works on; whether one was started."""
    if job.status != RUNNING or worker_alive(store_root, job.job_id):
        return False
    logger.info("checkout job %s: no worker; resuming it", job.job_id)
    start_worker(store_root, job.job_id)
    return True


def run_job(store_root: Path, job_id: str) -> Job | None:
    """The worker: run the job to SUCCEEDED or FAILED unless another worker has it (then None)."""
    lock = _lock(store_root, job_id)
    if not lock.acquire(wait=False):
        return None
    try:
        job = load_job(store_root, job_id)
        if job.status != RUNNING:
            return job
        job.pid = os.getpid()
        save_job(store_root, job)
        last = [time.monotonic()]

        def progress(counts: Counts) -> None:
            job.counts = counts
            if time.monotonic() - last[0] >= SAVE_EVERY:
                last[0] = time.monotonic()
                save_job(store_root, job)

        try:
            dest = store_destination(store_root, job.destination)
            live_version(store_root, job.dataset, job.version)
            job.counts = checkout(store_root, job.dataset, job.version, dest, replica=job.replica,
                                  progress=progress)
            job.status, job.cause = SUCCEEDED, None
        except DssError as e:
            logger.info("checkout job %s failed: %s", job_id, e)
            job.status, job.cause = FAILED, one_line(e)
        except Exception as e:
            logger.exception("checkout job %s failed unexpectedly", job_id)
            job.status = FAILED
            job.cause = (f"internal error ({type(e).__name__}: {one_line(e)}); the worker's log is "
                         f"{paths.CHECKOUT_JOBS}/{job_id}.log in the store; check out again")
        save_job(store_root, job)
        return job
    finally:
        lock.release()

"""The bytes of one manifest row: streamed from the POSIX store with `Range`, or a 302 to a presigned URL.

`respond` tries the requested replica first, then the others in the store's cost order (the
POSIX store first): a loose object on an S3/GCS mirror is a 302 to a presigned GET of it; anything
else a replica holds (the POSIX store's loose objects and archive members, a mirror's archive
members, the objects of mirrors that cannot presign) is streamed through the server, chunk by chunk,
never buffered whole. A key a network replica holds only in its archive is streamed from there
only when no replica holds it otherwise (ranged reads through this server are the dearest way).
Bytes are not verified on the way out (the client checks the `X-DSS-SHA256` it was given; a
wrong-sized loose object counts as absent, as in the special remote). A git file is streamed from
the dataset's bare repo (`git cat-file`).

Ranges: one range is answered 206; several are answered 200 with the whole body (RFC 9110 lets a
server ignore Range). A member that is compressed in the archive (not what DataLad writes) is
extracted on the fly through a pipe, and a range of it is cut from that stream.

Blocking: `respond` looks replicas up (HEAD requests to buckets), so call it from a sync route
(FastAPI runs those in its thread pool), never from an `async def` one.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from fastapi import Request
from starlette.responses import Response, StreamingResponse

from ria_store.archive import RANGE_CHUNK, ArchiveSource, Member
from ria_store.bare_repo import blob_sizes
from ria_store.errors import CorruptError, DssError, NotFoundError, UnavailableError, one_line
from ria_store.keys import AnnexKey, parse_key
from ria_store.layout import dataset_relpath, object_relpath

from ..replication.dataset_objects import DatasetObjects
from ..replication.replica import Failures
from .errors import ApiError, NeedsThread
from .ranges import ByteRange, parse_range
from .replicas import served_replicas

logger = logging.getLogger(__name__)

#: bytes per read of a body streamed from a local file: fewer, larger chunks cost less CPU per
#: byte (bench/serve.py: about 0.8 s of server CPU per GiB at 1 MiB, 0.6 s at 4 MiB), while each
#: stream holds one chunk in memory
CHUNK = 2 << 20
#: bodies up to this size are read at once and sent as one response, not streamed
SMALL_BODY = 64 << 10
#: bytes per ranged read from a replica over the network (each one a request)
REMOTE_CHUNK = RANGE_CHUNK
#: what a 503 asks the client to wait before it tries again (seconds)
RETRY_AFTER = "30"

#: pread-like: up to `length` bytes from `start`
ReadAt = Callable[[int, int], bytes]


def respond(request: Request, store_root: Path, dataset_id: str, row: Mapping[str, Any],  # noqa: PLR0917
            replica: str | None, headers: Mapping[str, str], *, quick: bool = False) -> Response:
    """The answer to GET or HEAD of the file `row` of dataset `dataset_id` (access already checked):
    200/206 with its bytes, 302 to a presigned URL, 404 (no replica has it), 503 (some could not
    tell), 416 (a bad Range), 400 (an unknown replica). `headers` go with every answer.

    `quick` (on the event loop): answer only from a loose object on a local disk (an open, a
    stat and, for a small body, one read: what nginx does on its event loop too), and raise
    NeedsThread for everything else, before anything is read."""
    try:
        return _respond(request, store_root, dataset_id, row, replica=replica, headers=headers,
                        quick=quick)
    except ApiError as e:
        e.headers = {**headers, **e.headers}
        raise


def _respond(request: Request, store_root: Path, dataset_id: str, row: Mapping[str, Any], *,
             replica: str | None, headers: Mapping[str, str], quick: bool) -> Response:
    try:
        served = served_replicas(store_root, quick=quick)
    except DssError as e:
        logger.warning("store %s: config unreadable: %s", store_root, e)
        raise ApiError(503, "unavailable", "the store's config cannot be read now; try again later",
                       {"Retry-After": RETRY_AFTER}) from e
    first = served.resolve(replica)
    ctype = str(row.get("content_type") or "application/octet-stream")
    base = {**headers, "Content-Type": ctype, "Accept-Ranges": "bytes"}
    if quick:
        return _quick(request, served.objects(first, dataset_id), str(row.get("key")), row.get("type"),
                      base)
    if row.get("type") in ("git", "symlink"):
        return _git_blob(request, store_root, dataset_id, str(row["git_blob"]), base)
    if row.get("type") != "annex":
        raise ApiError(404, "not_found", f"{row.get('path', 'this entry')} of dataset {dataset_id} is "
                       f"a {row.get('type')}, which has no content of its own")
    key = parse_key(str(row["key"]))
    seconds: int = request.app.state.settings.presign_seconds
    failures = Failures()
    # First what a replica serves cheaply: a loose object (a 302 from a bucket), anything on a
    # local disk; a member of a remote archive only when no replica has the key otherwise, as
    # those bytes come through this server by ranged reads.
    deferred: list[str] = []
    for name in served.order(first):
        try:
            answer = _from_replica(request, served.objects(name, dataset_id), key, base, seconds,
                                   remote_archive=False)
        except _OnlyInRemoteArchive:
            deferred.append(name)
            continue
        except DssError as e:
            logger.info("%s of dataset %s from %s: %s", key, dataset_id, name, e)
            failures.add(name, e)
            continue
        return _served(answer, key, dataset_id, name, failures)
    for name in deferred:
        try:
            answer = _from_replica(request, served.objects(name, dataset_id), key, base, seconds,
                                   remote_archive=True)
        except DssError as e:
            failures.add(name, e)
            continue
        return _served(answer, key, dataset_id, name, failures)
    why = _without_local_paths(failures.line(), store_root)
    if failures.all_absent():
        raise ApiError(404, "not_found", f"no replica holds {key} of dataset {dataset_id}: {why}")
    raise ApiError(503, "unavailable", f"{key} of dataset {dataset_id} cannot be read now: {why}; "
                   "try again later", {"Retry-After": RETRY_AFTER})


def _quick(request: Request, objects: DatasetObjects, key_text: str, kind: object, base: dict[str, str]
           ) -> Response:
    """A loose object of the first replica to try, when that replica is a local disk."""
    root = objects.backend.local_root
    if kind != "annex" or root is None:
        raise NeedsThread
    # Any failure is the thread path's to report: it tries the other replicas and names each.
    try:
        key = parse_key(key_text)
        f = _open_loose(root / objects.ds_rel / object_relpath(key, objects.object_tree_version()), key)
        if f is None:
            raise NeedsThread  # in an archive, on another replica, or nowhere: the thread path looks
        size = os.fstat(f.fileno()).st_size
        return _stream(request, size, _pread(f), base, closing=f)
    except DssError:
        raise NeedsThread from None


def _without_local_paths(text: str, store_root: Path) -> str:
    """`text` with the store's place on the server's disk replaced by `store`: clients learn
    which replica failed and why, not how the server's file systems are laid out."""
    return text.replace(f"ria+file://{store_root}", "store").replace(str(store_root), "store")


class _OnlyInRemoteArchive(Exception):
    """The replica holds the key in an archive reached over the network, and nothing else."""


def _served(answer: Response, key: AnnexKey, dsid: str, name: str, failures: Failures) -> Response:
    if failures:
        logger.info("%s of dataset %s served from %s after %s", key, dsid, name, failures.line())
    return answer


def _from_replica(request: Request, objects: DatasetObjects, key: AnnexKey, base: dict[str, str],
                  seconds: int, *, remote_archive: bool) -> Response:
    """The answer from one replica; NotFoundError when it definitely lacks the key, another
    DssError when it cannot tell or cannot serve it; without `remote_archive`,
    _OnlyInRemoteArchive when the key is only in its archive over the network."""
    backend = objects.backend
    root = backend.local_root
    relpath = f"{objects.ds_rel}/{object_relpath(key, objects.object_tree_version())}"
    if root is not None:
        f = _open_loose(root / relpath, key)
        if f is not None:
            size = os.fstat(f.fileno()).st_size
            return _stream(request, size, _pread(f), base, closing=f)
    elif not remote_archive and objects.has_loose(key):
        if backend.presigns:
            url = backend.presign_get(relpath, seconds)
            return Response(status_code=302, headers={**base, "Location": url, "Content-Length": "0",
                                                       "Cache-Control": "no-store"})
        info = backend.info(relpath)
        if info is None:
            raise NotFoundError(f"{objects.url}: {relpath} vanished while it was being served")
        return _stream(request, info.size, lambda start, n: backend.read_range(relpath, start, n), base,
                       chunk=REMOTE_CHUNK)
    found = objects.archived(key)
    if found is None:
        objects.confirm_dataset()
        raise NotFoundError("not there (neither loose nor in archives/archive.7z)")
    if root is None and not remote_archive:
        raise _OnlyInRemoteArchive
    return _member(request, objects, *found, base)


def _open_loose(path: Path, key: AnnexKey) -> BinaryIO | None:
    """The loose object file, open; None if there is none (or one of the wrong size, which the
    special remote treats as absent too, and `dss fsck` reports)."""
    try:
        f = open(path, "rb", buffering=0)  # closed by the stream, or by the GC
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UnavailableError(f"{path}: cannot open: {e.strerror} (check permissions)") from e
    expected = key.expected_size
    if expected is not None and os.fstat(f.fileno()).st_size != expected:
        f.close()
        logger.warning("%s has the wrong size for %s: not serving it", path, key)
        return None
    return f


def _pread(f: BinaryIO) -> ReadAt:
    fd = f.fileno()

    def read(start: int, n: int) -> bytes:
        try:
            return os.pread(fd, n, start)
        except OSError as e:
            raise UnavailableError(f"read failed at byte {start}: {e.strerror}") from e

    return read


def _member(request: Request, objects: DatasetObjects, source: ArchiveSource, member: Member,
            base: dict[str, str]) -> Response:
    """A member of the replica's archive: a stored one by byte ranges of the archive, a
    compressed one through an extraction pipe."""
    if member.offset is not None:
        offset = member.offset
        if source.path is not None:
            try:
                f = open(source.path, "rb", buffering=0)
            except FileNotFoundError as e:
                raise NotFoundError(f"{source.name} vanished while it was being read") from e
            except OSError as e:
                raise UnavailableError(f"{source.name}: cannot open: {e.strerror}") from e
            read = _pread(f)
            return _stream(request, member.size, lambda start, n: read(offset + start, n), base,
                           closing=f)
        return _stream(request, member.size, lambda start, n: source.read_range(offset + start, n),
                       base, chunk=REMOTE_CHUNK)
    return _extracted(request, objects, source, member, base)


def _extracted(request: Request, objects: DatasetObjects, source: ArchiveSource, member: Member,
               base: dict[str, str]) -> Response:
    rng = _range(request, member.size)
    head = _head(request, rng, member.size, base)
    if head is not None:
        return head

    async def body() -> AsyncIterator[bytes]:
        rfd, wfd = os.pipe()
        failure: list[BaseException] = []

        def extract() -> None:
            try:
                objects.archives.extract(source, member, wfd)
            except BaseException as e:  # reported by the reader below
                failure.append(e)
            finally:
                os.close(wfd)

        worker = threading.Thread(target=extract, name="dss-extract", daemon=True)
        worker.start()
        reader = os.fdopen(rfd, "rb", buffering=0)
        try:
            skip = rng.start if rng else 0
            left = rng.length if rng else member.size
            while left > 0:
                chunk = await anyio.to_thread.run_sync(reader.read, CHUNK)
                if not chunk:
                    break
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if chunk:
                    chunk = chunk[:left]
                    left -= len(chunk)
                    yield chunk
            if left > 0:
                # the response is under way: all that is left is to cut it short, and say why
                why = one_line(failure[0]) if failure else "the extraction ended early"
                raise CorruptError(f"{source.name}: member {member.name}: {why}")
        finally:
            reader.close()  # a writer still busy gets EPIPE and ends
            await anyio.to_thread.run_sync(worker.join)

    return _streaming(rng, member.size, body(), base)


def _git_blob(request: Request, store_root: Path, dsid: str, sha: str, base: dict[str, str]
              ) -> Response:
    """A git file, from the dataset's bare repo in the POSIX store."""
    repo = store_root / dataset_relpath(dsid)
    try:
        size = blob_sizes(repo, [sha]).get(sha) if repo.is_dir() else None
    except DssError as e:
        raise ApiError(503, "unavailable", f"the git repository of dataset {dsid} cannot be read "
                       "now; try again later", {"Retry-After": RETRY_AFTER}) from e
    if size is None:
        if not repo.is_dir():
            raise ApiError(503, "unavailable", f"the git repository of dataset {dsid} is not "
                           "readable in the store (not mounted?); try again later",
                           {"Retry-After": RETRY_AFTER})
        raise ApiError(404, "not_found", f"git blob {sha} is not in dataset {dsid}'s repository")
    rng = _range(request, size)
    head = _head(request, rng, size, base)
    if head is not None:
        return head

    async def body() -> AsyncIterator[bytes]:
        proc = subprocess.Popen(["git", "--git-dir", str(repo), "cat-file", "blob", sha],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            skip = rng.start if rng else 0
            left = rng.length if rng else size
            while left > 0:
                chunk = await anyio.to_thread.run_sync(proc.stdout.read, min(CHUNK, skip + left))
                if not chunk:
                    raise UnavailableError(f"git cat-file {sha} in {repo} ended early")
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if chunk:
                    left -= len(chunk)
                    yield chunk
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            await anyio.to_thread.run_sync(proc.wait)

    return _streaming(rng, size, body(), base)


def _range(request: Request, size: int) -> ByteRange | None:
    """The one range a GET asks for (HEAD answers like the GET without a Range)."""
    if request.method == "HEAD":
        return None
    return parse_range(request.headers.get("range"), size)


def _head(request: Request, rng: ByteRange | None, size: int, base: dict[str, str]) -> Response | None:
    """The answer to a HEAD: the headers alone."""
    if request.method != "HEAD":
        return None
    return Response(status_code=200, headers={**base, "Content-Length": str(size)})


def _streaming(rng: ByteRange | None, size: int, body: AsyncIterator[bytes], base: dict[str, str]
               ) -> Response:
    headers = {**base, "Content-Length": str(rng.length if rng else size)}
    if rng is None:
        return StreamingResponse(body, status_code=200, headers=headers)
    return StreamingResponse(body, status_code=206,
                             headers={**headers, "Content-Range": rng.content_range()})


def _small_answer(rng: ByteRange | None, size: int, read: ReadAt, base: dict[str, str]
                  ) -> Response | None:
    """A body of at most SMALL_BODY bytes, read now and sent in one piece: streaming it would cost
    more than the bytes (a thread hop per chunk, a chunked send); None when it is larger or came
    back short (the streaming path then reports that as it always did)."""
    length = rng.length if rng else size
    if length > SMALL_BODY:
        return None
    start = rng.start if rng else 0
    data = read(start, length) if length else b""
    if len(data) != length:
        return None
    headers = {**base, "Content-Length": str(length)}
    if rng is None:
        return Response(data, status_code=200, headers=headers)
    return Response(data, status_code=206, headers={**headers, "Content-Range": rng.content_range()})


def _stream(request: Request, size: int, read: ReadAt, base: dict[str, str],
            *, closing: BinaryIO | None = None, chunk: int = 0) -> Response:
    """`size` bytes that `read(start, n)` returns, as the request's Range asks."""
    try:
        rng = _range(request, size)
    except ApiError:
        if closing is not None:
            closing.close()
        raise
    head = _head(request, rng, size, base)
    if head is not None:
        if closing is not None:
            closing.close()
        return head

    try:
        small = _small_answer(rng, size, read, base)
    except BaseException:
        if closing is not None:
            closing.close()
        raise
    if small is not None:
        if closing is not None:
            closing.close()
        return small
    step = chunk or CHUNK

    async def body() -> AsyncIterator[bytes]:
        pos = rng.start if rng else 0
        end = rng.end + 1 if rng else size
        try:
            while pos < end:
                data = await anyio.to_thread.run_sync(read, pos, min(step, end - pos))
                if not data:
                    raise UnavailableError(f"the object ended at byte {pos} of {size}")
                pos += len(data)
                yield data
        finally:
            if closing is not None:
                closing.close()

    return _streaming(rng, size, body(), base)


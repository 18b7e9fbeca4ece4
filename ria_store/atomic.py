"""Durable, atomic file output (temp name, fsync, rename, fsync dir) and a chunked copy with progress."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .sharing import file_mode, is_shared, settle, share_new_dirs

logger = logging.getLogger(__name__)

TMP_PREFIX = ".dss-tmp-"
CHUNK = 1 << 20
SMALL_COPY = 64 << 10
Progress = Callable[[int], None]


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (rename/create); a no-op where the FS refuses."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some network file systems refuse fsync on a directory
        logger.debug("fsync(%s) refused: %s", path, e)
    finally:
        os.close(fd)


def _makedirs(path: Path, created: list[Path]) -> None:
    """`mkdir -p`; append each directory it creates to `created`, outermost first (nothing
    fsynced yet), also when it fails part way. In a group-shared store they get its directory
    mode (sharing.py), whatever the umask."""
    first = len(created)
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            settle(d.parent, d.mkdir)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue
        created.append(d)
    share_new_dirs(created[first:])


def _remove_empty(created: list[Path]) -> None:
    """Undo `_makedirs` after a failed write: remove the directories it created, innermost first,
    while they are empty (a concurrent writer's file keeps its directory and those above)."""
    for d in reversed(created):
        try:
            d.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def _fsync_parents(created: list[Path]) -> None:
    # Innermost first. On a journaling file system the first directory fsync commits every
    # pending entry, so the rest are nearly free; issuing them after the data is durable (not
    # after each mkdir) keeps the guarantees and saves journal commits on every new key.
    for d in reversed(created):
        fsync_dir(d.parent)


def makedirs_durable(path: Path) -> None:
    """`mkdir -p` that fsyncs the parent of every directory it creates."""
    created: list[Path] = []
    _makedirs(path, created)
    _fsync_parents(created)


@contextlib.contextmanager
def atomic_output(final: Path, mode: int = 0o444) -> Iterator[int]:
    """Yield a raw fd of a temp file beside `final`; publish it atomically when the block succeeds.

    The temp file lives in the destination directory, so the rename never crosses file systems;
    readers see either no file or the complete one. On any error the temp file is removed, and
    so are the directories made for it that are still empty (a full disk leaves no empty key
    directory behind). The file gets `mode` less the umask, or in a group-shared store its mode
    for `mode` (sharing.py).
    """
    parent = final.parent
    created: list[Path] = []
    try:
        for attempt in range(3):
            _makedirs(parent, created)
            try:
                fd, tmp = settle(parent, lambda: _mkstemp(parent))
                break
            except FileNotFoundError:  # a concurrent remove pruned the empty directory; recreate it
                if attempt == 2:
                    raise
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield fd
        os.fchmod(fd, file_mode(mode, is_shared(parent)))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(tmp, final)
        fsync_dir(parent)
        _fsync_parents(created)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _remove_empty(created)
        raise


def _mkstemp(parent: Path) -> tuple[int, str]:
    import tempfile  # noqa: PLC0415  (keeps the remote's start-up lean)

    return tempfile.mkstemp(prefix=TMP_PREFIX, dir=parent)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until every byte is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_bytes_atomic(final: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a small file atomically and durably."""
    with atomic_output(final, mode) as fd:
        write_all(fd, data)


def create_exclusive(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write `path` durably unless it exists (then leave it alone and return False): a file
    written once and never changed (the complete file appears at once, through `link`)."""
    import uuid  # noqa: PLC0415  (keeps the remote's start-up lean)

    makedirs_durable(path.parent)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}")
    fd = settle(path.parent, lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    try:
        try:
            if is_shared(path.parent):
                os.fchmod(fd, file_mode(mode, True))
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:  # also when the write failed (a full disk): no temp file stays behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True


def chunk_progress(length: int, progress: Progress | None) -> Progress | None:
    """The progress callback for a copy of `length` bytes: none for one CHUNK or less, as
    there is nothing between start and end to report (and each report costs the receiver)."""
    return progress if length > CHUNK else None


def copy_fd(src: int, dst: int, progress: Progress | None = None, start: int = 0,
            length: int | None = None) -> int:
    """Copy `length` bytes (default: the rest of the file as fstat sees it now) from `src` at
    `start` to `dst`; return the bytes copied (fewer if the source ends early).

    Small copies are one pread/write. Larger ones use copy_file_range (in-kernel, reflinks where
    the FS can), falling back to pread/write where the file systems refuse it, and call
    `progress(total_so_far)` after every CHUNK; a copy of one CHUNK or less reports nothing,
    as there is nothing in between to report.
    """
    if length is None:
        length = max(0, os.fstat(src).st_size - start)
    if length <= SMALL_COPY:
        data = os.pread(src, length, start) if length else b""
        write_all(dst, data)
        return len(data)
    progress = chunk_progress(length, progress)
    done = 0
    use_cfr = hasattr(os, "copy_file_range")
    while done < length:
        want = min(CHUNK, length - done)
        n = -1
        if use_cfr:
            try:
                n = os.copy_file_range(src, dst, want, start + done)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                   errno.ENOTSUP, errno.EPERM, errno.EBADF):
                    raise
                use_cfr = False
        if n < 0:
            buf = os.pread(src, want, start + done)
            n = len(buf)
            write_all(dst, buf)
        if n == 0:
            break
        done += n
        if progress is not None:
            progress(done)
    return done

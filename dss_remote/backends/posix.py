"""Backend on a POSIX directory (local disk, NFS, GPFS, Lustre): atomic, durable, symlink-safe."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ria_store.atomic import TMP_PREFIX, atomic_output, copy_fd, write_all
from ria_store.errors import NotFoundError, from_os_error
from ria_store.store import check_inside

from .base import (
    EMPTY_DIR,
    TEMP_FILE,
    Backend,
    Leftover,
    ObjectInfo,
    Progress,
    check_range,
    check_relpath,
    empty_dirs,
)

logger = logging.getLogger(__name__)

# remove() prunes directories it leaves empty: the key dir and the two hash dirs of an object tree.
_PRUNE_LEVELS = 3
# info() needs no read permission on the object, only a handle to check where it resolves.
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)


class PosixBackend(Backend):
    """Objects are files under `root`; writes go through a temp file beside the target."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        super().__init__(url or f"file://{root}")
        self.root = root
        self.local_root = root

    def _path(self, relpath: str) -> Path:
        return self.root / check_relpath(relpath)

    def _open(self, relpath: str, flags: int = os.O_RDONLY) -> tuple[Path, int]:
        """Open an object (or its directory), refusing anything that resolves outside the root."""
        path = self._path(relpath)
        fd = os.open(path, flags | os.O_CLOEXEC)
        try:
            check_inside(self.root, path, "object", fd)
        except BaseException:
            os.close(fd)
            raise
        return path, fd

    def _check_existing_ancestor(self, relpath: str) -> None:
        """Refuse before creating any directory if the deepest existing one leads out of the root."""
        parts = relpath.split("/")[:-1]
        while parts and not self.root.joinpath(*parts).is_dir():
            parts.pop()
        _, fd = self._open("/".join(parts) or ".", _O_PATH)
        os.close(fd)

    def info(self, relpath: str) -> ObjectInfo | None:
        try:
            _, fd = self._open(relpath, _O_PATH)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(relpath, st.st_size, revision=f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}")

    def get_file(self, relpath: str, dst_fd: int, progress: Progress | None = None) -> int:
        try:
            _, src = self._open(relpath)
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e
        try:
            return copy_fd(src, dst_fd, progress)
        except OSError as e:
            raise from_os_error(e, f"copying {self.url}: {relpath}") from e
        finally:
            os.close(src)

    def read_range(self, relpath: str, start: int, length: int) -> bytes:
        check_range(start, length)
        try:
            _, fd = self._open(relpath)
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotFoundError(f"{self.url}: {relpath} is not a file")
            want = max(0, min(length, st.st_size - start))  # never allocate past the end
            parts: list[bytes] = []
            while want > 0:  # pread may return less than asked (signals, some network FSs)
                chunk = os.pread(fd, want, start)
                if not chunk:
                    break
                parts.append(chunk)
                start += len(chunk)
                want -= len(chunk)
            return b"".join(parts)
        except NotFoundError:
            raise
        except OSError as e:
            raise from_os_error(e, f"{self.url}: reading {relpath} at byte {start}") from e
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _publish(self, relpath: str, mode: int) -> Iterator[int]:
        """A temp file beside `relpath`, published atomically when the block succeeds; nothing
        is created if the path leads out of the root, and OSErrors become WriteErrors."""
        final = self._path(relpath)
        try:
            self._check_existing_ancestor(relpath)
            with atomic_output(final, mode) as fd:
                check_inside(self.root, final, "object", fd)  # the temp file, beside the target
                yield fd
        except OSError as e:
            raise from_os_error(e, f"{self.url}", writing=True) from e

    def put_file(self, src: Path, relpath: str, progress: Progress | None = None) -> None:
        try:
            src_fd = os.open(src, os.O_RDONLY)
        except OSError as e:
            raise from_os_error(e, f"local file {src}") from e
        try:
            with self._publish(relpath, 0o444) as fd:
                copy_fd(src_fd, fd, progress)
        finally:
            os.close(src_fd)

    def remove(self, relpath: str) -> None:
        parent_rel, _, name = check_relpath(relpath).rpartition("/")
        try:
            parent, dir_fd = self._open(parent_rel or ".", os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        except OSError as e:
            raise from_os_error(e, f"{self.url}: removing {relpath}", writing=True) from e
        try:
            with _writable_dir(parent):
                os.unlink(name, dir_fd=dir_fd)  # in the directory we checked, not a re-resolved path
        except FileNotFoundError:
            pass
        except OSError as e:
            raise from_os_error(e, f"{self.url}: removing {relpath}", writing=True) from e
        finally:
            os.close(dir_fd)
        for _ in range(_PRUNE_LEVELS):
            if parent == self.root:
                break
            try:
                with _writable_dir(parent.parent):
                    parent.rmdir()
            except OSError:
                break  # not empty (another key, a concurrent upload), or gone already
            parent = parent.parent

    def read_bytes(self, relpath: str) -> bytes:
        try:
            _, fd = self._open(relpath)
        except FileNotFoundError as e:
            raise NotFoundError(f"{self.url}: {relpath} not found") from e
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e
        finally:
            os.close(fd)

    def write_bytes(self, relpath: str, data: bytes) -> None:
        with self._publish(relpath, 0o644) as fd:
            write_all(fd, data)

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        top = self._path(prefix)
        errors: list[OSError] = []
        # os.walk never follows symlinks here, so a link cannot lead the listing out of the root
        for dirpath, _dirs, files in os.walk(top, onerror=errors.append):
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue  # an upload in flight (or left by a killed writer), not an object
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise from_os_error(e, f"{self.url}: {rel_dir}/{name}") from e
                if stat.S_ISREG(st.st_mode):
                    yield ObjectInfo(f"{rel_dir}/{name}", st.st_size)
        for err in errors:
            if not isinstance(err, FileNotFoundError) or err.filename != str(top):
                raise from_os_error(err, f"{self.url}: listing {prefix}")

    def iter_leftovers(self, prefix: str) -> Iterator[Leftover]:
        top = self._path(prefix)
        return self._leftovers(top, prefix)

    def _leftovers(self, top: Path, prefix: str) -> Iterator[Leftover]:
        dirs: dict[str, datetime] = {}
        files: list[str] = []
        errors: list[OSError] = []
        for dirpath, dirnames, names in os.walk(top, onerror=errors.append):
            rel_dir = os.path.relpath(dirpath, self.root)
            if dirpath != str(top):
                try:
                    dirs[rel_dir] = _utc(os.lstat(dirpath).st_mtime)
                except FileNotFoundError:
                    continue
            # a symlink to a directory is listed but never walked: it counts as a file here
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for name in names + links:
                files.append(f"{rel_dir}/{name}")
                if not name.startswith(TMP_PREFIX):
                    continue
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue  # published or removed meanwhile
                if stat.S_ISREG(st.st_mode):
                    yield Leftover(TEMP_FILE, f"{rel_dir}/{name}", _utc(st.st_mtime))
        for err in errors:
            if not isinstance(err, FileNotFoundError):
                raise from_os_error(err, f"{self.url}: listing {prefix}")
        for rel, touched in empty_dirs(dirs, files):
            yield Leftover(EMPTY_DIR, rel, touched)

    def remove_leftover(self, leftover: Leftover) -> None:
        relpath = check_relpath(leftover.relpath)
        if leftover.kind == TEMP_FILE and relpath.rpartition("/")[2].startswith(TMP_PREFIX):
            self.remove(relpath)  # prunes the key directory the temp file leaves empty
            return
        if leftover.kind != EMPTY_DIR:
            raise ValueError(f"{self.url} leaves no {leftover.kind}: {relpath} is not one of its leftovers")
        try:
            top, fd = self._open(relpath, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        except OSError as e:
            raise from_os_error(e, f"{self.url}: removing {relpath}", writing=True) from e
        os.close(fd)
        # innermost first, and rmdir only: a file a writer put there meanwhile stops the removal
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            path = Path(dirpath)
            try:
                with _writable_dir(path.parent):
                    path.rmdir()
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return
                raise from_os_error(e, f"{self.url}: removing {relpath}", writing=True) from e


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


@contextlib.contextmanager
def _writable_dir(directory: Path) -> Iterator[None]:
    """Temporarily add u+w to a directory made read-only (as git-annex does with its objects)."""
    try:
        mode = os.stat(directory).st_mode
    except OSError:
        yield
        return
    if mode & stat.S_IWUSR:
        yield
        return
    try:
        os.chmod(directory, mode | stat.S_IWUSR)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EROFS):
            raise
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.chmod(directory, mode)

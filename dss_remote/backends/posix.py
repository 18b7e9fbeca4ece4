"""Backend on a POSIX directory (local disk, NFS, GPFS, Lustre): atomic, durable, symlink-safe."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ria_store.atomic import atomic_output, copy_fd, write_bytes_atomic
from ria_store.errors import NotFoundError, from_os_error
from ria_store.store import check_inside

from .base import Backend, ObjectInfo, Progress, check_relpath

logger = logging.getLogger(__name__)

# remove() prunes directories it leaves empty: the key dir and the two hash dirs of an object tree.
_PRUNE_LEVELS = 3


class PosixBackend(Backend):
    """Objects are files under `root`; writes go through a temp file beside the target."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        super().__init__(url or f"file://{root}")
        self.root = root
        self.local_root = root

    def _path(self, relpath: str) -> Path:
        path = self.root / check_relpath(relpath)
        check_inside(self.root, path, "object")
        return path

    def info(self, relpath: str) -> ObjectInfo | None:
        path = self._path(relpath)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e
        if not stat.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(relpath, st.st_size)

    def get_file(self, relpath: str, dst_fd: int, progress: Progress | None = None) -> int:
        path = self._path(relpath)
        try:
            src = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e
        try:
            return copy_fd(src, dst_fd, progress)
        except OSError as e:
            raise from_os_error(e, f"copying {self.url}: {relpath}") from e
        finally:
            os.close(src)

    def put_file(self, src: Path, relpath: str, progress: Progress | None = None) -> None:
        final = self._path(relpath)
        try:
            src_fd = os.open(src, os.O_RDONLY)
        except OSError as e:
            raise from_os_error(e, f"local file {src}") from e
        try:
            with atomic_output(final) as fd:
                copy_fd(src_fd, fd, progress)
        except OSError as e:
            raise from_os_error(e, f"{self.url}", writing=True) from e
        finally:
            os.close(src_fd)

    def remove(self, relpath: str) -> None:
        path = self._path(relpath)
        try:
            with _writable_dir(path.parent):
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise from_os_error(e, f"{self.url}: removing {relpath}", writing=True) from e
        parent = path.parent
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
        path = self._path(relpath)
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"{self.url}: {relpath} not found") from e
        except OSError as e:
            raise from_os_error(e, f"{self.url}: {relpath}") from e

    def write_bytes(self, relpath: str, data: bytes) -> None:
        try:
            write_bytes_atomic(self._path(relpath), data)
        except OSError as e:
            raise from_os_error(e, f"{self.url}", writing=True) from e


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

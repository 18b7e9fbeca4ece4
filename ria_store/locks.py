"""Exclusive advisory locks on lock files (`flock`), waited for or only tried."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from .atomic import makedirs_durable
from .errors import from_os_error
from .sharing import open_created

#: group-writable in a group-shared store (every member takes the locks); less the umask elsewhere
LOCK_MODE = 0o664


class FileLock:
    """An exclusive `flock` on `path`, created (with its directories) when missing and never removed.

    Each FileLock opens its own descriptor, so two of them contend even inside one process (two
    threads, each with its own FileLock, serialise). Closing the descriptor releases the lock, so
    a process that dies releases it too. `with FileLock(path):` waits for the lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int:
        """The descriptor of the held lock file (its holder may write who it is into it)."""
        if self._fd is None:
            raise RuntimeError(f"lock {self.path} is not held")
        return self._fd

    def acquire(self, *, wait: bool = True) -> bool:
        """Take the lock, waiting for it (`wait`) or not; False only when not waiting and it is held
        elsewhere. True at once when this FileLock holds it already."""
        if self._fd is not None:
            return True
        try:
            makedirs_durable(self.path.parent)
            fd = open_created(self.path, os.O_RDWR, LOCK_MODE)
        except OSError as e:
            raise from_os_error(e, str(self.path), writing=True) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as e:
            os.close(fd)
            raise from_os_error(e, str(self.path)) from e
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

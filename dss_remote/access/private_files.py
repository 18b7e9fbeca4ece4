"""The files of `dss/access/` and `dss/audit/`: owner-only directories, atomic 0600 writes, and a
JSON file re-read only when it changed (a stat per request, so every server worker sees an edit).

In a store shared by a Unix group (ria_store/sharing.py) the group is the trust boundary: the
directories are 2770 and the files 0640, so every admin of the group can run `dss token` and
`dss acl`; other users still read nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from ria_store.atomic import fsync_dir, write_bytes_atomic
from ria_store.errors import ConfigError, from_os_error
from ria_store.locks import FileLock
from ria_store.sharing import is_shared

from ..config import paths

logger = logging.getLogger(__name__)

T = TypeVar("T")

PRIVATE_DIR_MODE = 0o700
SHARED_PRIVATE_DIR_MODE = 0o2770
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(store_root: Path, rel: str) -> Path:
    """`store_root/rel` and each missing directory on the way, owner-only (group-only when shared)."""
    path = store_root
    for part in Path(rel).parts:
        parent, path = path, path / part
        if path.is_dir():
            continue
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        except OSError as e:
            raise from_os_error(e, str(path), writing=True) from e
        # chmod, not mkdir's mode alone: the umask must not widen or narrow it
        os.chmod(path, SHARED_PRIVATE_DIR_MODE if is_shared(parent) else PRIVATE_DIR_MODE)
        fsync_dir(parent)
    return path


def edit_lock(store_root: Path) -> FileLock:
    """Held while a command reads, changes and writes back acl.json or issuers.json, so two
    admins' edits at once both land (the server only reads, and needs no lock)."""
    ensure_private_dir(store_root, paths.ACCESS)
    return FileLock(store_root / paths.ACCESS / ".edit.lock")


def write_private_json(path: Path, doc: object) -> None:
    """Write `doc` as JSON to `path` atomically, mode 0600 (0640 in a shared store)."""
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    try:
        write_bytes_atomic(path, data, PRIVATE_FILE_MODE)
    except OSError as e:
        raise from_os_error(e, str(path), writing=True) from e


def read_json(path: Path) -> object | None:
    """The JSON document in `path`, None if there is no such file; ConfigError if it is not JSON."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    try:
        doc: object = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); fix or remove it") from e
    return doc


class Watched(Generic[T]):
    """A file parsed by `parse` (None: the file is absent), parsed again only when its inode,
    size or mtime changed; thread-safe, as the server answers requests on several threads.

    A file that cannot be parsed (ConfigError) yields `damaged`, the value that lets nobody in,
    and one error in the log per version of the file: the server fails closed, not with a 500 on
    every request, until an admin fixes the file.
    """

    def __init__(self, path: Path, parse: Callable[[object | None], T], damaged: T) -> None:
        self.path = path
        self._parse = parse
        self._damaged = damaged
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value: T = damaged
        self._loaded = False

    def get(self) -> T:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        except OSError as e:
            raise from_os_error(e, str(self.path)) from e
        with self._lock:
            if not self._loaded or stamp != self._stamp:
                try:
                    self._value = self._parse(read_json(self.path) if stamp is not None else None)
                except ConfigError as e:
                    logger.error("%s; until it is fixed, it lets nobody in", e)
                    self._value = self._damaged
                self._stamp, self._loaded = stamp, True
            return self._value

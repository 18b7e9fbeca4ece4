"""Backend on any fsspec file system (memory:// in tests); http.py and sftp.py say how those differ."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ria_store.atomic import CHUNK, TMP_PREFIX, write_all
from ria_store.errors import (
    ConfigError,
    DssError,
    NotFoundError,
    UnavailableError,
    WriteError,
    from_os_error,
    one_line,
)

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

# file systems whose single write call is atomic for readers (all in this process): no temp name
_ATOMIC_PUT = frozenset({"memory"})
# fields of an fsspec `info` that change when a file is replaced (which exist depends on the file system)
_REVISION_FIELDS = ("ino", "mtime", "created", "ETag", "etag", "generation", "LastModified")


def _touched(st: dict[str, Any]) -> datetime:
    """When an entry was last written; now where the file system does not say (so an entry of
    unknown age counts as fresh and is left alone, unless every leftover is to go)."""
    value = st.get("mtime", st.get("created"))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return datetime.now(timezone.utc)


def _revision(st: dict[str, Any]) -> str | None:
    parts = [f"{name}={st[name]}" for name in _REVISION_FIELDS if st.get(name) is not None]
    return " ".join(parts) or None


class FsspecBackend(Backend):
    """Objects are files under the url's path on an fsspec file system.

    Writes are published atomically: on memory:// the whole content is handed over in one call
    (`pipe_file` stores a complete file object; a streamed write would be visible while it grows),
    elsewhere it goes to a temp name beside the target, then `_rename`. No checksums: the file
    systems reached this way keep none that dss could compare. Subclasses override `_open_fs`
    (how the file system is made), `_rename`, `_rmdir` and `_transport_error` (their transports' errors).
    """

    def __init__(self, url: str) -> None:
        super().__init__(url.rstrip("/"))
        parts = urlsplit(url)
        if not parts.scheme:
            raise ConfigError(f"mirror url {url!r} has no scheme; use e.g. memory://name or https://host/path")
        self.kind = parts.scheme
        self._fs_obj: Any = None
        self._root = ""
        self._lock = threading.RLock()  # the error mapping may reset the connection while it is held

    def _fs(self) -> Any:
        """The file system, opened on first use (a mirror that is never used is never contacted)."""
        with self._lock:
            if self._fs_obj is None:
                try:
                    fs, root = self._open_fs()
                except ImportError as e:
                    raise ConfigError(f"replica {self.url}: the {self.kind} file system needs {e.name}; "
                                      f"install it (pip install {e.name})") from e
                except DssError:
                    raise
                except Exception as e:
                    raise self._error(e, "", opening=True) from e
                self._root = str(root).rstrip("/")
                self._fs_obj = fs
            return self._fs_obj

    def _open_fs(self) -> tuple[Any, str]:
        """(file system, root path on it) for this backend's url."""
        from fsspec.core import url_to_fs  # noqa: PLC0415 - costs ~0.1 s, only for these mirrors

        try:
            fs, root = url_to_fs(self.url)
        except ValueError as e:
            raise ConfigError(f"replica {self.url}: fsspec has no file system for it "
                              f"({one_line(e)}); use s3://, gs://, file:// or memory://") from e
        return fs, str(root)

    def _path(self, relpath: str) -> str:
        check_relpath(relpath)  # before opening anything
        self._fs()  # sets self._root
        return f"{self._root}/{relpath}"

    def _transport_error(self, e: Exception, relpath: str, writing: bool) -> DssError | None:
        """The DssError for an error of this backend's transport, or None for the generic mapping."""
        return None

    def _error(self, e: Exception, relpath: str, writing: bool = False, opening: bool = False) -> DssError:
        where = f"replica {self.url}" + ("" if opening else f": {relpath}")
        if isinstance(e, DssError):
            return e
        mapped = self._transport_error(e, relpath, writing)
        if mapped is not None:
            return mapped
        if isinstance(e, FileNotFoundError):
            return NotFoundError(f"{where} not found")
        if isinstance(e, OSError) and e.errno is not None:
            return from_os_error(e, where, writing=writing)
        cls = WriteError if writing else UnavailableError
        return cls(f"{where}: {'write' if writing else 'read'} failed ({type(e).__name__}: {one_line(e)}); "
                   "check the mirror's url and the network")

    def _check_writable(self) -> None:
        if not self.writable:
            raise WriteError(f"replica {self.url} is a read-only mirror; write to the store (dss writes "
                             "every writable mirror with it), or to an s3://, gs:// or file:// mirror")

    def info(self, relpath: str) -> ObjectInfo | None:
        path = self._path(relpath)
        try:
            st = self._fs().info(path)
        except FileNotFoundError:
            return None
        except Exception as e:  # fsspec implementations raise their transports' own errors
            raise self._error(e, relpath) from e
        if st.get("type") != "file":
            return None
        return ObjectInfo(relpath, int(st.get("size") or 0), revision=_revision(st))

    def _open_for_read(self, path: str) -> Any:
        """A readable file object of `path` (subclasses: how their transport streams it)."""
        return self._fs().open(path, "rb")

    def get_file(self, relpath: str, dst_fd: int, progress: Progress | None = None) -> int:
        path = self._path(relpath)
        count = 0
        try:
            with self._open_for_read(path) as f:
                while chunk := f.read(CHUNK):
                    write_all(dst_fd, chunk)
                    count += len(chunk)
                    if progress is not None:
                        progress(count)
        except Exception as e:
            raise self._error(e, relpath) from e
        return count

    def read_range(self, relpath: str, start: int, length: int) -> bytes:
        path = self._path(relpath)
        check_range(start, length)
        try:
            fs = self._fs()
            if length == 0:
                if fs.info(path).get("type") != "file":
                    raise FileNotFoundError(path)
                return b""
            data = fs.cat_file(path, start=start, end=start + length)
        except Exception as e:
            raise self._error(e, relpath) from e
        if len(data) > length:
            raise UnavailableError(f"replica {self.url}: the server ignored the byte range asked for "
                                   f"{relpath}; serve the mirror from a server that supports Range requests")
        return bytes(data)

    def _publish(self, relpath: str, source: Any, progress: Progress | None) -> None:
        """Write the chunks `source` yields as `relpath`, atomically."""
        self._check_writable()
        path = self._path(relpath)
        fs = self._fs()
        if self.kind in _ATOMIC_PUT:
            data = bytearray()
            for chunk in source:
                data += chunk
                if progress is not None:
                    progress(len(data))
            try:
                fs.pipe_file(path, bytes(data))
            except Exception as e:
                raise self._error(e, relpath, writing=True) from e
            return
        parent, _, name = path.rpartition("/")
        tmp = f"{parent}/{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}"
        try:
            fs.makedirs(parent, exist_ok=True)  # a no-op on object stores, needed on file systems
            count = 0
            with fs.open(tmp, "wb") as f:
                for chunk in source:
                    f.write(chunk)
                    count += len(chunk)
                    if progress is not None:
                        progress(count)
            self._rename(fs, tmp, path)
        except BaseException as e:
            try:
                fs.rm_file(tmp)
            except Exception as cleanup:  # absent already, or the file system is gone
                logger.debug("replica %s: could not remove %s: %s", self.url, tmp, cleanup)
            if isinstance(e, Exception):
                raise self._error(e, relpath, writing=True) from e
            raise

    def _rename(self, fs: Any, tmp: str, path: str) -> None:
        """Replace `path` with `tmp` in one step (readers see the old or the new object)."""
        fs.mv(tmp, path)

    def _rmdir(self, fs: Any, path: str) -> None:
        """Remove the empty directory `path`; an error if it is not empty."""
        fs.rmdir(path)

    def put_file(self, src: Path, relpath: str, progress: Progress | None = None) -> None:
        self._check_writable()
        self._path(relpath)
        try:
            f = open(src, "rb")  # closed below, after the upload
        except OSError as e:
            raise from_os_error(e, f"local file {src}") from e

        def chunks() -> Iterator[bytes]:
            try:
                while chunk := f.read(CHUNK):
                    yield chunk
            except OSError as e:
                raise from_os_error(e, f"local file {src}") from e

        with f:
            self._publish(relpath, chunks(), progress)

    def remove(self, relpath: str) -> None:
        self._check_writable()
        path = self._path(relpath)
        fs = self._fs()
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as e:
            raise self._error(e, relpath, writing=True) from e
        if self.kind not in _ATOMIC_PUT:
            self._prune(fs, path.rpartition("/")[0])

    def read_bytes(self, relpath: str) -> bytes:
        path = self._path(relpath)
        try:
            return bytes(self._fs().cat_file(path))
        except Exception as e:
            raise self._error(e, relpath) from e

    def write_bytes(self, relpath: str, data: bytes) -> None:
        self._publish(relpath, iter([data]), None)

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        return self._find(self._path(prefix).rstrip("/"), prefix)

    def _find(self, top: str, prefix: str) -> Iterator[ObjectInfo]:
        skip = len(self._root) + 1
        try:
            found = self._fs().find(top, detail=True)
        except FileNotFoundError:
            return
        except Exception as e:
            raise self._error(e, prefix) from e
        for name, st in found.items():
            path = str(name)
            if st.get("type") != "file" or path.rpartition("/")[2].startswith(TMP_PREFIX):
                continue  # an upload in flight, not an object
            if not path.startswith(top + "/"):
                continue  # `find` on a file path lists that file itself
            yield ObjectInfo(path[skip:], int(st.get("size") or 0))

    def iter_leftovers(self, prefix: str) -> Iterator[Leftover]:
        check_relpath(prefix)
        if not self.writable or self.kind in _ATOMIC_PUT:
            return iter(())  # never written, or written in one call: no write leaves anything
        return self._leftovers(self._path(prefix).rstrip("/"), prefix)

    def _leftovers(self, top: str, prefix: str) -> Iterator[Leftover]:
        skip = len(self._root) + 1
        try:
            found = self._fs().find(top, withdirs=True, detail=True)
        except FileNotFoundError:
            return
        except Exception as e:
            raise self._error(e, prefix) from e
        dirs: dict[str, datetime] = {}
        files: list[str] = []
        for name, st in found.items():
            path = str(name)
            if not path.startswith(top + "/"):
                continue  # `find` lists the top directory itself too
            rel = path[skip:]
            if st.get("type") == "directory":
                dirs[rel] = _touched(st)
                continue
            files.append(rel)
            if st.get("type") == "file" and rel.rpartition("/")[2].startswith(TMP_PREFIX):
                yield Leftover(TEMP_FILE, rel, _touched(st))
        for rel, touched in empty_dirs(dirs, files):
            yield Leftover(EMPTY_DIR, rel, touched)

    def remove_leftover(self, leftover: Leftover) -> None:
        self._check_writable()
        path = self._path(leftover.relpath)
        fs = self._fs()
        if leftover.kind == TEMP_FILE and path.rpartition("/")[2].startswith(TMP_PREFIX):
            try:
                fs.rm_file(path)
            except FileNotFoundError:
                pass
            except Exception as e:
                raise self._error(e, leftover.relpath, writing=True) from e
            self._prune(fs, path.rpartition("/")[0])
            return
        if leftover.kind != EMPTY_DIR:
            raise ValueError(f"{self.url} leaves no {leftover.kind}: {leftover.relpath} is not one of "
                             "its leftovers")
        try:
            found = fs.find(path, withdirs=True, detail=True)
        except FileNotFoundError:
            return
        except Exception as e:
            raise self._error(e, leftover.relpath) from e
        if any(st.get("type") != "directory" for st in found.values()):
            return  # a writer put a file there meanwhile: not a leftover any more
        # innermost first
        for d in sorted((str(n).rstrip("/") for n in found), key=lambda n: n.count("/"), reverse=True):
            try:
                self._rmdir(fs, d)
            except FileNotFoundError:
                continue
            except Exception as e:
                logger.debug("replica %s: could not remove %s: %s", self.url, d, e)
                return

    def _prune(self, fs: Any, directory: str) -> None:
        """Remove `directory` and up to two above it while empty (the key and hash directories
        a removed file leaves behind), never the root."""
        for _ in range(3):
            if not directory.startswith(self._root + "/"):
                return
            try:
                if fs.ls(directory, detail=False):
                    return
                self._rmdir(fs, directory)
            except Exception as e:  # gone already, or not empty after all (a concurrent writer)
                logger.debug("replica %s: left %s: %s", self.url, directory, e)
                return
            directory = directory.rpartition("/")[0]

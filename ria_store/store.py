"""RIA stores on a POSIX path: create, check layout versions, dataset directories and aliases."""

from __future__ import annotations

import functools
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .atomic import makedirs_durable, write_bytes_atomic
from .errors import DssError, LayoutError, UnavailableError, UnsafePathError, from_os_error
from .layout import (
    ALIAS_DIR,
    ARCHIVE_PATH,
    DEFAULT_OBJECT_TREE_VERSION,
    ERROR_LOGS_DIR,
    OBJECT_TREE_VERSIONS,
    OBJECTS_DIR,
    STORE_LAYOUT_VERSIONS,
    VERSION_FILE,
    alias_target,
    check_alias,
    check_dataset_id,
    dataset_relpath,
    parse_version_file,
)
from .listing import list_dir

logger = logging.getLogger(__name__)

# What a store root may hold besides datasets (`<3 hex>/` dirs) when `create_store` adopts it.
_STORE_ENTRIES = {VERSION_FILE, ERROR_LOGS_DIR, ALIAS_DIR, "dss"}


@dataclass(frozen=True)
class Store:
    """An opened store root with its layout version."""

    path: Path
    version: str
    flags: frozenset[str]

    def dataset_dir(self, dsid: str) -> Path:
        return self.path / dataset_relpath(dsid)


@dataclass(frozen=True)
class Dataset:
    """An opened dataset directory in a store with its object-tree layout version."""

    store: Store
    dataset_id: str
    path: Path
    version: str
    flags: frozenset[str]


def read_version(directory: Path, what: str) -> tuple[str, frozenset[str]]:
    """Read `<directory>/ria-layout-version`; LayoutError if missing, UnavailableError if unreadable."""
    f = directory / VERSION_FILE
    try:
        text = f.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        kind, fix = (("store", "dss init") if what == "store"
                     else ("dataset directory", "dss create-sibling"))
        raise LayoutError(f"{what} {directory} has no {VERSION_FILE} file, so it is not a RIA "
                          f"{kind} (create it with `{fix}` or fix the URL)") from e
    except IsADirectoryError as e:
        raise LayoutError(f"{what} {directory}: {VERSION_FILE} is a directory, not a file") from e
    except OSError as e:
        raise UnavailableError(f"{what} {directory}: cannot read {VERSION_FILE}: "
                               f"{e.strerror} (check the mount and permissions)") from e
    return parse_version_file(text, f"{what} {directory}")


def open_store(root: Path) -> Store:
    """Check that `root` is a reachable RIA store of a known layout version."""
    try:
        st = root.stat()
    except FileNotFoundError as e:
        raise UnavailableError(f"store {root} not found (is the file system mounted on this machine? "
                               "create a store with `dss init`)") from e
    except OSError as e:
        raise UnavailableError(f"store {root} unreachable: {e.strerror} (check the mount and "
                               "permissions)") from e
    if not _is_dir(st):
        raise LayoutError(f"store {root} is not a directory (fix the URL)")
    version, flags = read_version(root, "store")
    if version not in STORE_LAYOUT_VERSIONS:
        raise LayoutError(f"store {root} has ria-layout-version {version!r}, which this dss-remote "
                          f"does not know (known: {', '.join(STORE_LAYOUT_VERSIONS)}); upgrade "
                          "dss-remote")
    return Store(root, version, flags)


def open_dataset(store: Store, dsid: str) -> Dataset:
    """Check that the dataset directory exists and has a known object-tree version."""
    path = store.dataset_dir(dsid)
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise UnavailableError(
            f"dataset {dsid} not found in store {store.path} (create it with `dss create-sibling` "
            "or check archive-id)") from e
    except OSError as e:
        raise UnavailableError(f"dataset dir {path} unreachable: {e.strerror} (check permissions)") from e
    if not _is_dir(st):
        raise LayoutError(f"dataset dir {path} is not a directory")
    version, flags = read_version(path, "dataset")
    if version not in OBJECT_TREE_VERSIONS:
        raise LayoutError(f"dataset {path} has ria-layout-version {version!r}, which this "
                          f"dss-remote does not know (known: {', '.join(OBJECT_TREE_VERSIONS)}); "
                          "upgrade dss-remote")
    return Dataset(store, dsid, path, version, store.flags | flags)


def create_store(root: Path) -> bool:
    """Create an empty RIA store at `root`; return False if it already was one (idempotent).

    Refuses a directory that holds anything but a RIA store.
    """
    if root.exists() and not root.is_dir():
        raise LayoutError(f"cannot create a store at {root}: it exists and is not a directory")
    if (root / VERSION_FILE).exists():
        open_store(root)  # validates the version
        existed = True
    else:
        if root.is_dir():
            foreign = sorted(p.name for p in root.iterdir() if p.name not in _STORE_ENTRIES)
            if foreign:
                raise LayoutError(
                    f"cannot create a store at {root}: the directory holds other things "
                    f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                    "choose an empty or new directory")
        existed = False
    try:
        makedirs_durable(root / ERROR_LOGS_DIR)
        makedirs_durable(root / ALIAS_DIR)
        if not existed:
            write_bytes_atomic(root / VERSION_FILE, f"{STORE_LAYOUT_VERSIONS[0]}\n".encode())
    except OSError as e:
        raise _write_error(root, e) from e
    return not existed


def create_dataset(store: Store, dsid: str, alias: str | None = None,
                   object_tree_version: str = DEFAULT_OBJECT_TREE_VERSION) -> Path:
    """Create (idempotently) the dataset directory: version file, `annex/objects/`, `archives/`."""
    check_dataset_id(dsid)
    if alias is not None:
        check_alias(alias)
    path = store.dataset_dir(dsid)
    if (path / VERSION_FILE).exists():
        open_dataset(store, dsid)
    else:
        try:
            makedirs_durable(path)
            write_bytes_atomic(path / VERSION_FILE, f"{object_tree_version}\n".encode())
        except OSError as e:
            raise _write_error(store.path, e) from e
    try:
        makedirs_durable(path / OBJECTS_DIR)
        makedirs_durable((path / ARCHIVE_PATH).parent)
    except OSError as e:
        raise _write_error(store.path, e) from e
    if alias is not None:
        set_alias(store, dsid, alias)
    return path


def alias_is_set(store: Store, dsid: str, alias: str) -> bool:
    """True if `alias` already names `dsid`, False if it is free; LayoutError if it names another."""
    link = store.path / ALIAS_DIR / check_alias(alias)
    if not os.path.lexists(link):
        return False
    if os.path.islink(link) and os.readlink(link) == alias_target(dsid):
        return True
    try:
        other = resolve_alias(store, alias, check=False)
    except (UnsafePathError, UnavailableError):
        other = f"something else ({link})"
    raise LayoutError(f"alias {alias!r} in store {store.path} already names dataset {other}; "
                      "choose another --alias")


def set_alias(store: Store, dsid: str, alias: str) -> None:
    """Point `alias/<alias>` at the dataset; fine if it already does, an error if it names another."""
    if alias_is_set(store, dsid, alias):
        return
    link = store.path / ALIAS_DIR / alias
    target = alias_target(dsid)
    try:
        makedirs_durable(link.parent)
        os.symlink(target, link)
    except OSError as e:
        raise _write_error(store.path, e) from e


def resolve_alias(store: Store, alias: str, check: bool = True) -> str:
    """Return the dataset id an alias names; refuse links that leave the store."""
    link = store.path / ALIAS_DIR / check_alias(alias)
    if not os.path.islink(link):
        raise UnavailableError(f"alias {alias!r} not found in store {store.path} "
                               "(list aliases with `ls <store>/alias`)")
    real = os.path.realpath(link)
    rel = _relative_inside(_realpath_cached(str(store.path)), real)
    parts = rel.split(os.sep) if rel else []
    if len(parts) != 2:
        raise UnsafePathError(f"alias {alias!r} in store {store.path} points outside the store's "
                              f"dataset directories ({os.readlink(link)!r}); remove the link")
    dsid = parts[0] + parts[1]
    check_dataset_id(dsid)
    if check and not (Path(real) / VERSION_FILE).exists():
        raise UnavailableError(f"alias {alias!r} points to missing dataset {dsid}")
    return dsid


def unsafe_aliases(root: Path) -> list[tuple[str, str]]:
    """(name, link target) of each link in the store's `alias/` that does not lead to one of its
    dataset directories: `resolve_alias` refuses them, but DataLad would follow one."""
    out = []
    store_real = _realpath_cached(str(root))
    for name in list_dir(root / ALIAS_DIR):
        link = root / ALIAS_DIR / name
        if not os.path.islink(link):
            continue
        rel = _relative_inside(store_real, os.path.realpath(link))
        parts = rel.split(os.sep) if rel else []
        try:
            if len(parts) != 2:
                raise UnsafePathError(name)
            check_dataset_id(parts[0] + parts[1])
        except UnsafePathError:
            out.append((name, os.readlink(link)))
    return out


def iter_datasets(store: Store) -> Iterator[str]:
    """Dataset ids with a directory in the store (sorted)."""
    for top in sorted(store.path.iterdir()):
        if len(top.name) != 3 or not top.is_dir():
            continue
        for sub in sorted(top.iterdir()):
            if not sub.is_dir():
                continue
            dsid = top.name + sub.name
            try:
                check_dataset_id(dsid)
            except UnsafePathError:
                continue
            yield dsid


def check_inside(base: Path, path: Path, what: str, fd: int | None = None) -> Path:
    """Return the real path of `path` if it stays inside realpath(base); UnsafePathError otherwise.

    With `fd` (an open descriptor of `path`), the check is of what was actually opened: one
    readlink of /proc/self/fd instead of an lstat per component, and no check-then-use race.
    """
    real = _fd_path(fd) if fd is not None else None
    if real is None:
        real = os.path.realpath(path)
    if _relative_inside(_realpath_cached(str(base)), real) is None:
        raise UnsafePathError(f"{what} {path} resolves to {real}, outside {base} (a symlink leads "
                              "out of the store; remove it)")
    return Path(real)


def _fd_path(fd: int) -> str | None:
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc (not Linux): the caller falls back to realpath
        return None
    return real if real.startswith("/") else None


@functools.lru_cache(maxsize=64)
def _realpath_cached(base: str) -> str:
    return os.path.realpath(base)


def _relative_inside(root: str, real: str) -> str | None:
    """`real` relative to `root` ('' for root itself), None if outside; both already resolved."""
    if real == root:
        return ""
    prefix = root.rstrip(os.sep) + os.sep
    return real[len(prefix):] if real.startswith(prefix) else None


def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)


def _write_error(root: Path, e: OSError) -> DssError:
    return from_os_error(e, f"store {root}", writing=True)

"""The store's tree under `/ria/`, read-only, for `datalad clone ria+http://HOST/ria#ID` and our remote.

What is served is an allow-list: the store's `ria-layout-version` and `dss/config.json` (no
secrets), each dataset directory's files that a clone reads (git's dumb-HTTP files `HEAD`,
`info/refs`, `objects/...`, `refs/...`, `packed-refs`; `annex/objects/...`; `archives/...`;
`ria-layout-version`) and, instead of the bare repo's real `config`, the public one the mirrors
get; `alias/NAME/...` as the dataset it names; `dss/bundles/ID/...` by that dataset's rules.
Everything else (hooks, access, audit, subscriptions, outboxes, logs, locks, the repair queue,
the event journal) is 404. A dataset's files go to whoever may read it: anonymous callers of a
private dataset get 401 with a Basic challenge, as git and DataLad send `~/.netrc` credentials
only after one (a dss token is the password). Paths are checked before anything is opened:
no `.`/`..` or empty segment (also percent-encoded), no encoded `/` or `\\`, no NUL; what was
opened must lie in its dataset's directory (a symlink out of it, or into another dataset, is
refused). Files stream from disk (Starlette's FileResponse) with `Range` support.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from ria_store.errors import DssError, UnsafePathError
from ria_store.layout import ALIAS_DIR, VERSION_FILE, check_dataset_id
from ria_store.store import check_inside, open_store, resolve_alias

from ..access.gate import Identity
from ..config import paths
from ..replication.gitsync import public_git_config
from .caller import caller, gate_of, require_read
from .errors import ApiError
from .ranges import parse_range

logger = logging.getLogger(__name__)

router = APIRouter()

PREFIX = "/ria"
#: git and DataLad answer a 401 with `~/.netrc` credentials only when challenged for Basic
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="dss"'}
#: files of the store root that anyone may read
_STORE_FILES = {(VERSION_FILE,), tuple(paths.CONFIG.split("/"))}
#: a dataset directory's single files a clone reads
_DATASET_FILES = {(VERSION_FILE,), ("HEAD",), ("packed-refs",), ("info", "refs")}
#: a dataset directory's subtrees a clone reads (git objects and refs, annex objects, archives)
_DATASET_TREES = {("objects",), ("refs",), ("annex", "objects"), ("archives",)}
_BAD_ESCAPES = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


def _not_served(rel: str) -> ApiError:
    return ApiError(404, "not_found", f"/ria/{rel} is not served: only what `datalad clone` "
                    "reads from a dataset is (see `dss serve` in the README)")


def _segments(request: Request) -> list[str]:
    """The path below /ria/ as checked segments; 400 for anything that could leave its place."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    raw_text = raw.decode("latin-1").split("?", 1)[0]
    if _BAD_ESCAPES.search(raw_text):
        raise ApiError(400, "illegal_arguments", "the path holds an encoded '/', '\\' or NUL; "
                       "request the file by its plain path")
    path = unquote(raw_text)
    if not path.startswith(PREFIX + "/"):
        raise _not_served(path)
    rel = path[len(PREFIX) + 1:]
    segments = rel.split("/")
    if any(s in ("", ".", "..") or "\\" in s or "\x00" in s for s in segments):
        raise ApiError(400, "illegal_arguments", f"/ria/{rel} has an empty, '.' or '..' segment or "
                       "a backslash or NUL; request the file by its plain path under /ria/")
    return segments


def _who(request: Request) -> Identity | None:
    try:
        who = caller(request)
    except ApiError as e:
        raise _basic(e) from None
    request.state.who = who
    return who


def _basic(e: ApiError) -> ApiError:
    """The same refusal, with the Basic challenge that makes git and DataLad send credentials."""
    if e.status == 401:
        e.headers = dict(BASIC_CHALLENGE)
    return e


def _require_read(request: Request, who: Identity | None, dsid: str) -> None:
    try:
        require_read(request, who, dsid)
    except ApiError as e:
        raise _basic(e) from None


def _audit(request: Request, status: int, dataset: str | None) -> None:
    """Keep a refusal that did not go through `caller.deny` (a symlink out of its place)."""
    who = request.state.who if hasattr(request.state, "who") else None
    gate_of(request).audit({"identity": who.user if who else None,
                            "remote": request.client.host if request.client else None,
                            "method": request.method, "path": request.url.path, "dataset": dataset,
                            "status": status})


def _file(request: Request, root: Path, place: list[str], rel: list[str], *, shown: str,
          dataset: str | None = None) -> Response:
    """The regular file `root/place/rel`, if it exists and what was opened lies in `place`, judged
    from the store's real root: a symlinked dataset directory counts as leaving it."""
    path = root.joinpath(*place, *rel)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(shown) from None
    except OSError as e:
        logger.warning("cannot open %s: %s", path, e)
        raise ApiError(404, "not_found", f"/ria/{shown} cannot be read on the server") from e
    try:
        real = check_inside(root, path, f"/ria/{shown}", fd=fd)
        inside = real.relative_to(os.path.realpath(root)).parts
        if list(inside[:len(place)]) != place:
            raise UnsafePathError(f"/ria/{shown} resolves to {real}, outside {'/'.join(place)}")
        st = os.fstat(fd)
    except UnsafePathError as e:
        logger.warning("refused %s: %s", shown, e)
        _audit(request, 403, dataset)
        raise ApiError(403, "forbidden", f"/ria/{shown} leads outside its place in the store (a "
                       "symlink); it is not served") from e
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise _not_found(shown)
    # validated as the API's files are (416 in a DSS error body); FileResponse then serves it
    parse_range(request.headers.get("range"), st.st_size)
    return FileResponse(real, stat_result=st, media_type="application/octet-stream")


def _not_found(shown: str) -> ApiError:
    return ApiError(404, "not_found", f"/ria/{shown} does not exist in this store")


def _dataset(request: Request, root: Path, dsid: str, rel: list[str], shown: str) -> Response:
    """A file of dataset `dsid`'s directory, by the allow-list, to a reader of it."""
    key = tuple(rel)
    if key != ("config",) and key not in _DATASET_FILES and not any(
            key[:len(t)] == t and len(key) > len(t) for t in _DATASET_TREES):
        raise _not_served(shown)
    _require_read(request, _who(request), dsid)
    place = [dsid[:3], dsid[3:]]
    base = root.joinpath(*place)
    if not (base / VERSION_FILE).is_file():
        raise _not_found(shown)
    if key == ("config",):
        try:
            data = public_git_config(base)
        except DssError as e:
            logger.warning("%s", e)
            raise ApiError(404, "not_found", f"/ria/{shown} cannot be read on the server") from e
        return Response(data, media_type="text/plain")
    return _file(request, root, place, rel, shown=shown, dataset=dsid)


@router.api_route(PREFIX + "/{rest:path}", methods=["GET", "HEAD"], include_in_schema=False)
def ria_tree(request: Request) -> Response:
    """One file of the store tree (see the module docstring)."""
    segments = _segments(request)
    shown = "/".join(segments)
    root: Path = request.app.state.store_root
    if tuple(segments) in _STORE_FILES:
        return _file(request, root, [], segments, shown=shown)
    if segments[0] == ALIAS_DIR and len(segments) > 2:
        try:
            dsid = resolve_alias(open_store(root), segments[1])
        except DssError as e:  # not an alias, a missing dataset, or a link out of the store
            logger.info("alias %s: %s", segments[1], e)
            raise _not_found(shown) from e
        return _dataset(request, root, dsid, segments[2:], shown)
    if segments[:2] == paths.BUNDLES.split("/") and len(segments) > 3:
        dsid = segments[2]
        try:
            check_dataset_id(dsid)
        except UnsafePathError:
            raise _not_served(shown) from None
        _require_read(request, _who(request), dsid)
        return _file(request, root, segments[:3], segments[3:], shown=shown, dataset=dsid)
    if len(segments) > 2 and len(segments[0]) == 3:
        try:
            dsid = check_dataset_id(segments[0] + segments[1])
        except UnsafePathError:
            raise _not_served(shown) from None
        return _dataset(request, root, dsid, segments[2:], shown)
    raise _not_served(shown)

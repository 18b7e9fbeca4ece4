"""The DSS write API: `PUT /v1/files/{uuid}`, `PUT|PATCH|DELETE /v1/bundles/{uuid}`.

A file version is deposited in the store's file pool (service/file_pool.py) from a staging bucket
the store allows or from a finished direct upload (uploads_api.py); a bundle version becomes a
commit of the dataset (service/bundle_commit.py) with its keys on every replica first. Statuses as
the DSS answers: 201 new, 200 the identical thing exists, 409 something else exists under that
uuid and version. A staged object larger than `server.async_copy_bytes` (64 MiB) is copied in the
background: 202, and the client polls HEAD /v1/files until it is 200 (service/deposit_jobs.py).

Who may: depositing a file needs a signed-in caller (the pool record names them, and only they
or an admin may put it in a bundle); a bundle needs write access to its dataset, or, for a new
uuid, the store's create right (`dss acl default STORE --create GROUP`); a tombstone is for admins.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from ria_store.errors import AccessError, CorruptError, DssError, NotFoundError, UnavailableError
from ria_store.keys import parse_key

from ..access.gate import Identity
from ..history import bundle_store, bundles, times
from ..service import bundle_commit, bundle_delete, deposit_jobs, file_pool, pool_mirrors, staging, uploads
from ..service.bundle_commit import BundleFile
from ..service.names import check_name
from . import params
from .app_state import file_index, store_root
from .caller import caller, gate_of
from .errors import ApiError
from .write_access import audit_write, require_admin, require_create, require_write, signed_in, writable

logger = logging.getLogger(__name__)

router = APIRouter()

#: add_files / remove_files of one PATCH, as the DSS limits them
PATCH_LIMIT = 1000
Json = Annotated[dict[str, Any], Body()]


def _bad(title: str, code: str = "illegal_arguments") -> ApiError:
    return ApiError(400, code, title)


def _checked_write(request: Request, uuid: str) -> None:
    """What every write route checks first: a writable server, then its parameters."""
    writable(request)
    params.check_known(request, ("replica", "version"))
    params.check_uuid(uuid)
    params.replica(request)


def _version_required(request: Request) -> str:
    version = params.version(request)
    if version is None:
        raise _bad("version is required: a version like 2026-11-22T031533.123456Z (DSS clients choose it)")
    return version


def _creator(body: dict[str, Any]) -> int:
    value = body.get("creator_uid", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("creator_uid must be an integer")
    return value


def _fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r}; this request takes {', '.join(sorted(allowed))}")


#: our errors of a write as DSS statuses, first match wins (anything else is 400)
_STATUSES: tuple[tuple[type[DssError] | tuple[type[DssError], ...], int, str], ...] = (
    ((file_pool.VersionConflict, bundle_store.VersionRefused), 409, "conflict"),
    (file_pool.ChecksumMismatch, 422, "invalid_checksum"),
    (NotFoundError, 404, "not_found"),
    (AccessError, 403, "forbidden"),
    ((UnavailableError, CorruptError), 503, "unavailable"),
)


def _service_error(e: DssError) -> ApiError:
    for kinds, status, code in _STATUSES:
        if isinstance(e, kinds):
            return ApiError(status, code, str(e), {"Retry-After": "30"} if status == 503 else None)
    return ApiError(400, "illegal_arguments", str(e))


# -- files

def _upload_id(request: Request, url: str) -> str | None:
    """The upload a `source_url` names: this server's `/v1/uploads/<id>` URL."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.path.startswith("/v1/uploads/"):
        return parts.path[len("/v1/uploads/"):]
    return None


@router.put("/v1/files/{uuid}")
def put_file(uuid: str, request: Request, body: Json) -> JSONResponse:
    """Deposit a file version from a staging bucket or a finished upload."""
    _checked_write(request, uuid)
    version = _version_required(request)
    who = signed_in(request, caller(request), "depositing a file")
    _fields(body, {"creator_uid", "source_url", "content_type", "bundle_uuid"})
    source = body.get("source_url")
    if not isinstance(source, str) or not source:
        raise _bad("source_url is required: s3://BUCKET/KEY, gs://BUCKET/KEY, or the URL of a finished "
                   "upload (POST /v1/uploads)")
    content_type = body.get("content_type") or None  # None: the name's (file_pool.deposit)
    if content_type is not None and (not isinstance(content_type, str) or len(content_type) > 200):
        raise _bad("content_type must be a media type string")
    root = store_root(request)
    upload_id = _upload_id(request, source)
    deposit = functools.partial(file_pool.deposit, root, uuid=uuid, version=version,
                                content_type=content_type, creator_uid=_creator(body), owner=who.user,
                                source=source, replicate=functools.partial(pool_mirrors.replicate, root))
    try:
        done = file_pool.lookup(root, uuid, version) if upload_id is not None else None
        if (upload_id is not None and done is not None and done.owner == who.user
                and _upload_id(request, done.source) == upload_id):
            # this very upload (by its id: its URL names whichever server took the first PUT) was
            # deposited as this file version, and the answer was lost: the same answer again; an
            # upload a kill left between the deposit and its removal is removed now
            record, created = done, False
            uploads.remove(root, upload_id)
        elif upload_id is not None:
            upload = uploads.get(root, upload_id)
            if upload.owner != who.user:
                raise NotFoundError(f"no upload {upload_id} of {who.user}")
            declared = {k[len("hca-dss-"):]: v for k, v in upload.metadata.items()
                        if k.startswith("hca-dss-")}
            record, created = deposit(uploads.take(root, upload_id), name=upload.metadata.get("filename", ""),
                                      declared=declared)
            uploads.remove(root, upload_id)
        else:
            failed = deposit_jobs.failure(root, uuid, version)
            if failed is not None:  # a background copy failed since the client's last PUT
                audit_write(request, who, failed[0], file=f"{uuid}.{version}", source=source)
                raise ApiError(failed[0], "copy_failed", failed[1])
            staged = staging.look(source, request.app.state.settings.staging_buckets)
            known = _known(root, uuid, version, staged)
            if known is not None:
                record, created = known, False
            elif staged.size > request.app.state.settings.async_copy_bytes:
                return _copy_later(request, who, staged, deposit)
            else:
                got = staging.fetch(root, staged)
                record, created = deposit(got.path, name=got.name, declared=got.declared, need_sha256=True)
    except DssError as e:
        err = _service_error(e)
        audit_write(request, who, err.status, file=f"{uuid}.{version}", source=source)
        raise err from e
    status = 201 if created else 200
    audit_write(request, who, status, file=f"{uuid}.{version}", key=record.key, source=source)
    return JSONResponse({"version": version}, status_code=status)


def _known(root: Path, uuid: str, version: str, staged: staging.Source) -> file_pool.FileRecord | None:
    """The file version when it is already deposited with what the staged object declares (200
    without reading it again); VersionConflict when it is deposited with other content."""
    record = file_pool.lookup(root, uuid, version)
    if record is None or "sha256" not in staged.declared:
        return None
    if record.size == staged.size and record.checksums.get("sha256") == staged.declared["sha256"].lower():
        return record
    raise file_pool.VersionConflict(f"file {uuid} version {version} exists with other content "
                                    f"({record.key}); deposit this content under a new version")


def _copy_later(request: Request, who: Identity, staged: staging.Source,
                deposit: Callable[..., tuple[file_pool.FileRecord, bool]]) -> JSONResponse:
    """202: a large staged object is copied in the background; HEAD the file until it is 200."""
    root = store_root(request)
    uuid = request.path_params["uuid"]
    version = str(request.query_params.get("version"))

    def work() -> None:
        got = staging.fetch(root, staged)
        deposit(got.path, name=got.name, declared=got.declared, need_sha256=True)

    def error(e: Exception) -> tuple[int, str]:
        if isinstance(e, DssError):
            err = _service_error(e)
            return err.status, err.title
        return 503, f"the background copy of {staged.url} failed ({type(e).__name__}); PUT the file again"

    started = deposit_jobs.start(root, uuid, version, source=staged.url, work=work, error=error)
    audit_write(request, who, 202, file=f"{uuid}.{version}", source=staged.url, started=started)
    return JSONResponse({"version": version, "task_id": f"{uuid}.{version}"}, status_code=202)


# -- bundles

def _files_of(request: Request, who: Identity, entries: object, what: str) -> list[BundleFile]:
    if not isinstance(entries, list):
        raise _bad(f"{what} must be a list of {{uuid, version, name, indexed}}")
    out: list[BundleFile] = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _bad(f"{what}[{i}] must be an object {{uuid, version, name, indexed}}")
        try:
            name = check_name(entry.get("name"))
        except DssError as e:
            raise _bad(f"{what}[{i}]: {e}") from e
        if name in names:
            raise _bad(f"{what}[{i}]: file name {name!r} appears twice; names of a bundle are unique",
                       "duplicate_filename")
        names.add(name)
        fuuid, fversion = entry.get("uuid"), entry.get("version")
        if not isinstance(fuuid, str) or not isinstance(fversion, str):
            raise _bad(f"{what}[{i}] ({name}) needs the file's uuid and version")
        params.check_uuid(fuuid, f"{what}[{i}].uuid")
        try:
            bundles.parse_version(fversion)
        except DssError as e:
            raise _bad(f"{what}[{i}].version {fversion[:80]!r} is not a version like "
                       "2026-11-22T031533.123456Z") from e
        out.append(_resolve(request, who, name, fuuid, fversion))
    return out


def _resolve(request: Request, who: Identity, name: str, fuuid: str, fversion: str) -> BundleFile:
    """A named file version: one deposited by the caller, or one of a bundle they may read."""
    root = store_root(request)
    record = file_pool.lookup(root, fuuid, fversion)
    if record is not None and (record.owner == who.user or gate_of(request).is_admin(who)):
        return BundleFile(name, record.key, record.size, fuuid, fversion, record.content_type)
    found = file_index(request).file(fuuid, fversion)
    if found is not None and gate_of(request).may_read(who, found.dataset_id):
        if found.type != "annex":
            raise _bad(f"file {fuuid} version {fversion} ({name}) is stored in git in dataset "
                       f"{found.dataset_id}, not annexed; deposit its content with PUT /v1/files and "
                       "name that file version")
        parse_key(found.content)
        return BundleFile(name, found.content, found.size, fuuid, fversion, found.content_type,
                          from_dataset=found.dataset_id)
    raise ApiError(400, "file_missing", f"file {fuuid} version {fversion} ({name}) does not exist for "
                   "this caller; PUT /v1/files/{uuid}?version= first")


def _source(request: Request) -> Any:
    root = store_root(request)

    def source(f: BundleFile) -> Path:
        record = file_pool.lookup(root, f.file_uuid, f.file_version)
        if record is None or record.key != f.key:
            raise NotFoundError(f"the content of {f.name} ({f.key}) is on no replica of the dataset "
                                "and not in the file pool; deposit it again")
        return file_pool.verified_object(root, record)

    return source


def _write_bundle(request: Request, uuid: str, who: Identity, files: list[BundleFile], *, version: str,
                  creator_uid: int, base: str | None = None, removed: list[str] | None = None
                  ) -> bundle_commit.Written:
    root = store_root(request)
    try:
        written = bundle_commit.write_version(root, uuid, files, version, source=_source(request),
                                              creator_uid=creator_uid, writer=who.user,
                                              base_version=base, removed=removed or ())
    except DssError as e:
        err = _service_error(e)
        audit_write(request, who, err.status, dataset=uuid, version=version)
        raise err from e
    audit_write(request, who, 201 if written.created else 200, dataset=uuid, version=version,
                files=len(files), new_dataset=written.new_dataset or None)
    return written


def _may_write_bundle(request: Request, who: Identity | None, uuid: str) -> Identity:
    """A writer of the dataset, or, for a uuid that is no dataset yet, one who may create it.
    The creator gets write on it before anything is made, so a retry after an interruption
    (the dataset half made) is theirs to finish."""
    root = store_root(request)
    exists = (bundle_store.bundles_dir(root, uuid)).is_dir() or (
        (root / uuid[:3] / uuid[3:] / "HEAD").is_file())
    if exists:
        return require_write(request, who, uuid)
    creator = require_create(request, who, uuid)
    gate_of(request).grant_creator(creator, uuid)
    return creator


@router.put("/v1/bundles/{uuid}")
def put_bundle(uuid: str, request: Request, body: Json) -> JSONResponse:
    """A bundle version with exactly these files (a new dataset for a new uuid)."""
    _checked_write(request, uuid)
    version = _version_required(request)
    who = _may_write_bundle(request, caller(request), uuid)
    _fields(body, {"creator_uid", "files"})
    files = _files_of(request, who, body.get("files"), "files")
    written = _write_bundle(request, uuid, who, files, version=version, creator_uid=_creator(body))
    return JSONResponse({"version": written.version}, status_code=201 if written.created else 200)


@router.patch("/v1/bundles/{uuid}")
def patch_bundle(uuid: str, request: Request, body: Json) -> JSONResponse:
    """A new version: the named version's files with `add_files` added and `remove_files` removed."""
    _checked_write(request, uuid)
    base = _version_required(request)
    who = require_write(request, caller(request), uuid)
    _fields(body, {"add_files", "remove_files", "creator_uid"})
    add, remove = body.get("add_files") or [], body.get("remove_files") or []
    for what, items in (("add_files", add), ("remove_files", remove)):
        if not isinstance(items, list):
            raise _bad(f"{what} must be a list")
        if len(items) > PATCH_LIMIT:
            raise _bad(f"{what} has {len(items)} items; at most {PATCH_LIMIT} per request")
    root = store_root(request)
    try:
        manifest = bundle_store.load(root, uuid, base)
    except DssError as e:
        raise ApiError(404, "not_found", f"bundle {uuid} has no version {base}") from e
    present = {str(r["path"]) for r in manifest.files}
    removed = []
    for i, item in enumerate(remove):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in present:
            raise _bad(f"remove_files[{i}] names no file of version {base} (give {{uuid, version, name}} "
                       "exactly as GET /v1/bundles lists it)")
        removed.append(name)
    files = _files_of(request, who, add, "add_files")
    versions = bundle_store.versions(root, uuid)
    version = bundles.next_version(times.now(), versions[-1] if versions else None)
    _write_bundle(request, uuid, who, files, version=version, creator_uid=_creator(body), base=base,
                  removed=removed)
    return JSONResponse({"uuid": uuid, "version": version}, status_code=200)


@router.delete("/v1/bundles/{uuid}")
def delete_bundle(uuid: str, request: Request, body: Json) -> JSONResponse:
    """Tombstone one version, or every live version without `version` (admins only)."""
    _checked_write(request, uuid)
    version = params.version(request)
    who = require_admin(request, caller(request), "deleting a bundle", uuid)
    _fields(body, {"reason"})
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise _bad("reason is required: say why the bundle is deleted")
    try:
        written = bundle_delete.delete(store_root(request), uuid, version, reason=reason, who=who.user)
    except DssError as e:
        err = _service_error(e)
        audit_write(request, who, err.status, dataset=uuid, version=version)
        raise err from e
    audit_write(request, who, 200, dataset=uuid, version=version, deleted=[t.version for t in written])
    return JSONResponse({}, status_code=200)

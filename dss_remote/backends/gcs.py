"""Backend on a Google Cloud Storage bucket: uploads the service verifies (md5, crc32c), bounded retries."""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import google.auth
import google.auth.transport.requests
import google_crc32c
import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import credentials as gauth_credentials
from google.auth import exceptions as gauth_exc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY, _should_retry
from google.oauth2 import service_account

from ria_store.errors import (
    AccessError,
    CorruptError,
    DssError,
    NotFoundError,
    UnavailableError,
    from_os_error,
    one_line,
)

from .base import Backend, Leftover, ObjectInfo, Progress, check_range, check_relpath
from .checksums import Digests, b64_to_hex, is_hex
from .cloud_common import (
    FdWriter,
    checksum_refused,
    download_corrupt,
    missing_bucket,
    op_failed,
    service_failed,
    split_bucket_url,
    unreachable,
)

logger = logging.getLogger(__name__)

#: google-cloud-storage uploads larger files resumably, in chunks of CHUNK (a multiple of 256 KiB)
MULTIPART = 8 << 20
CHUNK = 16 << 20
#: object metadata holding the checksums dss computed from the source
META_CRC32C = "dss-crc32c"
META_MD5 = "dss-md5"
_CONTENT_TYPE = "application/octet-stream"
# what a public method catches and maps; anything else is a bug and propagates as is
_SDK_ERRORS = (gexc.GoogleAPIError, gauth_exc.GoogleAuthError, DataCorruption, InvalidResponse,
               requests.exceptions.RequestException, ConnectionError)
# the IAM permission each kind of operation needs, named in access-denied messages
_PERMISSIONS = {"read": "storage.objects.get", "write": "storage.objects.create",
                "delete": "storage.objects.delete", "list": "storage.objects.list"}
#: a service-account key file (JSON) that signs presigned URLs, when the credentials that reach the
#: bucket cannot sign themselves (an emulator, user credentials); never sent anywhere
SIGNING_KEY_ENV = "DSS_GCS_SIGNING_KEY"
_SIGNING_FIX = (f"set GOOGLE_APPLICATION_CREDENTIALS (or {SIGNING_KEY_ENV}) to a service-account key "
                "file, or run on GCE/GKE as a service account that has "
                "roles/iam.serviceAccountTokenCreator on itself (IAM signBlob)")
#: google-cloud-storage's convention: when set (scheme, host and port), an emulator without credentials
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_CREDENTIALS_FIX = ("run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS")
# untyped in their libraries; called through Any so strict mypy accepts the calls
_Crc32c: Any = google_crc32c.Checksum
_Anonymous: Any = AnonymousCredentials
_ServiceAccount: Any = service_account.Credentials


def _emulator_host() -> str | None:
    """The GCS emulator google-cloud-storage uses when no endpoint is given, if any."""
    return os.environ.get(EMULATOR_ENV) or None


def split_gs_url(url: str) -> tuple[str, str]:
    return split_bucket_url(url, "gs")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _object_info(relpath: str, blob: Any) -> ObjectInfo:
    checksums: dict[str, str] = {}
    crc = b64_to_hex(blob.crc32c)
    if crc is not None:
        checksums["crc32c"] = crc
    md5 = b64_to_hex(blob.md5_hash)  # composite objects have none
    if md5 is not None:
        checksums["md5"] = md5
    recorded: dict[str, str] = {}
    meta = blob.metadata or {}
    for name, key, length in (("crc32c", META_CRC32C, 8), ("md5", META_MD5, 32)):
        value = str(meta.get(key, "")).lower()
        if is_hex(value, length):
            recorded[name] = value
    generation = blob.generation
    return ObjectInfo(relpath, int(blob.size or 0), checksums, recorded,
                      revision=None if generation is None else str(generation))


def _declare_checksums(blob: Any, crc: bytes, md5: bytes) -> None:
    """Sent with the upload's metadata: GCS refuses the object if the bytes it got differ."""
    blob.crc32c = _b64(crc)
    blob.md5_hash = _b64(md5)


def _refused(e: BaseException) -> bool:
    """Whether a connection was refused somewhere under `e` (requests wraps urllib3, which wraps
    the OSError, in causes, `args` and `reason`)."""
    seen: set[int] = set()
    todo: list[object] = [e]
    while todo:
        x = todo.pop()
        if not isinstance(x, BaseException) or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ConnectionRefusedError) or getattr(x, "errno", None) == errno.ECONNREFUSED:
            return True
        todo += [x.__cause__, x.__context__, getattr(x, "reason", None), *x.args]
    return False


def _worth_retrying(e: BaseException) -> bool:
    """google-cloud-storage's own rule, except for a refused connection: nothing listens there
    (Google's front ends do not refuse; a dead emulator, proxy or wrong endpoint does), so waiting
    out the retry deadline (90 s) only delays the read from the next replica."""
    return bool(_should_retry(e)) and not _refused(e)


def _unwrap(e: BaseException) -> BaseException:
    """The last error under api_core's "retry deadline exceeded"."""
    if isinstance(e, gexc.RetryError) and isinstance(e.cause, BaseException):
        return e.cause
    return e


def _service_message(e: BaseException) -> str:
    """The service's own words from an error answer, without the request URL and body around them."""
    response = getattr(e, "response", None)
    try:
        text = response.json()["error"]["message"] if response is not None else None
    except (ValueError, KeyError, TypeError, AttributeError):
        text = None
    if not text:
        text = getattr(e, "message", None) or str(e)
    text = one_line(text)
    return text if len(text) <= 300 else text[:297] + "..."


def _is_checksum_refusal(e: BaseException) -> bool:
    """A 400 saying the md5Hash/crc32c we declared does not match what arrived."""
    text = str(e).lower()
    return any(word in text for word in ("md5", "crc32c", "hash", "checksum"))


class _ProgressReader:
    """The source as google-cloud-storage reads it, reporting how far it got: the library reads
    each resumable chunk just before sending it, so this is upload progress to within a chunk."""

    def __init__(self, f: BinaryIO, progress: Progress | None) -> None:
        self._f = f
        self._progress = progress
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        pos = self._f.tell()
        if self._progress is not None and pos > self._reported:  # a retry re-reads: never go back
            self._reported = pos
            self._progress(pos)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


class GcsBackend(Backend):
    """Objects are `prefix/relpath` in one bucket; an upload is published only once complete.

    put_file declares the md5Hash and crc32c of the source (computed in a first pass) with the upload,
    so GCS refuses bytes that differ, and keeps them as metadata `dss-crc32c`/`dss-md5` for fsck. A
    service that does not verify declared hashes (fake-gcs-server) is caught afterwards: the hashes the
    upload's answer reports must equal the source's, or the object is deleted. Credentials come from
    Google's ADC only; with a custom endpoint (an emulator) and no ADC, requests go unauthenticated.
    Without an endpoint in the mirror's config, google-cloud-storage's convention holds: when
    STORAGE_EMULATOR_HOST is set, that emulator is the endpoint and no credentials are sent. An
    endpoint in the config wins over the variable.
    An upload whose writer was killed leaves no object: a resumable upload is a session the
    service keeps for a week and then drops by itself (nothing to list, abort or pay for).
    """

    kind = "gcs"
    keeps_checksums = True
    presigns = True

    def __init__(self, url: str, *, endpoint_url: str | None = None, storage_class: str | None = None,
                 timeout: float = 30) -> None:
        self.bucket_name, self.prefix = split_gs_url(url)
        super().__init__(f"gs://{self.bucket_name}" + (f"/{self.prefix}" if self.prefix else ""))
        self.endpoint_url = endpoint_url
        self.storage_class = storage_class
        self.timeout = timeout
        # every request is bounded by `timeout`; retries of transient failures by a few of them, but
        # not of a refused connection (see _worth_retrying)
        self._retry: Retry = DEFAULT_RETRY.with_timeout(3 * timeout).with_delay(
            initial=min(1.0, timeout / 4), maximum=max(timeout, 1.0)).with_predicate(_worth_retrying)
        self._bucket_obj: Any = None
        self._client_lock = threading.Lock()
        self._bucket_exists = False

    # -- plumbing

    def _bucket(self) -> Any:
        """Created on first use: a backend that is never used costs no credential lookup."""
        with self._client_lock:
            if self._bucket_obj is None:
                credentials, project = self._credentials()
                options = {"api_endpoint": self.endpoint_url} if self.endpoint_url else None
                client = storage.Client(project=project, credentials=credentials, client_options=options)
                self._bucket_obj = client.bucket(self.bucket_name)
            return self._bucket_obj

    def _credentials(self) -> tuple[Any, str | None]:
        if not self.endpoint_url and _emulator_host():
            # storage.Client then talks to the emulator; it takes no credentials, and looking for
            # ADC would fail (or find real ones) on a machine that has none for it
            return _Anonymous(), "dss"
        try:
            credentials, project = google.auth.default()
        except gauth_exc.DefaultCredentialsError as e:
            if self.endpoint_url:
                return _Anonymous(), "dss"  # an emulator, or a public endpoint
            raise AccessError(f"replica {self.url}: no Google credentials: {_CREDENTIALS_FIX}") from e
        return credentials, project

    def _key(self, relpath: str) -> str:
        check_relpath(relpath)
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def _endpoint(self) -> str:
        if self.endpoint_url:
            return self.endpoint_url
        emulator = _emulator_host()
        return f"{EMULATOR_ENV}={emulator}" if emulator else "storage.googleapis.com"

    def _error(self, e: BaseException, op: str, relpath: str | None = None) -> DssError:
        """Our error for an SDK failure during `op` (read, write, delete, list)."""
        e = _unwrap(e)
        where = f"replica {self.url}"
        what = f" {relpath}" if relpath else ""
        if isinstance(e, (gexc.GoogleAPICallError, InvalidResponse)):
            return self._service_error(e, op, what)
        if isinstance(e, (gauth_exc.DefaultCredentialsError, gauth_exc.RefreshError)):
            cause = ("no Google credentials" if isinstance(e, gauth_exc.DefaultCredentialsError)
                     else f"credentials rejected ({one_line(e)})")
            return AccessError(f"{where}: {cause}: {_CREDENTIALS_FIX}")
        if isinstance(e, DataCorruption):
            return download_corrupt(self.url, what, e)
        if isinstance(e, (requests.exceptions.RequestException, ConnectionError, gauth_exc.TransportError)):
            return unreachable(self.url, self._endpoint(), e)
        if isinstance(e, OSError):
            return from_os_error(e, f"{where}:{what}", writing=op in ("write", "delete"))
        return op_failed(self.url, op, what, f"{type(e).__name__}: {one_line(e)}")

    def _service_error(self, e: BaseException, op: str, what: str) -> DssError:
        """Our error for an answer of the GCS service (an HTTP error status)."""
        where = f"replica {self.url}"
        code = getattr(e, "code", None)
        if code is None:  # the media library's InvalidResponse carries the requests response
            code = getattr(getattr(e, "response", None), "status_code", 0)
        msg = _service_message(e)
        error: DssError
        if code == 404 and op == "read":
            error = NotFoundError(f"{where}:{what} not found")
        elif code == 401:
            error = AccessError(f"{where}: credentials rejected ({msg}): {_CREDENTIALS_FIX}")
        elif code == 403:
            need = _PERMISSIONS.get(op, "storage.objects.*")
            error = AccessError(f"{where}: access denied on {op}{what} (check the IAM role of the account "
                                f"on bucket {self.bucket_name}: it needs {need})")
        elif code == 400 and op == "write" and _is_checksum_refusal(e):
            error = checksum_refused(self.url, what, f"{msg}")
        elif isinstance(code, int) and (code >= 500 or code == 429):
            error = service_failed(self.url, op, what, f"{code}: {msg}")
        else:
            error = op_failed(self.url, op, what, f"{code}: {msg}")
        return error

    def _missing_bucket(self) -> UnavailableError:
        self._bucket_exists = False
        return missing_bucket(self.url, self.bucket_name)

    def _check_bucket(self) -> None:
        """After a 404: the API answers the same for a missing bucket and a missing object."""
        if self._bucket_exists:
            return
        try:
            exists = self._bucket().exists(timeout=self.timeout, retry=self._retry)
        except gexc.Forbidden:
            return  # may not look at the bucket itself; the object's 404 stands
        except _SDK_ERRORS as e:
            raise self._error(e, "read") from e
        if not exists:
            raise self._missing_bucket()
        self._bucket_exists = True

    def _discard_corrupt(self, blob: Any, relpath: str, detail: str) -> CorruptError:
        """Delete an object the service stored with other bytes than the source's."""
        try:
            blob.delete(timeout=self.timeout, retry=self._retry)
        except gexc.NotFound:
            pass  # the library deletes a corrupt resumable upload itself
        except _SDK_ERRORS as e:
            logger.warning("replica %s: could not delete corrupt upload %s: %s", self.url, relpath, e)
        return CorruptError(f"replica {self.url}: {relpath} was stored with other bytes than the source "
                            f"({detail}: the source changed during the upload, or the network or service "
                            "corrupted it); the object was removed, retry the upload")

    def _upload(self, relpath: str, upload: Any, *, crc: bytes, md5: bytes, size: int,
                bulk: bool) -> None:
        """Declare the source's checksums, call `upload(blob)`, and check what the service stored."""
        blob = self._bucket().blob(self._key(relpath), chunk_size=CHUNK if size > MULTIPART else None)
        _declare_checksums(blob, crc, md5)
        blob.metadata = {META_CRC32C: crc.hex(), META_MD5: md5.hex()}
        # only bulk data gets the mirror's storage class: small config files are read often
        if bulk and self.storage_class:
            blob.storage_class = self.storage_class
        try:
            upload(blob)
        except DataCorruption as e:
            raise self._discard_corrupt(blob, relpath, one_line(e)) from e
        except gexc.NotFound as e:
            self._check_bucket()
            raise self._error(e, "write", relpath) from e
        except _SDK_ERRORS as e:
            raise self._error(e, "write", relpath) from e
        # the upload's response set these from the service's own view of the stored bytes
        stored = (b64_to_hex(blob.crc32c), b64_to_hex(blob.md5_hash))
        if stored[0] not in (None, crc.hex()) or stored[1] not in (None, md5.hex()):
            raise self._discard_corrupt(blob, relpath, f"crc32c {stored[0]}, md5 {stored[1]}; the source "
                                        f"has crc32c {crc.hex()}, md5 {md5.hex()}")
        self._bucket_exists = True

    # -- the Backend contract

    def info(self, relpath: str) -> ObjectInfo | None:
        key = self._key(relpath)
        try:
            blob = self._bucket().blob(key)
            blob.reload(timeout=self.timeout, retry=self._retry)
        except gexc.NotFound:
            self._check_bucket()
            return None
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e
        self._bucket_exists = True
        return _object_info(relpath, blob)

    def declared_checksums(self, relpath: str, prefix: str = "hca-dss-") -> dict[str, str]:
        """What the uploader declared about an object, not verified: its custom metadata named
        `prefix` + NAME, as {NAME: value}; a missing object is NotFoundError."""
        key = self._key(relpath)
        try:
            blob = self._bucket().blob(key)
            blob.reload(timeout=self.timeout, retry=self._retry)
        except gexc.NotFound as e:
            self._check_bucket()
            raise NotFoundError(f"replica {self.url}: {relpath} not found") from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e
        return {str(k)[len(prefix):]: str(v) for k, v in (blob.metadata or {}).items()
                if str(k).startswith(prefix)}

    def presign_get(self, relpath: str, seconds: int) -> str:
        """A V4 signed GET URL of the object. Signing needs a private key: a service-account key
        (DSS_GCS_SIGNING_KEY, else ADC's own), or on GCE/GKE the VM's service account through
        IAM signBlob (one request to the IAM API per URL). With an endpoint in the mirror's
        config (an emulator, a private endpoint) the URL points there."""
        key = self._key(relpath)
        kwargs: dict[str, Any] = {"version": "v4", "expiration": timedelta(seconds=seconds),
                                  "method": "GET"}
        if self.endpoint_url:
            kwargs["api_access_endpoint"] = self.endpoint_url.rstrip("/")
        try:
            kwargs |= self._signer()
            return str(self._bucket().blob(key).generate_signed_url(**kwargs))
        except DssError:
            raise
        except (*_SDK_ERRORS, AttributeError, ValueError, OSError) as e:
            # AttributeError/ValueError: google-cloud-storage's "credentials cannot sign"
            raise AccessError(f"replica {self.url}: cannot sign a URL for {relpath} "
                              f"({type(e).__name__}: {one_line(e)}); {_SIGNING_FIX}") from e

    def _signer(self) -> dict[str, Any]:
        """What generate_signed_url signs with, beyond the client's own credentials."""
        key_file = os.environ.get(SIGNING_KEY_ENV)
        if key_file:
            return {"credentials": _ServiceAccount.from_service_account_file(key_file)}
        if self.endpoint_url is None and _emulator_host():
            raise AccessError(f"replica {self.url}: cannot sign URLs for the emulator at "
                              f"{_emulator_host()} without {SIGNING_KEY_ENV} (a throwaway "
                              "service-account key file)")
        credentials = self._bucket().client._credentials  # what _credentials() found
        if isinstance(credentials, gauth_credentials.Signing):
            return {}
        if getattr(credentials, "service_account_email", None) is not None:  # GCE/GKE metadata
            if not credentials.valid:  # also learns the real address behind "default"
                credentials.refresh(google.auth.transport.requests.Request())
            return {"service_account_email": credentials.service_account_email,
                    "access_token": credentials.token}
        raise AccessError(f"replica {self.url}: the credentials that reach it "
                          f"({type(credentials).__name__}) cannot sign URLs: {_SIGNING_FIX}")

    def get_file(self, relpath: str, dst_fd: int, progress: Progress | None = None) -> int:
        key = self._key(relpath)
        writer = FdWriter(dst_fd, progress)
        try:
            # raw: the stored bytes, never decompressed; the library checks them against crc32c
            self._bucket().blob(key).download_to_file(writer, raw_download=True, checksum="crc32c",
                                                      timeout=self.timeout, retry=self._retry)
        except gexc.NotFound as e:
            self._check_bucket()
            raise NotFoundError(f"replica {self.url}: {relpath} not found") from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e
        except OSError as e:
            raise from_os_error(e, f"writing {relpath} from replica {self.url}", writing=True) from e
        return writer.count

    def read_range(self, relpath: str, start: int, length: int) -> bytes:
        key = self._key(relpath)
        check_range(start, length)
        if length == 0:
            if self.info(relpath) is None:
                raise NotFoundError(f"replica {self.url}: {relpath} not found")
            return b""
        try:
            # no checksum: the service's crc32c is of the whole object, not of a range
            data = self._bucket().blob(key).download_as_bytes(
                start=start, end=start + length - 1, raw_download=True, checksum=None,
                timeout=self.timeout, retry=self._retry)
        except gexc.RequestRangeNotSatisfiable:
            return b""  # starts at or past the end (or the object is empty): pread gives b""
        except gexc.NotFound as e:
            self._check_bucket()
            raise NotFoundError(f"replica {self.url}: {relpath} not found") from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e
        if len(data) > length:
            raise UnavailableError(f"replica {self.url}: the service ignored the byte range asked for "
                                   f"{relpath}; use a GCS endpoint that supports Range requests")
        return bytes(data)

    def put_file(self, src: Path, relpath: str, progress: Progress | None = None) -> None:
        self._key(relpath)
        try:
            f = open(src, "rb")  # closed below, after the upload
        except OSError as e:
            raise from_os_error(e, f"local file {src}") from e
        with f:
            try:
                digests = Digests(["crc32c", "md5"]).read_from(f)
                sums = digests.hexdigests()
                size, crc, md5 = digests.size, bytes.fromhex(sums["crc32c"]), bytes.fromhex(sums["md5"])
                f.seek(0)
            except OSError as e:
                raise from_os_error(e, f"local file {src}") from e
            # small files go up in one request: progress from reading them would run ahead of it
            reader = _ProgressReader(f, progress if size > MULTIPART else None)

            def upload(blob: Any) -> None:
                # checksum="crc32c": the library also sends its own crc32c of what it read and
                # compares the service's answer with it (DataCorruption on a mismatch)
                blob.upload_from_file(reader, size=size, content_type=_CONTENT_TYPE, checksum="crc32c",
                                      timeout=self.timeout, retry=self._retry)

            try:
                self._upload(relpath, upload, crc=crc, md5=md5, size=size, bulk=True)
            except DssError:
                raise
            except OSError as e:
                raise from_os_error(e, f"local file {src}") from e
        if progress is not None:
            progress(size)

    def remove(self, relpath: str) -> None:
        key = self._key(relpath)
        try:
            self._bucket().blob(key).delete(timeout=self.timeout, retry=self._retry)
        except gexc.NotFound:
            self._check_bucket()
        except _SDK_ERRORS as e:
            raise self._error(e, "delete", relpath) from e

    def read_bytes(self, relpath: str) -> bytes:
        key = self._key(relpath)
        try:
            data = self._bucket().blob(key).download_as_bytes(raw_download=True, checksum="crc32c",
                                                              timeout=self.timeout, retry=self._retry)
        except gexc.NotFound as e:
            self._check_bucket()
            raise NotFoundError(f"replica {self.url}: {relpath} not found") from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e
        return bytes(data)

    def write_bytes(self, relpath: str, data: bytes) -> None:
        self._key(relpath)
        crc = bytes(_Crc32c(data).digest())
        md5 = hashlib.md5(data, usedforsecurity=False).digest()

        def upload(blob: Any) -> None:
            blob.upload_from_string(data, content_type=_CONTENT_TYPE, checksum="crc32c",
                                    timeout=self.timeout, retry=self._retry)

        self._upload(relpath, upload, crc=crc, md5=md5, size=len(data), bulk=False)

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        start = self._key(prefix).rstrip("/") + "/"
        skip = len(self.prefix) + 1 if self.prefix else 0
        try:
            bucket = self._bucket()
            # the listing carries size, hashes and metadata: no request per object
            for blob in bucket.client.list_blobs(bucket, prefix=start, timeout=self.timeout,
                                                 retry=self._retry):
                if blob.name.endswith("/"):
                    continue  # a "folder" placeholder some tools create, not an object
                yield _object_info(blob.name[skip:], blob)
        except gexc.NotFound as e:
            raise self._missing_bucket() from e  # a listing 404s only for the bucket
        except _SDK_ERRORS as e:
            raise self._error(e, "list", prefix) from e

    def iter_leftovers(self, prefix: str) -> Iterator[Leftover]:
        self._key(prefix)
        return iter(())  # unfinished resumable uploads are sessions, not objects: they expire by themselves

    def remove_leftover(self, leftover: Leftover) -> None:
        self._key(leftover.relpath)
        raise ValueError(f"{self.url} leaves no {leftover.kind}: {leftover.relpath} is not one of its "
                         "leftovers")

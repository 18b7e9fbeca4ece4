"""Backend on an S3 bucket (AWS or compatible): atomic PUTs, CRC32 checked end to end, bounded retries."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore import exceptions as bce
from botocore.config import Config
from s3transfer.exceptions import RetriesExceededError as TransferRetriesExceededError
from s3transfer.subscribers import BaseSubscriber
from s3transfer.utils import ChunksizeAdjuster

from ria_store.errors import (
    AccessError,
    CorruptError,
    DssError,
    NotFoundError,
    UnavailableError,
    from_os_error,
    one_line,
)

from .base import UPLOAD, Backend, Leftover, ObjectInfo, Progress, check_range, check_relpath
from .checksums import Digests, b64_to_hex, hex_to_b64, is_hex
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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

#: files from this size on go up in parts of this size (s3transfer's multipart upload)
MULTIPART = 8 << 20
#: object metadata holding the CRC32 of the whole source, computed by dss (x-amz-meta-dss-crc32)
META_CRC32 = "dss-crc32"
#: object metadata holding S3's COMPOSITE CRC32 of a multipart upload as dss computed it from the
#: source, `<hex>-<parts>`: what the service must report (x-amz-meta-dss-crc32-composite)
META_CRC32_COMPOSITE = "dss-crc32-composite"

#: boto3's own endpoint variables, most specific first; it reads them when no endpoint_url is given
ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# "classic": the CRT transfer client (when awscrt is installed) handles checksums its own way
TRANSFER = TransferConfig(multipart_threshold=MULTIPART, multipart_chunksize=MULTIPART, use_threads=True,
                          preferred_transfer_client="classic")
# Error codes meaning "these credentials are no good", as opposed to "this account may not do that".
_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                               "TokenRefreshRequired", "ExpiredTokenException", "InvalidClientTokenId"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"})
_CHECKSUM_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",
                             "XAmzContentChecksumMismatch"})
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_CREDENTIALS = (bce.NoCredentialsError, bce.PartialCredentialsError, bce.CredentialRetrievalError,
                   bce.NoAuthTokenError, bce.TokenRetrievalError, bce.SSOError, bce.ProfileNotFound)
# what a public method catches and maps; anything else is a bug and propagates as is
_SDK_ERRORS = (bce.ClientError, bce.BotoCoreError, Boto3Error, TransferRetriesExceededError)
# the IAM action each kind of operation needs, named in access-denied messages
_ACTIONS = {"read": "s3:GetObject", "write": "s3:PutObject", "delete": "s3:DeleteObject",
            "list": "s3:ListBucket", "list uploads": "s3:ListBucketMultipartUploads",
            "abort": "s3:AbortMultipartUpload"}


def split_s3_url(url: str) -> tuple[str, str]:
    return split_bucket_url(url, "s3")


def _etag_md5(head: Mapping[str, Any]) -> str | None:
    """The MD5 of the content if the ETag is one: not for multipart uploads, SSE-KMS or SSE-C."""
    etag = str(head.get("ETag", "")).strip('"').lower()
    if (not is_hex(etag, 32) or str(head.get("ServerSideEncryption", "")).startswith("aws:kms")
            or head.get("SSECustomerAlgorithm")):
        return None
    return etag


def part_size(config: TransferConfig, size: int) -> int:
    """The part size s3transfer uploads `size` bytes in with `config` (its own adjustment of
    multipart_chunksize to S3's limits: at most 10,000 parts, at least 5 MiB each)."""
    return ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size)


def _service_crc32(head: Mapping[str, Any]) -> tuple[str, str] | None:
    """The service's CRC32 from a HeadObject with ChecksumMode=ENABLED, named as ObjectInfo
    keeps it: ("crc32", hex) for the whole object (single PUT, or a FULL_OBJECT multipart upload),
    ("crc32-composite", "<hex>-<parts>") for a COMPOSITE one (the CRC32 of the part CRC32s).
    AWS reports a composite value as `<base64>-<parts>` with ChecksumType COMPOSITE; moto 5.2
    sends neither the suffix nor the type, so a multipart ETag (`"<md5>-<parts>"`) without a
    type means composite too. None when there is none, or the form is not one of these."""
    value = str(head.get("ChecksumCRC32") or "")
    if not value:
        return None
    b64, _, suffix = value.partition("-")
    digest = b64_to_hex(b64)
    if digest is None or len(digest) != 8:
        return None
    etag = str(head.get("ETag", "")).strip('"')
    etag_parts = etag.rpartition("-")[2] if "-" in etag else ""
    ctype = head.get("ChecksumType")
    if ctype == "FULL_OBJECT" or (ctype is None and not suffix and not etag_parts):
        return None if suffix else ("crc32", digest)
    parts = suffix or etag_parts
    if not parts.isdigit():
        return None
    return "crc32-composite", f"{digest}-{int(parts)}"


def _recorded(meta: Mapping[str, Any]) -> dict[str, str]:
    """What dss recorded at upload (metadata), named as ObjectInfo keeps it."""
    recorded: dict[str, str] = {}
    value = str(meta.get(META_CRC32, "")).lower()
    if is_hex(value, 8):
        recorded["crc32"] = value
    digest, _, parts = str(meta.get(META_CRC32_COMPOSITE, "")).lower().partition("-")
    if is_hex(digest, 8) and parts.isdigit():
        recorded["crc32-composite"] = f"{digest}-{int(parts)}"
    return recorded


def _object_info(relpath: str, head: Mapping[str, Any]) -> ObjectInfo:
    checksums: dict[str, str] = {}
    crc = _service_crc32(head)
    if crc is not None:
        checksums[crc[0]] = crc[1]
    md5 = _etag_md5(head)
    if md5 is not None:
        checksums["md5"] = md5
    etag = str(head.get("ETag", "")).strip('"') or None
    return ObjectInfo(relpath, int(head.get("ContentLength", head.get("Size", 0))), checksums,
                      _recorded(head.get("Metadata") or {}), revision=etag)


def _unwrap(e: BaseException) -> BaseException:
    """The SDK error under s3transfer's "retries exceeded" (a download stream that kept failing)."""
    if isinstance(e, TransferRetriesExceededError) and isinstance(e.last_exception, BaseException):
        return e.last_exception
    return e


class _CumulativeProgress(BaseSubscriber):
    """s3transfer reports increments from several threads; our callers want the running total."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self._progress = progress
        self._total = 0
        self._lock = threading.Lock()

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        with self._lock:
            # negative on a retried part: the total goes back, then up again
            self._total = max(0, self._total + bytes_transferred)
            self._progress(self._total)


class S3Backend(Backend):
    """Objects are `prefix/relpath` in one bucket; each upload is one atomic PUT or multipart upload.

    put_file computes, in one pass over the source, its CRC32 and (for a multipart upload) the CRC32
    of each part, in the part size s3transfer will use. A single PUT sends the CRC32, which S3
    verifies before it publishes the object; a multipart upload asks for S3's default COMPOSITE
    CRC32 (each part's CRC32 is verified as it arrives, the object's is the CRC32 of the part
    CRC32s). Both are kept as metadata (`dss-crc32`, `dss-crc32-composite`) for fsck. What the
    service stored is then checked: the ETag (single PUT) or the size and the composite CRC32
    (multipart) must match the source, or the object is deleted (moto and some S3-compatible
    stores verify nothing, and a source that changed after the first pass passes S3's own checks).
    Credentials come from boto3's chain only (env, AWS_PROFILE, instance roles), never from dss config.
    So does the endpoint when the mirror's config names none: boto3 reads AWS_ENDPOINT_URL_S3,
    AWS_ENDPOINT_URL or a profile's endpoint_url itself. An endpoint in the config wins over those.
    Listings carry no encryption details, so iter_objects reports an ETag as md5 even on an SSE-KMS
    bucket, where it is not one; info() knows better and is what fsck relies on.
    A multipart upload whose writer was killed stays (and is billed) until aborted: iter_leftovers
    lists them with their start time (moto reports 2010-11-10 for every one), remove_leftover aborts.
    """

    kind = "s3"
    keeps_checksums = True
    presigns = True

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 storage_class: str | None = None, connect_timeout: float = 5,
                 read_timeout: float = 30, transfer: TransferConfig | None = None) -> None:
        self.bucket, self.prefix = split_s3_url(url)
        super().__init__(f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else ""))
        self.endpoint_url = endpoint_url
        self.region = region
        self.storage_class = storage_class
        self._transfer = transfer or TRANSFER  # part sizes, threshold, concurrency (TRANSFER: the default)
        self._config = Config(
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            # custom endpoints (MinIO, Ceph, moto) rarely have per-bucket DNS names
            s3={"addressing_style": "path"} if endpoint_url else None)
        self._client_obj: S3Client | None = None
        self._presigner_obj: S3Client | None = None
        self._client_lock = threading.Lock()
        self._bucket_exists = False

    # -- plumbing

    def _client(self) -> S3Client:
        """Created on first use: a backend that is never used costs no credential lookup."""
        with self._client_lock:
            if self._client_obj is None:
                # a session per backend: boto3's default session is not safe to share across threads
                session = boto3.session.Session()
                self._client_obj = session.client("s3", endpoint_url=self.endpoint_url,
                                                  region_name=self.region, config=self._config)
            return self._client_obj

    def _presigner(self) -> S3Client:
        """A client that presigns with SigV4: boto3 still presigns S3 URLs with SigV2 by
        default, which regions opened since 2014 refuse and AWS is retiring."""
        with self._client_lock:
            if self._presigner_obj is None:
                session = boto3.session.Session()
                self._presigner_obj = session.client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                    config=self._config.merge(Config(signature_version="s3v4")))
            return self._presigner_obj

    def _key(self, relpath: str) -> str:
        check_relpath(relpath)
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def _endpoint(self) -> str:
        if self.endpoint_url:
            return self.endpoint_url
        if self._client_obj is None:
            return f"the S3 endpoint of region {self.region or 'us-east-1'}"
        used = str(self._client_obj.meta.endpoint_url)
        for name in ENDPOINT_ENVS:  # name the variable boto3 took it from: that is what to fix
            if os.environ.get(name, "").rstrip("/") == used.rstrip("/"):
                return f"{name}={used}"
        return used

    def _error(self, e: BaseException, op: str, relpath: str | None = None) -> DssError:
        """Our error for an SDK failure during `op` (read, write, delete, list)."""
        e = _unwrap(e)
        where = f"replica {self.url}"
        what = f" {relpath}" if relpath else ""
        if isinstance(e, bce.ClientError):
            return self._service_error(e, op, what)
        if isinstance(e, _NO_CREDENTIALS):
            return AccessError(f"{where}: no usable AWS credentials ({one_line(e)}); check AWS_PROFILE or "
                               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        if isinstance(e, (bce.FlexibleChecksumError, bce.ChecksumError)):
            return download_corrupt(self.url, what, e)
        if isinstance(e, (bce.ConnectionError, bce.HTTPClientError)):
            return unreachable(self.url, self._endpoint(), e)
        if isinstance(e, OSError):
            return from_os_error(e, f"{where}:{what}", writing=op in ("write", "delete", "abort"))
        return op_failed(self.url, op, what, f"{type(e).__name__}: {one_line(e)}")

    def _service_error(self, e: bce.ClientError, op: str, what: str) -> DssError:
        """Our error for an answer of the S3 service (an HTTP error status)."""
        where = f"replica {self.url}"
        err = e.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        msg = one_line(err.get("Message", "") or code)
        error: DssError
        if code == "NoSuchBucket":
            error = self._missing_bucket()
        elif code in _MISSING_CODES:
            error = NotFoundError(f"{where}:{what} not found")
        elif code in _CREDENTIAL_CODES:
            error = AccessError(f"{where}: credentials rejected ({code}: {msg}); check AWS_PROFILE or "
                                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        elif code in _DENIED_CODES or status == 403:
            hint = (" (a HEAD answers a bare 403 for unknown keys too: check AWS_PROFILE or "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY as well)" if code == "403" else "")
            error = AccessError(f"{where}: access denied on {op}{what} (check the IAM or bucket policy "
                                f"for {_ACTIONS.get(op, 's3:*')}){hint}")
        elif code in _CHECKSUM_CODES or (code == "InvalidRequest" and "checksum" in msg.lower()):
            error = checksum_refused(self.url, what, f"{code}: {msg}")
        elif status >= 500 or code in ("SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError"):
            error = service_failed(self.url, op, what, f"{code}: {msg}")
        else:
            error = op_failed(self.url, op, what, f"{code}: {msg}")
        return error

    def _missing_bucket(self) -> UnavailableError:
        self._bucket_exists = False
        return missing_bucket(self.url, self.bucket)

    def _check_bucket(self) -> None:
        """After a bare 404 (HEAD has no error body): raise if the bucket, not the object, is missing."""
        if self._bucket_exists:
            return
        try:
            self._client().head_bucket(Bucket=self.bucket)
        except bce.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise self._missing_bucket() from e
            if code in ("403", "AccessDenied"):
                return  # may not look at the bucket itself; the object's 404 stands
            raise self._error(e, "read") from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read") from e
        self._bucket_exists = True

    def _discard_corrupt(self, key: str, relpath: str, got: str, want: str) -> CorruptError:
        """Delete an object the service stored with other bytes than the source's."""
        try:
            self._client().delete_object(Bucket=self.bucket, Key=key)
        except _SDK_ERRORS as e:
            logger.warning("replica %s: could not delete corrupt upload %s: %s", self.url, relpath, e)
        return CorruptError(f"replica {self.url}: {relpath} was stored with checksum {got} but the source "
                            f"has {want} (the source changed during the upload, or the network or service "
                            "corrupted it); the object was removed, retry the upload")

    def _extra_args(self, sums: Mapping[str, str], bulk: bool) -> dict[str, Any]:
        # ChecksumAlgorithm even where botocore would add it by default: a user's
        # AWS_REQUEST_CHECKSUM_CALCULATION=when_required turns that default off
        extra: dict[str, Any] = {"ChecksumAlgorithm": "CRC32", "Metadata": {META_CRC32: sums["crc32"]}}
        if "crc32-composite" in sums:
            extra["Metadata"][META_CRC32_COMPOSITE] = sums["crc32-composite"]
        # only bulk data gets the mirror's storage class: small config files are read often, and an
        # archive class would make them slow or unreadable
        if bulk and self.storage_class:
            extra["StorageClass"] = self.storage_class
        return extra

    def _put_small(self, key: str, relpath: str, body: BinaryIO | bytes, *, sums: Mapping[str, str],
                   bulk: bool) -> None:
        """One PUT with the source's CRC32, which S3 verifies; the ETag the service returns is its
        MD5 of what it stored."""
        resp = self._client().put_object(Bucket=self.bucket, Key=key, Body=body,
                                         ChecksumCRC32=hex_to_b64(sums["crc32"]),
                                         **self._extra_args(sums, bulk))
        md5 = sums["md5"]
        etag = _etag_md5(resp)
        if etag is not None and etag != md5:
            raise self._discard_corrupt(key, relpath, f"md5 {etag}", f"md5 {md5}")

    # -- the Backend contract

    def info(self, relpath: str) -> ObjectInfo | None:
        key = self._key(relpath)
        try:
            head = self._client().head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except bce.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
                self._check_bucket()
                return None
            raise self._error(e, "read", relpath) from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e
        self._bucket_exists = True
        return _object_info(relpath, head)

    def declared_checksums(self, relpath: str, prefix: str = "hca-dss-") -> dict[str, str]:
        """What the uploader declared about an object, not verified: its tags and user metadata
        named `prefix` + NAME, as {NAME: value} (tags win). The `hca upload` flow tags a staged
        object with `hca-dss-sha256` and the rest; a missing object is NotFoundError."""
        key = self._key(relpath)
        try:
            head = self._client().head_object(Bucket=self.bucket, Key=key)
            tags = self._client().get_object_tagging(Bucket=self.bucket, Key=key).get("TagSet", [])
        except bce.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
                self._check_bucket()
                raise NotFoundError(f"replica {self.url}: {relpath} not found") from e
            raise self._error(e, "read", relpath) from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e
        out = {str(k)[len(prefix):]: str(v) for k, v in (head.get("Metadata") or {}).items()
               if str(k).startswith(prefix)}
        out.update({str(t["Key"])[len(prefix):]: str(t["Value"]) for t in tags
                    if str(t.get("Key", "")).startswith(prefix)})
        return out

    def presign_get(self, relpath: str, seconds: int) -> str:
        """A presigned GET of the object (SigV4, signed locally with this backend's credentials:
        no request is made; the URL works only as long as they do, so temporary role credentials
        cap its life at theirs)."""
        key = self._key(relpath)
        try:
            return str(self._presigner().generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds))
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e

    def get_file(self, relpath: str, dst_fd: int, progress: Progress | None = None) -> int:
        key = self._key(relpath)
        writer = FdWriter(dst_fd, progress)
        try:
            with create_transfer_manager(self._client(), self._transfer) as manager:
                manager.download(self.bucket, key, cast("IO[bytes]", writer),
                                 extra_args={"ChecksumMode": "ENABLED"}).result()
        except bce.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
                self._check_bucket()
                raise NotFoundError(f"replica {self.url}: {relpath} not found") from e
            raise self._error(e, "read", relpath) from e
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
            resp = self._client().get_object(Bucket=self.bucket, Key=key,
                                             Range=f"bytes={start}-{start + length - 1}")
            body = resp["Body"]
            if not resp.get("ContentRange") and int(resp.get("ContentLength", 0)) > length:
                body.close()  # the whole object came back: never read a large file for a range
                raise UnavailableError(f"replica {self.url}: the service ignored the byte range asked "
                                       f"for {relpath}; use an S3 service that supports Range requests")
            return bytes(body.read())
        except bce.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("InvalidRange", "416"):
                return b""  # starts at or past the end (or the object is empty): pread gives b""
            if code in _MISSING_CODES:
                self._check_bucket()
                raise NotFoundError(f"replica {self.url}: {relpath} not found") from e
            raise self._error(e, "read", relpath) from e
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e

    def put_file(self, src: Path, relpath: str, progress: Progress | None = None) -> None:
        key = self._key(relpath)
        try:
            f = open(src, "rb")  # closed below, after the upload
        except OSError as e:
            raise from_os_error(e, f"local file {src}") from e
        with f:
            try:
                size = os.fstat(f.fileno()).st_size
                small = size < self._transfer.multipart_threshold
                # one pass: the part CRC32s need the part size s3transfer will pick for this size
                digests = (Digests(["crc32", "md5"]) if small
                           else Digests(["crc32"], part_size=part_size(self._transfer, size)))
                digests.read_from(f)
                sums = digests.hexdigests()
                f.seek(0)
            except OSError as e:
                raise from_os_error(e, f"local file {src}") from e
            try:
                if small:
                    self._put_small(key, relpath, f, sums=sums, bulk=True)
                    if progress is not None:
                        progress(digests.size)
                else:
                    self._put_multipart(src, key, relpath, size=digests.size, sums=sums,
                                        progress=progress)
            except DssError:
                raise
            except _SDK_ERRORS as e:
                raise self._error(e, "write", relpath) from e
            except OSError as e:
                raise from_os_error(e, f"local file {src}") from e
        self._bucket_exists = True

    def _put_multipart(self, src: Path, key: str, relpath: str, *, size: int, sums: Mapping[str, str],
                       progress: Progress | None) -> None:
        """s3transfer's upload with S3's default COMPOSITE CRC32 (no whole-object value given:
        that would make it FULL_OBJECT, which the service must compute over every byte again at
        CompleteMultipartUpload). A failed upload is aborted by s3transfer. Afterwards the size
        and the service's CRC32 (composite, or whole-object where a service makes it so) must be
        the source's."""
        # no subscriber without progress: s3transfer then skips its per-read progress callbacks
        subscribers = [_CumulativeProgress(progress)] if progress is not None else []
        with create_transfer_manager(self._client(), self._transfer) as manager:
            manager.upload(str(src), self.bucket, key, extra_args=self._extra_args(sums, bulk=True),
                           subscribers=subscribers).result()
        head = self._client().head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        if head.get("ContentLength") != size:
            raise self._discard_corrupt(key, relpath, f"size {head.get('ContentLength')}", f"size {size}")
        stored = _service_crc32(head)
        if stored is not None and stored[1] != sums.get(stored[0]):
            raise self._discard_corrupt(key, relpath, f"{stored[0]} {stored[1]}",
                                        f"{stored[0]} {sums.get(stored[0], 'unknown')}")

    def remove(self, relpath: str) -> None:
        key = self._key(relpath)
        try:
            self._client().delete_object(Bucket=self.bucket, Key=key)  # 204 whether or not it existed
        except _SDK_ERRORS as e:
            raise self._error(e, "delete", relpath) from e

    def read_bytes(self, relpath: str) -> bytes:
        key = self._key(relpath)
        try:
            resp = self._client().get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            return resp["Body"].read()
        except _SDK_ERRORS as e:
            raise self._error(e, "read", relpath) from e

    def write_bytes(self, relpath: str, data: bytes) -> None:
        key = self._key(relpath)
        try:
            sums = {"crc32": f"{zlib.crc32(data):08x}",
                    "md5": hashlib.md5(data, usedforsecurity=False).hexdigest()}
            self._put_small(key, relpath, data, sums=sums, bulk=False)
        except _SDK_ERRORS as e:
            raise self._error(e, "write", relpath) from e

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        start = self._key(prefix).rstrip("/") + "/"
        skip = len(self.prefix) + 1 if self.prefix else 0
        try:
            pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                              Prefix=start)
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a "folder" marker some consoles create, not an object
                    md5 = _etag_md5(obj)  # listings omit encryption: see the class docstring
                    yield ObjectInfo(key[skip:], obj["Size"], {"md5": md5} if md5 else {})
        except _SDK_ERRORS as e:
            raise self._error(e, "list", prefix) from e

    def iter_leftovers(self, prefix: str) -> Iterator[Leftover]:
        return self._uploads(self._key(prefix).rstrip("/") + "/", prefix)

    def _uploads(self, start: str, prefix: str) -> Iterator[Leftover]:
        skip = len(self.prefix) + 1 if self.prefix else 0
        try:
            pages = self._client().get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                    Prefix=start)
            for page in pages:
                for upload in page.get("Uploads", []):
                    yield Leftover(UPLOAD, upload["Key"][skip:], upload["Initiated"], upload["UploadId"])
        except _SDK_ERRORS as e:
            raise self._error(e, "list uploads", prefix) from e

    def remove_leftover(self, leftover: Leftover) -> None:
        key = self._key(leftover.relpath)
        if leftover.kind != UPLOAD or not leftover.token:
            raise ValueError(f"{self.url} leaves no {leftover.kind}: {leftover.relpath} is not one of "
                             "its leftovers")
        try:
            self._client().abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=leftover.token)
        except bce.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) == "NoSuchUpload":
                return  # completed or aborted meanwhile
            raise self._error(e, "abort", leftover.relpath) from e
        except _SDK_ERRORS as e:
            raise self._error(e, "abort", leftover.relpath) from e

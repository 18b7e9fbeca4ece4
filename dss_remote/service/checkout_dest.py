"""Where a checkout writes: an S3 or GCS bucket (`s3://BUCKET[/PREFIX]`, `gs://BUCKET[/PREFIX]`) or a
directory of the server's file system under one of the store's `server.checkout_dirs`.

A bundle version lands at `<destination>/bundles/<uuid>.<version>/<name>`. Every object a checkout
writes carries what it holds: in a bucket as user metadata (`hca-dss-sha256` and the other DSS
checksums that are known, as the HCA DSS's own copies do, and `dss-source`: the annex key or git blob
id), so a later checkout of the same version finds it there (same size, same source) and copies
nothing. In S3 one paged listing of the version's prefix says which names are there and their sizes,
and only an object of the right size is asked for its metadata (HEAD), so a first checkout makes no
request per file but its upload. A directory has no metadata: there a file of the right size is
re-hashed (the key's own checksum, or git's blob id) and kept when it matches.

Buckets are reached with the server's own credentials and endpoint (boto3's chain, with
AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL; Google's ADC, or STORAGE_EMULATOR_HOST). A replica in the same
service as the destination (an S3 mirror on the same endpoint, any GCS mirror) is copied from
server-side: boto3's managed copy, GCS's rewrite. Uploads go through boto3's managed transfer
(multipart, retries, CRC32 the service checks) and google-cloud-storage's uploads (resumable past
8 MiB, crc32c checked). A directory is written under the allowed directory without following any
symlink below it (each level is opened O_NOFOLLOW), a temp file at a time, renamed into place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ria_store.atomic import TMP_PREFIX
from ria_store.errors import AccessError, DssError, NotFoundError, UnavailableError, WriteError, one_line

from ..backends.base import Backend, Progress, check_relpath

logger = logging.getLogger(__name__)

#: object metadata naming what an object of a checkout holds: the annex key, or `git:<blob id>`
META_SOURCE = "dss-source"
#: S3 multipart copies and uploads in parts of this size (boto3's managed transfer)
PART = 64 << 20
_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


class DestinationRefused(DssError):
    """A destination the store's config does not allow, or that is not a bucket or directory."""


@dataclass(frozen=True)
class Existing:
    """What the destination already holds under a name: its size and metadata."""

    size: int
    meta: Mapping[str, str]


class Destination(ABC):
    """One checkout destination; names are relative (`bundles/<uuid>.<version>/<path>`)."""

    url: str

    @abstractmethod
    def check(self) -> None:
        """Up front: raise DestinationRefused (the caller's to fix) or another DssError."""

    @abstractmethod
    def existing(self, name: str) -> Existing | None:
        """What is there under `name`, None if nothing."""

    def sizes_below(self, prefix: str) -> dict[str, int] | None:
        """The size of every object whose name starts with `prefix/`, by name, from one (paged)
        listing; None when this destination has no listing cheaper than `existing` per name. A
        name it does not hold is not there; one it holds still needs `existing` for its metadata."""
        return None

    @abstractmethod
    def put_file(self, src: Path, name: str, meta: Mapping[str, str], progress: Progress | None = None
                 ) -> None:
        """Publish the local file `src` as `name`, with `meta`."""

    def copy_from(self, source: Backend, relpath: str, name: str, meta: Mapping[str, str]) -> bool:
        """Copy `relpath` of `source` server-side; False when `source` is in another service (then
        nothing was done); NotFoundError when it is not there."""
        return False

    def location(self, name: str) -> str:
        return f"{self.url}/{name}"


def parse_destination(text: str, checkout_dirs: Sequence[str], *, refuse: Sequence[str] = (),
                      replica_scheme: str | None = None) -> Destination:
    """The destination `text` names. A bare bucket name (as the HCA DSS takes it) is a bucket of
    `replica_scheme` (`s3` or `gs`). `refuse` are bucket urls (the store's mirrors) no checkout may
    write into. Directories must lie under one of `checkout_dirs`; without any, none is allowed."""
    text = text.strip()
    if not text:
        raise DestinationRefused("destination is empty: give s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX] "
                                 "or a directory the store allows")
    if text.startswith("/"):
        return DirDestination(text, checkout_dirs)
    parts = urlsplit(text)
    if not parts.scheme and "/" not in text and replica_scheme in ("s3", "gs"):
        parts = urlsplit(f"{replica_scheme}://{text}")
    if parts.scheme not in ("s3", "gs") or not parts.netloc or parts.query or parts.fragment:
        raise DestinationRefused(f"destination {text!r} is not s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX] "
                                 "or an absolute directory")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_relpath(prefix)
        except DssError as e:
            raise DestinationRefused(f"destination {text!r}: the prefix must not climb with `..`") from e
    url = f"{parts.scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    for mirror in refuse:
        m = urlsplit(mirror)
        if m.scheme == parts.scheme and m.netloc == parts.netloc:
            raise DestinationRefused(f"destination {url} is a bucket of this store's mirror {mirror}; "
                                     "check out into another bucket")
    if parts.scheme == "s3":
        return S3Destination(url, parts.netloc, prefix)
    return GcsDestination(url, parts.netloc, prefix)


# -- a directory ------------------------------------------------------------------------------

def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


class DirDestination(Destination):
    """A directory under one of the allowed `checkout_dirs`; nothing below that directory may be a
    symlink (each level is opened with O_NOFOLLOW, also at write time: no check-then-use race)."""

    def __init__(self, path: str, checkout_dirs: Sequence[str]) -> None:
        parts = _components(path)
        if any(c in (".", "..") for c in parts) or "\0" in path:
            raise DestinationRefused(f"destination {path!r} must be an absolute directory without `.` or "
                                     "`..` components")
        self.url = "/" + "/".join(parts)
        self.root: str | None = None
        self.below: list[str] = []
        for allowed in sorted(checkout_dirs, key=len, reverse=True):
            top = _components(allowed)
            if parts[:len(top)] == top:
                self.root, self.below = allowed, parts[len(top):]
                break
        if self.root is None:
            dirs = ", ".join(checkout_dirs) or "none"
            raise DestinationRefused(f"destination {self.url} is not under this store's checkout "
                                     f"directories ({dirs}); check out under one of them, or ask an admin "
                                     "to add it to server.checkout_dirs in dss/config.json")

    @contextlib.contextmanager
    def _dir(self, below: list[str], create: bool) -> Iterator[int | None]:
        """An fd of the directory `root/below...` (created when `create`), opened level by level
        without following symlinks; None when it does not exist and not `create`."""
        assert self.root is not None
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as e:
            raise UnavailableError(f"checkout directory {self.root} does not exist (an admin creates it)"
                                   ) from e
        except OSError as e:
            raise UnavailableError(f"checkout directory {self.root}: {e.strerror}") from e
        try:
            for c in below:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(c, 0o755, dir_fd=fd)
                try:
                    nxt = os.open(c, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if create:
                        raise
                    os.close(fd)
                    fd = -1
                    yield None
                    return
                except OSError as e:
                    raise DestinationRefused(f"destination {self.url}: {c!r} is a symlink or not a directory "
                                             "(a checkout never follows symlinks below the checkout "
                                             "directory); name a plain directory") from e
                os.close(fd)
                fd = nxt
            yield fd
        except PermissionError as e:
            raise AccessError(f"destination {self.url}: permission denied ({e.filename or ''}); the "
                              "server's user must be able to write there") from e
        finally:
            if fd >= 0:
                os.close(fd)

    def check(self) -> None:
        with self._dir(self.below, create=False) as fd:
            if fd is not None and not os.access(f"/proc/self/fd/{fd}", os.W_OK):
                raise AccessError(f"destination {self.url} is not writable by the server's user")

    def _split(self, name: str) -> tuple[list[str], str]:
        parts = _components(check_relpath(name))
        return self.below + parts[:-1], parts[-1]

    def existing(self, name: str) -> Existing | None:
        dirs, leaf = self._split(name)
        with self._dir(dirs, create=False) as fd:
            if fd is None:
                return None
            try:
                st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Existing(st.st_size, {})

    def open_existing(self, name: str) -> int:
        """An fd of the file `name` (read-only, not through a symlink)."""
        dirs, leaf = self._split(name)
        with self._dir(dirs, create=False) as fd:
            if fd is None:
                raise NotFoundError(f"{self.url}/{name} is gone")
            return os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)

    def put_file(self, src: Path, name: str, meta: Mapping[str, str], progress: Progress | None = None
                 ) -> None:
        dirs, leaf = self._split(name)
        tmp = f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            with self._dir(dirs, create=True) as fd:
                assert fd is not None
                with open(src, "rb") as fin, open(tmp, "wb", opener=lambda p, f: os.open(
                        p, f | os.O_NOFOLLOW | os.O_EXCL, 0o644, dir_fd=fd)) as fout:
                    shutil.copyfileobj(fin, fout, 4 << 20)
                    fout.flush()
                    os.fsync(fout.fileno())
                try:
                    os.rename(tmp, leaf, src_dir_fd=fd, dst_dir_fd=fd)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=fd)
                    raise
        except DssError:
            raise
        except OSError as e:
            raise WriteError(f"destination {self.url}: cannot write {name}: {e.strerror or e} "
                             "(check the disk and permissions there)") from e
        if progress is not None:
            progress(os.stat(src).st_size)


# -- S3 ---------------------------------------------------------------------------------------

def _s3_error(url: str, e: BaseException, op: str) -> DssError:
    """One line for an S3 failure at the destination, naming the fix."""
    from botocore import exceptions as bce  # noqa: PLC0415 - boto3 costs ~0.3 s to import

    while not isinstance(e, bce.ClientError) and isinstance(e.__cause__ or e.__context__, BaseException):
        e = e.__cause__ or e.__context__  # type: ignore[assignment]  # boto3 wraps the service's answer
    if isinstance(e, bce.ClientError):
        return _s3_service_error(url, e.response, op)
    if isinstance(e, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return AccessError(f"destination {url}: the server has no AWS credentials; set AWS_PROFILE or "
                           "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for `dss serve`")
    if isinstance(e, (bce.EndpointConnectionError, bce.ConnectionError)):
        return UnavailableError(f"destination {url}: S3 endpoint unreachable ({one_line(e)}); check "
                                "AWS_ENDPOINT_URL_S3 or the network")
    return UnavailableError(f"destination {url}: {op} failed ({type(e).__name__}: {one_line(e)})")


def _s3_service_error(url: str, response: Mapping[str, Any], op: str) -> DssError:
    """One line for an error answer of the S3 service."""
    err = response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in ("NoSuchBucket", "NotFound", "404") and op == "bucket":
        return DestinationRefused(f"destination {url}: no such bucket; create it or name another")
    if code == "NoSuchBucket":
        return UnavailableError(f"destination {url}: the bucket is gone; create it and check out again")
    if code in ("NoSuchKey", "404", "NotFound"):
        return NotFoundError(f"{url}: not found")
    if code in ("AccessDenied", "Forbidden", "403", "AllAccessDisabled") or status == 403:
        need = {"write": "s3:PutObject", "bucket": "s3:ListBucket", "list": "s3:ListBucket"}.get(
            op, "s3:GetObject")
        return AccessError(f"destination {url}: access denied on {op} (the server's AWS credentials need "
                           f"{need} there: check the bucket policy or the server's AWS_PROFILE)")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return AccessError(f"destination {url}: the server's AWS credentials were rejected ({code}); "
                           "check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of `dss serve`")
    msg = one_line(err.get("Message", ""))
    return UnavailableError(f"destination {url}: {op} failed ({code}: {msg}); try again later")


def _s3_endpoint_env() -> str | None:
    for name in _ENDPOINT_ENVS:
        if os.environ.get(name):
            return os.environ[name].rstrip("/")
    return None


class S3Destination(Destination):
    """A bucket (and prefix) on the S3 endpoint the server's environment names."""

    def __init__(self, url: str, bucket: str, prefix: str) -> None:
        self.url, self.bucket, self.prefix = url, bucket, prefix
        self._client_obj: Any = None
        self._transfer: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            return self._make_client()

    def _make_client(self) -> Any:
        if self._client_obj is None:
            import boto3  # noqa: PLC0415
            from boto3.s3.transfer import TransferConfig  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415

            endpoint = _s3_endpoint_env()
            config = Config(connect_timeout=5, read_timeout=60,
                            retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=64,
                            s3={"addressing_style": "path"} if endpoint else None)
            self._client_obj = boto3.session.Session().client("s3", config=config)
            self._transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART,
                                            preferred_transfer_client="classic")
        return self._client_obj

    def _key(self, name: str) -> str:
        check_relpath(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def check(self) -> None:
        try:
            self._client().head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise _s3_error(self.url, e, "bucket") from e

    def existing(self, name: str) -> Existing | None:
        try:
            head = self._client().head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as e:
            err = _s3_error(self.url, e, "read")
            if isinstance(err, NotFoundError):
                return None
            raise err from e
        return Existing(int(head.get("ContentLength", 0)), dict(head.get("Metadata") or {}))

    def sizes_below(self, prefix: str) -> dict[str, int] | None:
        # one ListObjectsV2 per 1,000 objects instead of a HEAD per file: a fresh checkout then
        # asks nothing per file, a repeated one HEADs only the objects of the right size
        below = f"{self._key(prefix)}/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: dict[str, int] = {}
        try:
            for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                                  Prefix=below):
                for obj in page.get("Contents") or ():
                    out[str(obj["Key"])[strip:]] = int(obj.get("Size", 0))
        except Exception as e:
            raise _s3_error(self.url, e, "list") from e
        return out

    def put_file(self, src: Path, name: str, meta: Mapping[str, str], progress: Progress | None = None
                 ) -> None:
        client = self._client()
        extra = {"Metadata": dict(meta), "ChecksumAlgorithm": "CRC32"}
        try:
            client.upload_file(str(src), self.bucket, self._key(name), ExtraArgs=extra, Config=self._transfer,
                               Callback=progress)
        except Exception as e:
            raise _s3_error(self.url, e, "write") from e

    def copy_from(self, source: Backend, relpath: str, name: str, meta: Mapping[str, str]) -> bool:
        from ..backends.s3 import S3Backend  # noqa: PLC0415 - boto3 costs ~0.3 s to import

        # the same service: the same endpoint (both AWS's own when neither names one)
        if not isinstance(source, S3Backend) or (
                (source.endpoint_url or _s3_endpoint_env() or "").rstrip("/") != (_s3_endpoint_env() or "")):
            return False
        key = f"{source.prefix}/{relpath}" if source.prefix else relpath
        extra = {"Metadata": dict(meta), "MetadataDirective": "REPLACE"}
        try:
            self._client().copy({"Bucket": source.bucket, "Key": key}, self.bucket, self._key(name),
                                ExtraArgs=extra, Config=self._transfer)
        except Exception as e:
            raise _s3_error(self.url, e, "write") from e
        return True


# -- GCS --------------------------------------------------------------------------------------

def _gcs_error(url: str, e: BaseException, op: str) -> DssError:
    from google.api_core import exceptions as gexc  # noqa: PLC0415

    if isinstance(e, gexc.NotFound):
        if op == "bucket":
            return DestinationRefused(f"destination {url}: no such bucket; create it or name another")
        return NotFoundError(f"{url}: not found")
    if isinstance(e, (gexc.Forbidden, gexc.Unauthorized)):
        perm = "storage.objects.create" if op == "write" else "storage.buckets.get"
        return AccessError(f"destination {url}: access denied on {op} (the server's Google credentials need "
                           f"{perm} there: check the bucket's IAM or GOOGLE_APPLICATION_CREDENTIALS)")
    return UnavailableError(f"destination {url}: {op} failed ({type(e).__name__}: {one_line(e)}); "
                            "try again later")


class GcsDestination(Destination):
    """A bucket (and prefix) on GCS (or the emulator STORAGE_EMULATOR_HOST names)."""

    def __init__(self, url: str, bucket: str, prefix: str) -> None:
        self.url, self.bucket_name, self.prefix = url, bucket, prefix
        self._bucket_obj: Any = None

    def _bucket(self) -> Any:
        if self._bucket_obj is None:
            from google.cloud import storage  # noqa: PLC0415

            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415

                anonymous: Any = AnonymousCredentials
                client = storage.Client(project="dss", credentials=anonymous())
            else:
                try:
                    client = storage.Client()
                except Exception as e:
                    raise AccessError(f"destination {self.url}: no Google credentials for the server "
                                      f"({one_line(e)}); set GOOGLE_APPLICATION_CREDENTIALS") from e
            self._bucket_obj = client.bucket(self.bucket_name)
        return self._bucket_obj

    def _key(self, name: str) -> str:
        check_relpath(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def check(self) -> None:
        try:
            self._bucket().reload(timeout=30)
        except DssError:
            raise
        except Exception as e:
            raise _gcs_error(self.url, e, "bucket") from e

    def existing(self, name: str) -> Existing | None:
        try:
            blob = self._bucket().get_blob(self._key(name), timeout=30)
        except Exception as e:
            raise _gcs_error(self.url, e, "read") from e
        if blob is None:
            return None
        return Existing(int(blob.size or 0), dict(blob.metadata or {}))

    def put_file(self, src: Path, name: str, meta: Mapping[str, str], progress: Progress | None = None
                 ) -> None:
        blob = self._bucket().blob(self._key(name))
        blob.metadata = dict(meta)
        try:
            blob.upload_from_filename(str(src), checksum="crc32c", timeout=120)
        except Exception as e:
            raise _gcs_error(self.url, e, "write") from e
        if progress is not None:
            progress(os.stat(src).st_size)

    def copy_from(self, source: Backend, relpath: str, name: str, meta: Mapping[str, str]) -> bool:
        from ..backends.gcs import GcsBackend  # noqa: PLC0415 - google-cloud-storage costs ~0.5 s

        emulator = (os.environ.get("STORAGE_EMULATOR_HOST") or "").rstrip("/")
        if not isinstance(source, GcsBackend) or (source.endpoint_url or emulator).rstrip("/") != emulator:
            return False
        key = f"{source.prefix}/{relpath}" if source.prefix else relpath
        bucket = self._bucket()
        src_blob = bucket.client.bucket(source.bucket_name).blob(key)
        dst = bucket.blob(self._key(name))
        dst.metadata = dict(meta)
        try:
            token, _done, _total = dst.rewrite(src_blob, timeout=120)
            while token is not None:
                token, _done, _total = dst.rewrite(src_blob, token=token, timeout=120)
        except Exception as e:
            raise _gcs_error(self.url, e, "write") from e
        return True

"""The error hierarchy shared by ria_store and dss_remote; every message is one line with a fix."""

from __future__ import annotations


class DssError(Exception):
    """Root of every expected failure; the message names the thing, the cause and the fix."""


class NotFoundError(DssError, FileNotFoundError):
    """The object is definitely absent (as opposed to "cannot tell")."""


class UnavailableError(DssError):
    """The store, dataset or replica cannot be reached or read, so presence cannot be decided."""


class AccessError(UnavailableError):
    """Credentials are missing or wrong, or the account may not do this (read or write)."""


class KeyFormatError(DssError, ValueError):
    """A string is not a git-annex key this store can hold."""


class UnsafePathError(DssError):
    """A key, alias or dataset id would resolve outside the store."""


class LayoutError(DssError):
    """A RIA layout version is missing or unknown, or a directory is not what it should be."""


class UrlError(DssError, ValueError):
    """A ria+ URL is malformed or uses something this tool does not support."""


class ArchiveError(DssError):
    """A 7z archive is corrupt, truncated or cannot be read."""


class CorruptError(DssError):
    """Stored bytes do not match what their key says (size or checksum)."""


class WriteError(DssError):
    """A write failed (read-only store, disk full, permission); nothing partial was left."""


class ConfigError(DssError):
    """A configuration value or file is invalid."""


def one_line(text: object) -> str:
    """Collapse a message to one line, as the annex protocol and our CLI require."""
    return " ".join(str(text).split())


def from_os_error(e: OSError, where: str, writing: bool = False) -> DssError:
    """Map an OSError met at `where` to our taxonomy, with a message that names the fix."""
    import errno  # noqa: PLC0415

    what = e.strerror or type(e).__name__
    if e.errno == errno.ENOENT:
        return NotFoundError(f"{where}: not found")
    if writing and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WriteError(f"{where} is read-only for this user ({what}); ask the store admin for "
                          "write access or use a writable copy")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return WriteError(f"{where}: no space left ({what}); free space or raise the quota, then retry")
    if e.errno in (errno.EACCES, errno.EPERM):
        return UnavailableError(f"{where}: permission denied; check the permissions of the store")
    if writing:
        return WriteError(f"{where}: write failed ({what})")
    return UnavailableError(f"{where}: unreadable ({what}); check the mount")

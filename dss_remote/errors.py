"""dss_remote's errors: the shared hierarchy from ria_store, re-exported in one place."""

from ria_store.errors import (
    ArchiveError,
    ConfigError,
    DssError,
    KeyFormatError,
    LayoutError,
    NotFoundError,
    UnavailableError,
    UnsafePathError,
    UrlError,
    WriteError,
    one_line,
)

__all__ = [
    "ArchiveError", "ConfigError", "DssError", "KeyFormatError", "LayoutError", "NotFoundError",
    "UnavailableError", "UnsafePathError", "UrlError", "WriteError", "one_line",
]

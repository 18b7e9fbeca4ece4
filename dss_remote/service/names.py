"""What a file of a bundle written over the API may be called: a path inside the dataset that is
not the dataset's own machinery (the DSS's rules, plus git's and DataLad's)."""

from __future__ import annotations

from ria_store.errors import DssError

#: longest path taken (git handles more; file systems and clients often do not)
MAX_NAME = 1024


def check_name(name: object) -> str:
    """`name` if it is a relative path of plain components, else DssError naming what is wrong."""
    if not isinstance(name, str) or not name:
        raise DssError("a file name must be a non-empty string")
    shown = repr(name[:80])
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        raise DssError(f"file name {shown}... is longer than {MAX_NAME} bytes")
    if name.startswith(("/", "~")) or "\\" in name:
        raise DssError(f"file name {shown} must be a relative path with `/` separators (no leading "
                       "`/` or `~`, no `\\`)")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DssError(f"file name {shown} holds a control character")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise DssError(f"file name {shown} has an empty, `.` or `..` component")
    if any(p.lower() == ".git" for p in parts) or parts[0] == ".datalad":
        raise DssError(f"file name {shown} is inside `.git` or `.datalad`, which belong to the dataset")
    if len(parts) == 1 and name in (".gitattributes", ".gitmodules", ".gitignore"):
        raise DssError(f"file name {shown} is a file of the dataset's own machinery")
    return name

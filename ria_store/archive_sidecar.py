"""The member table of a packed archive, saved beside it so readers need not parse the 7z header.

py7zr parses a header of 100,000 members in several seconds (a Python object per entry), once
per reading process: each `git annex get` pays it again. `dss pack` and `dss gc` have just parsed
and verified the archive they publish, so they save its table as
`archives/archive.7z.index.json`. A reader takes it only when it matches the archive it holds
open: the same size and the same 32-byte start header, which carries the offset, size and CRC32
of the header that lists the members, so any other archive (a DataLad re-export, a repack, a
restored copy) does not match and is parsed as before. It is a cache: never mirrored, never
required, rewritten by the next pack.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .archive_index import ArchiveIndex, ArchiveSource, Member
from .atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

#: beside `archives/archive.7z`
NAME = "archive.7z.index.json"
_FORMAT = 1
_HEAD = 32


def sidecar_path(archive: Path) -> Path:
    return archive.with_name(NAME)


def save(archive: Path, index: ArchiveIndex) -> None:
    """Write the table of the archive now at `archive` (best effort: a failure only logs)."""
    try:
        with open(archive, "rb") as f:
            head = f.read(_HEAD)
            size = f.seek(0, 2)
        doc = {"format": _FORMAT, "size": size, "head": head.hex(),
               "members": [[m.name, m.size, m.crc32, m.offset] for m in index.members.values()]}
        write_bytes_atomic(sidecar_path(archive), json.dumps(doc, separators=(",", ":")).encode(),
                           mode=0o444)
    except OSError as e:
        logger.warning("could not save the member table of %s (%s); readers parse the archive", archive, e)


def remove(archive: Path) -> None:
    try:
        sidecar_path(archive).unlink()
    except FileNotFoundError:
        pass


def load(source: ArchiveSource) -> ArchiveIndex | None:
    """The saved table of the local archive `source`, or None when there is none that matches it."""
    if source.path is None:
        return None
    try:
        doc: Any = json.loads(sidecar_path(source.path).read_bytes())
        if (doc.get("format") != _FORMAT or doc.get("size") != source.size
                or bytes.fromhex(doc.get("head", "")) != source.read_range(0, _HEAD)):
            return None
        members = {str(n): Member(str(n), int(s), None if c is None else int(c),
                                  None if o is None else int(o)) for n, s, c, o in doc["members"]}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        logger.debug("ignoring the member table beside %s: %s", source.path, e)
        return None
    for m in members.values():  # a table that points outside the file is not ours
        if m.offset is not None and not 0 <= m.offset <= source.size - m.size:
            return None
    return ArchiveIndex(source.name, source.identity, members)

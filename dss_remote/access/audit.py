"""The audit log: one JSON line per record in `dss/audit/<UTC day>.jsonl` (mode 0600).

A record is {time (UTC, `Z`), identity, remote, method, path, dataset, status} plus whatever the
server adds. Each line is written with one `write` to a file opened for appending, so lines from
several server processes never interleave. A full disk or an unwritable directory costs a warning
in the server's log, never the request.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ria_store.atomic import write_all
from ria_store.sharing import file_mode, is_shared

from ..config import paths
from ..history.times import format_utc
from .private_files import PRIVATE_FILE_MODE, ensure_private_dir

logger = logging.getLogger(__name__)

FIELDS = ("identity", "remote", "method", "path", "dataset", "status")


def day_file(store_root: Path, when: datetime) -> Path:
    return store_root / paths.AUDIT / f"{when.astimezone(timezone.utc):%Y-%m-%d}.jsonl"


def line(record: Mapping[str, Any], when: datetime) -> bytes:
    """One record as its JSON line: the time first, then the standard fields, then the rest."""
    doc: dict[str, Any] = {"time": format_utc(when)}
    doc.update((k, record.get(k)) for k in FIELDS)
    doc.update((k, v) for k, v in record.items() if k not in doc)
    return (json.dumps(doc, sort_keys=False, default=str) + "\n").encode()


def append(store_root: Path, record: Mapping[str, Any], now: datetime | None = None) -> bool:
    """Append `record`; False (and a warning) if it could not be written."""
    when = now or datetime.now(timezone.utc)
    path = day_file(store_root, when)
    try:
        data = line(record, when)
        directory = ensure_private_dir(store_root, paths.AUDIT)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     file_mode(PRIVATE_FILE_MODE, is_shared(directory)))
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
    except (OSError, ValueError, TypeError) as e:
        logger.warning("audit record not written to %s: %s (free space or fix the permissions of %s)",
                       path, e, path.parent)
        return False
    except Exception as e:  # the audit must never fail a request
        logger.warning("audit record not written to %s: %s", path, e)
        return False
    return True


def read_day(store_root: Path, day: str) -> list[dict[str, Any]]:
    """The records of one UTC day (`YYYY-MM-DD`), oldest first; [] for a day without any."""
    try:
        text = (store_root / paths.AUDIT / f"{day}.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(x) for x in text.splitlines() if x.strip()]

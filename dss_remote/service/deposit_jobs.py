"""Copies of large staged objects made in the background (`PUT /v1/files` answers 202, as the DSS
does, and the client polls `HEAD /v1/files/{uuid}?version=` until it is 200).

A job is a marker file `dss/files/pending/<uuid>/<version>.json` ({state, source, pid, started,
error}) and a thread of the server process that runs the deposit. While the marker says
`running` and its process lives, a repeated PUT answers 202 again and starts nothing; a marker
whose process is gone (the server was restarted) is taken over by the next PUT. A failed copy
leaves `failed` with the error's status and title: the next PUT answers that error once and
clears it, so the client's retry starts afresh.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ria_store.atomic import makedirs_durable, write_bytes_atomic
from ria_store.locks import FileLock

from ..config import paths
from ..history import times
from .file_pool import check_uuid

logger = logging.getLogger(__name__)


def _marker(root: Path, uuid: str, version: str) -> Path:
    return root / paths.FILE_POOL / "pending" / check_uuid(uuid) / f"{version}.json"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"state": "failed", "status": 503, "title": f"the background copy's state {path} is "
                "damaged; PUT the file again"}
    return doc if isinstance(doc, dict) else None


def failure(root: Path, uuid: str, version: str) -> tuple[int, str] | None:
    """The (status, title) a failed background copy left, cleared as it is read."""
    path = _marker(root, uuid, version)
    with FileLock(path.with_suffix(".lock")):
        doc = _read(path)
        if doc is None or doc.get("state") != "failed":
            return None
        path.unlink(missing_ok=True)
    return int(doc.get("status") or 503), str(doc.get("title") or "the background copy failed")


def start(root: Path, uuid: str, version: str, *, source: str,
          work: Callable[[], None], error: Callable[[Exception], tuple[int, str]]) -> bool:
    """Run `work` in a thread unless a live job of this file version runs already; whether one
    was started. `error` turns a failure of `work` into the (status, title) kept for the client."""
    path = _marker(root, uuid, version)
    makedirs_durable(path.parent)
    with FileLock(path.with_suffix(".lock")):
        doc = _read(path)
        if doc is not None and doc.get("state") == "running" and _alive(doc.get("pid")):
            return False
        write_bytes_atomic(path, json.dumps({"state": "running", "source": source, "pid": os.getpid(),
                                             "started": times.format_utc(times.now())}).encode())

    def run() -> None:
        try:
            work()
        except Exception as e:  # kept for the client's next PUT, never lost in a thread
            status, title = error(e)
            logger.warning("background copy of %s.%s failed: %s", uuid, version, title)
            with FileLock(path.with_suffix(".lock")):
                write_bytes_atomic(path, json.dumps({"state": "failed", "source": source, "status": status,
                                                     "title": title}).encode())
            return
        with FileLock(path.with_suffix(".lock")):
            path.unlink(missing_ok=True)

    threading.Thread(target=run, name=f"deposit-{uuid[:8]}", daemon=True).start()
    return True

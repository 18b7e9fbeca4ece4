"""`dss init STORE`: create an empty RIA store (or adopt one DataLad created)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..store_admin import init_store
from ..store_config import CONFIG_RELPATH


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", help="create an empty RIA store",
                       description="Create an empty RIA store at STORE (ria-layout-version 1, "
                       "error_logs/, alias/, dss/config.json). Idempotent; adopts a store DataLad "
                       "created; refuses a directory that holds anything else.")
    p.add_argument("store", type=Path, help="directory of the store (created if missing)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root: Path = args.store.absolute()
    status = init_store(root)
    if status == "created":
        print(f"created store {root} (use it as ria+file://{root})")
    elif status == "adopted":
        print(f"adopted existing RIA store {root}: added {CONFIG_RELPATH}")
    else:
        print(f"store {root} already exists; nothing to do")
    return 0

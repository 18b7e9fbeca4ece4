"""`dss repair STORE`: fix what fsck finds, from a replica whose copy verifies."""

from __future__ import annotations

import argparse
import sys

from ria_store.errors import DssError

from ..replication.fsck import fsck
from ..replication.repair import repair
from .common import open_selected, progress, store_and_datasets


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("repair", help="fix what fsck finds from a good replica",
                       description="Run fsck, then copy each missing or corrupt object from the "
                       "first replica holding a verified good copy. Extra objects are left alone.")
    store_and_datasets(r)
    r.add_argument("--replica", action="append", help="repair only this replica (repeatable)")
    r.add_argument("--deep", action="store_true", help="find corruption by downloading and hashing")
    r.set_defaults(func=_repair)


def _repair(args: argparse.Namespace) -> int:
    sr, datasets = open_selected(args)
    with sr:
        with progress("fsck") as tick:
            findings = fsck(sr, datasets, args.replica, deep=args.deep, progress=tick)
        with progress("repair") as tick:
            done, failed = repair(sr, findings, tick)
    for line in done:
        print(f"repaired {line}")
    for line in failed:
        print(f"dss: could not repair {line}", file=sys.stderr)
    print(f"repair: {len(done)} fixed, {len(failed)} failed", file=sys.stderr)
    if failed:
        raise DssError(f"{len(failed)} object(s) could not be repaired (see above); fix the replicas "
                       "named and rerun `dss repair`")
    return 0

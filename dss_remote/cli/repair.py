"""`dss repair STORE`: fix what fsck finds, from a replica whose copy verifies; remove old leftovers."""

from __future__ import annotations

import argparse
import sys

from ria_store.errors import DssError

from ..replication import leftovers
from ..replication.fsck import fsck
from ..replication.repair import repair
from .common import leftover_age, leftover_age_option, open_selected, progress, store_and_datasets


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("repair", help="fix what fsck finds from a good replica",
                       description="Run fsck, then copy each missing or corrupt object from the "
                       "first replica holding a verified good copy, and remove what interrupted "
                       "writes left older than the safe age (temp files, unfinished multipart uploads, "
                       "empty key directories). Extra objects are left alone.")
    store_and_datasets(r)
    r.add_argument("--replica", action="append", help="repair only this replica (repeatable)")
    r.add_argument("--deep", action="store_true", help="find corruption by downloading and hashing")
    leftover_age_option(r)
    r.set_defaults(func=_repair)


def _repair(args: argparse.Namespace) -> int:
    sr, datasets = open_selected(args)
    with sr:
        max_age = leftover_age(args, sr)
        with progress("fsck") as tick:
            findings = fsck(sr, datasets, args.replica, deep=args.deep, progress=tick, leftover_age=max_age)
        with progress("repair") as tick:
            done, failed = repair(sr, findings, tick)
        cleaned = leftovers.clean(sr, datasets, max_age, args.replica)
    failed += cleaned.failed
    for line in done:
        print(f"repaired {line}")
    for line in cleaned.removed:
        print(f"removed leftover {line}")
    for line in failed:
        print(f"dss: could not repair {line}", file=sys.stderr)
    print(f"repair: {len(done)} fixed, {len(cleaned.removed)} leftover(s) removed, {len(failed)} failed",
          file=sys.stderr)
    if failed:
        raise DssError(f"{len(failed)} object(s) could not be repaired (see above); fix the replicas "
                       "named and rerun `dss repair`")
    return 0

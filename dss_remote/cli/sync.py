"""`dss sync STORE`: catch up what failed hook runs missed, drain the repair queue, copy what is
missing, remove old leftovers of interrupted writes."""

from __future__ import annotations

import argparse
import sys

from ria_store.errors import DssError

from ..hook.catchup import catch_up_store
from ..replication.store_replicas import StoreReplicas
from ..replication.sync import sync
from .common import leftover_age, leftover_age_option, open_selected, progress, store_and_datasets


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("sync", help="drain the repair queue and copy anything missing",
                       description="Copy every key a replica missed (the repair queue first), then "
                       "the store's other files (layout versions, config, bare repos, bundle manifests, "
                       "events) to the mirrors, and remove what interrupted writes left older than the "
                       "safe age (temp files, unfinished multipart uploads, empty key directories). In "
                       "datasets with the dss hook it first records any bundle version (from the reflog) "
                       "and event a failed hook run missed.")
    store_and_datasets(s)
    s.add_argument("--git-only", action="store_true",
                   help="only the datasets' git sides, bundles and recent events (what a push changed)")
    s.add_argument("--quiet", "-q", action="store_true", help="print only failures")
    leftover_age_option(s)
    s.set_defaults(func=_sync)


def _sync(args: argparse.Namespace) -> int:
    sr, datasets = open_selected(args)
    with sr:  # shuts the replica writer threads down, also on failure
        return _sync_open(args, sr, datasets)


def _sync_open(args: argparse.Namespace, sr: StoreReplicas, datasets: list[str]) -> int:
    copied: list[str] = []
    failed: list[str] = []
    root = sr.primary.local_root
    if not args.git_only and root is not None:
        # first, so that the versions and events it writes go to the mirrors in this same run
        caught = catch_up_store(root, datasets)
        copied += [f"rebuilt bundle version {v}" for v in caught.rebuilt]
        copied += [f"wrote missing event {e}" for e in caught.notified]
        failed += caught.problems
    with progress("sync") as tick:
        report = sync(sr, datasets, tick, git_only=args.git_only, leftover_age=leftover_age(args, sr))
    copied += report.copied
    failed += report.failed
    for line in copied if not args.quiet else ():
        print(f"copied {line}")
    for line in report.removed if not args.quiet else ():
        print(f"removed leftover {line}")
    for line in failed:
        print(f"dss: could not sync {line}", file=sys.stderr)
    if not args.quiet:
        fresh = f", {report.fresh_leftovers} fresh leftover(s) left alone" if report.fresh_leftovers else ""
        print(f"sync: {len(copied)} copied, {report.cleared} queue entries done, "
              f"{len(report.removed)} leftover(s) removed{fresh}, {len(failed)} failed", file=sys.stderr)
    if failed:
        raise DssError(f"{len(failed)} item(s) could not be synced (see above); fix what each names "
                       "(an unreachable replica, a store this user may not write), then rerun `dss sync`")
    return 0

"""`dss gc STORE [--dataset ID|~alias] ...`: remove content no live bundle version and no branch needs."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import DssError, one_line

from ..history import events, references
from ..hook.publish import publish
from ..replication.gc import GcResult, collect, write_report
from ..replication.store_replicas import open_store_replicas
from ..service import pool_gc
from ..webhooks import outbox
from .common import age, each_dataset, named_dataset, progress

DEFAULT_GRACE = "30d"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "gc", help="remove content no live bundle version and no branch needs",
        description="Removes from every replica the content of keys that no live (not tombstoned) "
        "bundle version and no branch or tag of the bare repository references, and whose copy in "
        "the store is older than the grace period. Keys inside the archive are dropped by writing "
        "a new archive without them. A real run writes a report under dss/gc/ and a keys.collected "
        "event per dataset. Without --dataset it also empties the write API's file pool of deposits "
        "and unfinished direct uploads older than the grace period.")
    p.add_argument("store", type=Path, help="directory of the store")
    p.add_argument("--dataset", metavar="ID|~ALIAS", help="only this dataset (default: every dataset)")
    p.add_argument("--grace", default=DEFAULT_GRACE, metavar="AGE",
                   help=f"keep unreferenced keys written more recently (a push uploads keys before it "
                   f"moves the ref), e.g. 7d, 12h (default {DEFAULT_GRACE})")
    p.add_argument("--dry-run", action="store_true", help="list keys, bytes and replicas; change nothing")
    p.add_argument("--json", action="store_true", help="one JSON object: the report")
    p.set_defaults(func=_gc)


def _needed(root: Path, dsid: str) -> frozenset[str]:
    return references.referenced(root, dsid).keys


def _gc(args: argparse.Namespace) -> int:
    grace = age(args.grace, "--grace", "30d, 12h")
    store = ria.open_store(args.store.absolute())
    dsids = [named_dataset(store, args.dataset)] if args.dataset else sorted(ria.iter_datasets(store))
    with open_store_replicas(store.path) as sr:
        def one(dsid: str) -> GcResult:
            with progress(f"gc {dsid[:8]}", in_bytes=True) as tick:
                return collect(sr, dsid, functools.partial(_needed, store.path, dsid), grace=grace,
                               dry_run=args.dry_run, progress=tick)

        results, failed = each_dataset(dsids, one)
    # the file pool is the store's, not a dataset's: collected when the whole store is
    pool = None if args.dataset else pool_gc.collect(store.path, grace, dry_run=args.dry_run, now=time.time())
    report = None
    if not args.dry_run and any(r.collected for r in results):
        report = write_report(store.path, results)
        _announce(store.path, [r for r in results if r.collected], report)
    if args.json:
        print(json.dumps({"report": str(report) if report else None,
                          "datasets": [r.to_json() for r in results], "failed": failed,
                          "file_pool": pool.to_json() if pool else None}, indent=1))
    else:
        for r in results:
            print(r.line())
            for c in r.collected if args.dry_run else ():
                print(f"  {c.key}\t{c.size}\t{','.join(c.loose_on + (['archive'] if c.archived else []))}")
        if pool is not None:
            print(pool.line())
        if report:
            print(f"report: {report}")
    for r in results:
        for p in r.problems:
            print(f"dss: warning: {r.dataset}: {p}", file=sys.stderr)
    for line in failed + (pool.failed if pool else []):
        print(f"dss: could not collect {line}", file=sys.stderr)
    if failed:
        raise DssError(f"{len(failed)} dataset(s) were not collected (see above); nothing of theirs "
                       "changed: fix what each names and run `dss gc` again")
    return 0


def _announce(root: Path, results: list[GcResult], report: Path) -> None:
    """A keys.collected event per dataset (webhooks as for any event)."""
    queued = 0
    when = datetime.now(timezone.utc)
    for i, r in enumerate(results):
        event = events.keys_collected(r.dataset, when=when + timedelta(microseconds=i), summary=(
            f"{len(r.collected)} key(s), {r.bytes} bytes collected; report {report.relative_to(root)}"))
        try:
            queued += publish(root, event, [])
        except (DssError, OSError) as e:
            print(f"dss: warning: event of {r.dataset}: {one_line(e)}", file=sys.stderr)
    if queued:
        outbox.spawn_deliverer(root)

"""`dss fsck`, `dss repair`, `dss sync`: check the store's replicas against each other and fix them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from ria_store import store as ria
from ria_store.errors import DssError
from ria_store.layout import check_dataset_id

from ..fsck import fsck
from ..repair import repair
from ..store_config import read_config
from ..store_replicas import StoreReplicas, open_replicas
from ..sync import sync


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    f = sub.add_parser("fsck", help="compare the store's replicas key by key",
                       description="Report missing, extra and corrupt objects on every replica. "
                       "Cloud copies are verified without downloading them (the service's "
                       "checksums against those recorded at upload); --deep downloads and hashes. "
                       "Exit 1 if anything is wrong.")
    _common(f)
    f.add_argument("--replica", action="append", help="check only this replica (repeatable)")
    f.add_argument("--deep", action="store_true", help="download and hash every object")
    f.add_argument("--json", action="store_true", help="one JSON document on stdout")
    f.set_defaults(func=_fsck)
    r = sub.add_parser("repair", help="fix what fsck finds from a good replica",
                       description="Run fsck, then copy each missing or corrupt object from the "
                       "first replica holding a verified good copy. Extra objects are left alone.")
    _common(r)
    r.add_argument("--replica", action="append", help="repair only this replica (repeatable)")
    r.add_argument("--deep", action="store_true", help="find corruption by downloading and hashing")
    r.set_defaults(func=_repair)
    s = sub.add_parser("sync", help="drain the repair queue and copy anything missing",
                       description="Copy every key a replica missed (the repair queue first), then "
                       "the store's other files (layout versions, config, bare repos, bundle manifests, "
                       "events) to the mirrors. In datasets with the dss hook it first records any bundle "
                       "version (from the reflog) and event a failed hook run missed.")
    _common(s)
    s.add_argument("--git-only", action="store_true",
                   help="only the datasets' git sides, bundles and recent events (what a push changed)")
    s.add_argument("--quiet", "-q", action="store_true", help="print only failures")
    s.set_defaults(func=_sync)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path, help="directory of the store")
    p.add_argument("--dataset", action="append", metavar="ID", help="only this dataset (repeatable)")


def _open(args: argparse.Namespace) -> tuple[StoreReplicas, list[str]]:
    store = ria.open_store(args.store.absolute())
    sr = open_replicas(f"ria+file://{store.path}", read_config(store.path))
    if args.dataset:
        datasets = [check_dataset_id(d) for d in args.dataset]
        for d in datasets:
            ria.open_dataset(store, d)  # a typo must not read as "all clean"
    else:
        datasets = list(ria.iter_datasets(store))
    return sr, datasets


@contextmanager
def _progress(desc: str) -> Iterator[Callable[[int], None]]:
    """tqdm on a TTY, nothing in pipes."""
    bar = tqdm(desc=desc, unit=" obj", disable=not sys.stderr.isatty(), leave=False)
    def tick(n: int) -> None:
        bar.update(n)

    try:
        yield tick
    finally:
        bar.close()


def _fsck(args: argparse.Namespace) -> int:
    sr, datasets = _open(args)
    with _progress("fsck") as tick:
        findings = fsck(sr, datasets, args.replica, deep=args.deep, progress=tick)
    if args.json:
        print(json.dumps({"datasets": len(datasets), "replicas": [n for n, _ in sr.backends],
                          "deep": args.deep, "findings": [f.to_json() for f in findings]}, indent=2))
    else:
        for f in findings:
            print(f.line())
        bad = sum(f.kind != "unverified" for f in findings)
        print(f"fsck: {len(datasets)} dataset(s), {bad} problem(s), "
              f"{len(findings) - bad} unverified", file=sys.stderr)
    return 1 if any(f.kind != "unverified" for f in findings) else 0


def _repair(args: argparse.Namespace) -> int:
    sr, datasets = _open(args)
    with _progress("fsck") as tick:
        findings = fsck(sr, datasets, args.replica, deep=args.deep, progress=tick)
    with _progress("repair") as tick:
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


def _sync(args: argparse.Namespace) -> int:
    sr, datasets = _open(args)
    with _progress("sync") as tick:
        report = sync(sr, datasets, tick, git_only=args.git_only)
    for line in report.copied if not args.quiet else ():
        print(f"copied {line}")
    for line in report.failed:
        print(f"dss: could not sync {line}", file=sys.stderr)
    if not args.quiet:
        print(f"sync: {len(report.copied)} copied, {report.cleared} queue entries done, "
              f"{len(report.failed)} failed", file=sys.stderr)
    if report.failed:
        raise DssError(f"{len(report.failed)} item(s) could not be synced (see above); the repair "
                       "queue keeps them: rerun `dss sync` when the replicas are back")
    return 0

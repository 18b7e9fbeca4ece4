"""`dss fsck STORE`: compare the store's replicas key by key, cloud copies without downloading them."""

from __future__ import annotations

import argparse
import json
import sys

from ..replication.fsck import fsck
from .common import open_selected, progress, store_and_datasets


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    f = sub.add_parser("fsck", help="compare the store's replicas key by key",
                       description="Report missing, extra and corrupt objects on every replica. "
                       "Cloud copies are verified without downloading them (the service's "
                       "checksums against those recorded at upload); --deep downloads and hashes. "
                       "Exit 1 if anything is wrong.")
    store_and_datasets(f)
    f.add_argument("--replica", action="append", help="check only this replica (repeatable)")
    f.add_argument("--deep", action="store_true", help="download and hash every object")
    f.add_argument("--json", action="store_true", help="one JSON document on stdout")
    f.set_defaults(func=_fsck)


def _fsck(args: argparse.Namespace) -> int:
    sr, datasets = open_selected(args)
    with sr, progress("fsck") as tick:
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

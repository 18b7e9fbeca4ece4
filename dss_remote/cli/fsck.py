"""`dss fsck STORE`: compare the store's replicas key by key, cloud copies without downloading them;
report leftovers of interrupted writes and alias links that leave the store."""

from __future__ import annotations

import argparse
import json
import sys

from ..replication.fsck import NOT_PROBLEMS, fsck
from .common import leftover_age, leftover_age_option, open_selected, progress, store_and_datasets


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    f = sub.add_parser("fsck", help="compare the store's replicas key by key",
                       description="Report missing, extra and corrupt objects on every replica. "
                       "Cloud copies are verified without downloading them (the service's "
                       "checksums against those recorded at upload); --deep downloads and hashes. "
                       "Also reports, with their age, the temp files, unfinished multipart uploads and "
                       "empty key directories interrupted writes left (`leftover`: older than the safe "
                       "age, `dss sync` removes them; `in-progress`: fresher, maybe a running write), and "
                       "alias links leading outside the store (`unsafe`). "
                       "Exit 1 if anything is wrong.")
    store_and_datasets(f)
    f.add_argument("--replica", action="append", help="check only this replica (repeatable)")
    f.add_argument("--deep", action="store_true", help="download and hash every object")
    f.add_argument("--json", action="store_true", help="one JSON document on stdout")
    leftover_age_option(f)
    f.set_defaults(func=_fsck)


def _fsck(args: argparse.Namespace) -> int:
    sr, datasets = open_selected(args)
    with sr, progress("fsck") as tick:
        findings = fsck(sr, datasets, args.replica, deep=args.deep, progress=tick,
                        leftover_age=leftover_age(args, sr))
    if args.json:
        print(json.dumps({"datasets": len(datasets), "replicas": [n for n, _ in sr.backends],
                          "deep": args.deep, "findings": [f.to_json() for f in findings]}, indent=2))
    else:
        for f in findings:
            print(f.line())
        bad = sum(f.kind not in NOT_PROBLEMS for f in findings)
        unverified = sum(f.kind == "unverified" for f in findings)
        fresh = len(findings) - bad - unverified
        print(f"fsck: {len(datasets)} dataset(s), {bad} problem(s), {unverified} unverified"
              + (f", {fresh} maybe in progress" if fresh else ""), file=sys.stderr)
    return 1 if any(f.kind not in NOT_PROBLEMS for f in findings) else 0

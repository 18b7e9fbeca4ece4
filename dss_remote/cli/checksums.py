"""`dss checksums STORE`: record the DSS checksums (sha256, sha1, crc32c, s3_etag) of every key
that has none; `--verify` hashes the recorded ones again."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ria_store import store as ria

from ..replication.checksums_fill import fill
from .common import named_dataset, progress


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser("checksums", help="record the DSS checksums of every key that has none",
                       description="Compute sha256, sha1, crc32c and s3_etag of every key the store "
                       "holds (loose, and packed in archives/archive.7z) that has no record under "
                       "dss/checksums yet, and record them. --verify also hashes the keys that have "
                       "one and lists every record that differs. Exit 1 if any key failed or "
                       "a record differs.")
    c.add_argument("store", type=Path, help="directory of the store")
    c.add_argument("--dataset", action="append", metavar="ID|~ALIAS",
                   help="only this dataset (repeatable; default: every dataset)")
    c.add_argument("--verify", action="store_true", help="hash keys with a record too, and compare")
    c.add_argument("--json", action="store_true", help="one JSON document on stdout")
    c.set_defaults(func=_checksums)


def _checksums(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    datasets = ([named_dataset(store, d) for d in args.dataset] if args.dataset
                else list(ria.iter_datasets(store)))
    with progress("checksums") as tick:
        report = fill(store.path, datasets, verify=args.verify, progress=tick)
    if args.json:
        print(json.dumps({"datasets": len(datasets), "verify": args.verify, **report.to_json()},
                         indent=2))
    else:
        for p in report.problems:
            print(p.line())
        c = report.counts
        print(f"checksums: {len(datasets)} dataset(s), {c['computed']} computed, "
              f"{c['already']} already there, {c['verified']} verified, {c['mismatch']} mismatched, "
              f"{c['failed']} failed", file=sys.stderr)
    return 0 if report.ok else 1

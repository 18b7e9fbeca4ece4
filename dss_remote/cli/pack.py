"""`dss pack STORE [--dataset ID|~alias] ...`: loose keys into archives DataLad's ORA reads."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import DssError

from ..replication.pack import PackResult, pack
from ..replication.store_replicas import open_store_replicas
from .common import age, each_dataset, named_dataset, progress

#: keys written more recently than this stay loose unless --min-age says otherwise
DEFAULT_MIN_AGE = "7d"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "pack", help="pack loose keys into archives/archive.7z (saves inodes)",
        description="Adds each dataset's loose keys to its archives/archive.7z, written as DataLad's "
        "export-archive-ora writes it (uncompressed, non-solid), so DataLad's ORA (with a `7z` "
        "program) and the dss remote read it. Incremental: only keys not yet packed are added; "
        "the new archive is written beside the old one, verified and renamed over it, then "
        "uploaded to the mirrors. Loose objects stay unless --remove-loose.")
    p.add_argument("store", type=Path, help="directory of the store")
    p.add_argument("--dataset", metavar="ID|~ALIAS", help="only this dataset (default: every dataset)")
    p.add_argument("--min-age", default=DEFAULT_MIN_AGE, metavar="AGE",
                   help="leave keys written more recently loose, e.g. 12h, 7d, 0s "
                   f"(default {DEFAULT_MIN_AGE})")
    p.add_argument("--remove-loose", action="store_true",
                   help="remove each loose object once the verified archive holds it (on the store, "
                   "and on each mirror once it holds the new archive)")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would be packed and freed; change nothing")
    p.add_argument("--json", action="store_true", help="one JSON array, an object per dataset")
    p.set_defaults(func=_pack)


def _pack(args: argparse.Namespace) -> int:
    min_age = age(args.min_age, "--min-age", "12h, 7d; 0 packs every key")
    store = ria.open_store(args.store.absolute())
    dsids = [named_dataset(store, args.dataset)] if args.dataset else sorted(ria.iter_datasets(store))
    with open_store_replicas(store.path) as sr:
        def one(dsid: str) -> PackResult:
            with progress(f"pack {dsid[:8]}", in_bytes=True) as tick:
                return pack(sr, dsid, min_age=min_age, remove_loose=args.remove_loose,
                            dry_run=args.dry_run, progress=tick)

        results, failed = each_dataset(dsids, one)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        for r in results:
            print(r.line())
    for r in results:
        for p in r.problems:
            print(f"dss: warning: {r.dataset}: {p}", file=sys.stderr)
    for line in failed:
        print(f"dss: could not pack {line}", file=sys.stderr)
    if failed:
        raise DssError(f"{len(failed)} dataset(s) could not be packed (see above); nothing of theirs "
                       "changed: fix what each names and run `dss pack` again")
    return 0

"""`dss pack STORE [--dataset ID|~alias] ...`: loose keys into archives DataLad's ORA reads."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import DssError, one_line
from ria_store.layout import check_dataset_id

from ..access.durations import parse_duration
from ..replication.pack import PackResult, pack
from ..replication.store_replicas import open_store_replicas
from .common import byte_progress

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


def _min_age(text: str) -> timedelta:
    if text in ("0", "0s"):
        return timedelta(0)
    try:
        span = parse_duration(text)
    except DssError:
        span = None
    if span is None:
        raise DssError(f"--min-age {text!r} is not an age: give a number and a unit s, m, h, d or w "
                       "(e.g. 12h, 7d; 0 packs every key)")
    return span


def _pack(args: argparse.Namespace) -> int:
    min_age = _min_age(args.min_age)
    store = ria.open_store(args.store.absolute())
    if args.dataset:
        text = args.dataset
        dsids = [ria.resolve_alias(store, text[1:]) if text.startswith("~") else check_dataset_id(text)]
        ria.open_dataset(store, dsids[0])  # a typo is an error, not "nothing to pack"
    else:
        dsids = sorted(ria.iter_datasets(store))
    results: list[PackResult] = []
    failed: list[str] = []
    with open_store_replicas(store.path) as sr:
        for dsid in dsids:
            try:
                with byte_progress(f"pack {dsid[:8]}") as tick:
                    results.append(pack(sr, dsid, min_age=min_age, remove_loose=args.remove_loose,
                                        dry_run=args.dry_run, progress=tick))
            except DssError as e:
                if len(dsids) == 1:
                    raise
                failed.append(f"{dsid}: {one_line(e)}")
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

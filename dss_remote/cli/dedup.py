"""`dss dedup STORE`: hard-link the copies of a key that several datasets of the store hold, so
they take the bytes and the inode of one; `--dry-run` says what it would save."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..replication.dedup import DedupReport, dedup
from .common import progress


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = sub.add_parser("dedup", help="hard-link identical keys across the store's datasets",
                       description="Find the keys that several datasets of a POSIX store hold loose, "
                       "verify each copy (size and checksum against the key) and replace each good "
                       "duplicate by a hard link to one good copy (atomically: link under a temp "
                       "name, rename over the duplicate). Keys without a checksum (WORM, URL), "
                       "archives and mirrors are left alone; a corrupt copy is reported, never linked "
                       "to nor replaced; a pair on two file systems is skipped with a note. "
                       "Exit 1 if a copy was corrupt or could not be read or linked.")
    d.add_argument("store", type=Path, help="directory of the store")
    d.add_argument("--dry-run", action="store_true",
                   help="change nothing; report what would be linked and saved")
    d.add_argument("--json", action="store_true", help="one JSON document on stdout")
    d.set_defaults(func=_dedup)


def _dedup(args: argparse.Namespace) -> int:
    with progress("dedup") as tick:
        report = dedup(args.store.absolute(), dry_run=args.dry_run, progress=tick)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for p in report.problems:
            print(f"dss: warning: {p.line()}", file=sys.stderr)
        print(_summary(report))
    if report.corrupt:
        print(f"dss: error: {len(report.corrupt)} corrupt cop{'y' if len(report.corrupt) == 1 else 'ies'} "
              f"found, not linked; `dss fsck --deep {report.store}` lists them, `dss repair --deep "
              f"{report.store}` replaces them from a good replica", file=sys.stderr)
    if report.failed:
        print(f"dss: error: {len(report.failed)} dataset(s) or cop(ies) could not be read or linked "
              "(see above); fix what each names, then run `dss dedup` again", file=sys.stderr)
    return 0 if report.ok else 1


def _summary(r: DedupReport) -> str:
    made, saving = ("would make", "saving") if r.dry_run else ("made", "saved")
    return (f"dedup{' (dry run, nothing changed)' if r.dry_run else ''}: {r.datasets} dataset(s), "
            f"{r.objects} loose object(s), {r.keys} key(s), {r.groups} in two or more datasets; "
            f"{made} {r.links} link(s), {saving} {r.bytes_saved} bytes ({_human(r.bytes_saved)}) "
            f"and {r.inodes_saved} inode(s); {r.already_linked} already linked, "
            f"{len(r.corrupt)} corrupt, {len(r.skipped)} skipped, {len(r.failed)} failed, "
            f"{r.no_checksum} without a checksum")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")

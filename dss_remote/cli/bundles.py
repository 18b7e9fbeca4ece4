"""`dss bundles list|show STORE ...`: the bundle versions the post-update hook recorded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import DssError
from ria_store.layout import check_dataset_id

from ..history import bundle_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bundles", help="list and show bundle versions (a dataset at a commit)",
                       description="Every push that moves a branch of a dataset in the store records an "
                       "immutable manifest under dss/bundles/<dataset id>/<version>.json.")
    bsub = p.add_subparsers(dest="bundles_command", metavar="ACTION", required=True)
    ls = bsub.add_parser("list", help="versions, oldest first")
    ls.add_argument("store", type=Path)
    ls.add_argument("--dataset", help="dataset id or ~alias (default: every dataset)")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    ls.set_defaults(func=_list)
    sh = bsub.add_parser("show", help="one version's manifest")
    sh.add_argument("store", type=Path)
    sh.add_argument("bundle", metavar="ID[@VERSION]", help="dataset id or ~alias; latest version if none")
    sh.add_argument("--json", action="store_true", help="the manifest as stored")
    sh.set_defaults(func=_show)


def _dataset(store: ria.Store, text: str) -> str:
    if text.startswith("~"):
        return ria.resolve_alias(store, text[1:])
    return check_dataset_id(text)


def _list(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    dsids = [_dataset(store, args.dataset)] if args.dataset else bundle_store.datasets(store.path)
    rows = [{"dataset_id": d, **vars(e)} for d in dsids for e in bundle_store.read_log(store.path, d)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        mark = " (rebuilt)" if r["rebuilt"] else ""
        print(f"{r['dataset_id']}@{r['version']}\t{r['ref']}\t{r['commit'][:12]}\t"
              f"{r['file_count']} files{mark}")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    ident, _, version = args.bundle.partition("@")
    if not ident:
        raise DssError(f"{args.bundle!r}: give a dataset id or ~alias, optionally @VERSION")
    manifest = bundle_store.load(store.path, _dataset(store, ident), version or None)
    if args.json:
        print(json.dumps(manifest.to_json(), indent=1))
        return 0
    head = manifest.head
    print(f"bundle {head.bundle_fqid}\n  ref {head.ref} commit {head.commit}\n"
          f"  parent {head.parent_version or '-'}\n  {head.file_count} files:")
    for f in manifest.files:
        what = f.get("key") or f.get("git_blob") or f.get("commit")
        size = "-" if f.get("size") is None else f["size"]
        print(f"  {f['type']:10} {size!s:>12}  {f['path']}  {what}")
    return 0

"""`dss bundles list|show|delete STORE ...`: the bundle versions the post-update hook recorded,
and their tombstones."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import DssError, NotFoundError, one_line
from ria_store.layout import check_dataset_id

from ..config.store_config import read_config
from ..history import bundle_store, tombstones
from ..hook.publish import publish
from ..replication.store_replicas import open_store_replicas
from ..replication.sync import sync
from ..webhooks import outbox

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bundles", help="list and show bundle versions (a dataset at a commit)",
                       description="Every push that moves a branch of a dataset in the store records an "
                       "immutable manifest under dss/bundles/<dataset id>/<version>.json.")
    bsub = p.add_subparsers(dest="bundles_command", metavar="ACTION", required=True)
    ls = bsub.add_parser("list", help="versions, oldest first")
    ls.add_argument("store", type=Path)
    ls.add_argument("--dataset", help="dataset id or ~alias (default: every dataset)")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    ls.add_argument("--all", action="store_true", help="deleted (tombstoned) versions too")
    ls.set_defaults(func=_list)
    sh = bsub.add_parser("show", help="one version's manifest")
    sh.add_argument("store", type=Path)
    sh.add_argument("bundle", metavar="ID[@VERSION]", help="dataset id or ~alias; latest version if none")
    sh.add_argument("--json", action="store_true", help="the manifest as stored")
    sh.add_argument("--all", action="store_true", help="a deleted (tombstoned) version too")
    sh.set_defaults(func=_show)
    rm = bsub.add_parser("delete", help="tombstone one version, or every version of a dataset",
                         description="Writes an immutable tombstone per version and a bundle.deleted "
                         "event (webhooks as for any event); list/show then leave the version out. "
                         "Manifests, keys and git history stay (`dss gc` collects what no live "
                         "version needs).")
    rm.add_argument("store", type=Path)
    rm.add_argument("bundle", metavar="ID[@VERSION]",
                    help="dataset id or ~alias; every live version if no @VERSION")
    rm.add_argument("--reason", required=True, help="why (one line; subscribers get it)")
    rm.add_argument("--json", action="store_true", help="the tombstones written, as a JSON array")
    rm.set_defaults(func=_delete)


def _dataset(store: ria.Store, text: str) -> str:
    if text.startswith("~"):
        return ria.resolve_alias(store, text[1:])
    return check_dataset_id(text)


def _list(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    dsids = [_dataset(store, args.dataset)] if args.dataset else bundle_store.datasets(store.path)
    rows = []
    for d in dsids:
        gone = tombstones.dead(store.path, d)
        for e in bundle_store.read_log(store.path, d):
            t = gone.get(e.version)
            if t is None or args.all:
                rows.append({"dataset_id": d, **vars(e),
                             "deleted": None if t is None else {"at": t.deleted_at, "by": t.deleted_by,
                                                                "reason": t.reason}})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        mark = " (rebuilt)" if r["rebuilt"] else ""
        if r["deleted"]:
            mark += f" (deleted {r['deleted']['at']}: {r['deleted']['reason']})"
        print(f"{r['dataset_id']}@{r['version']}\t{r['ref']}\t{r['commit'][:12]}\t"
              f"{r['file_count']} files{mark}")
    return 0


def _split(store: ria.Store, text: str) -> tuple[str, str | None]:
    ident, _, version = text.partition("@")
    if not ident:
        raise DssError(f"{text!r}: give a dataset id or ~alias, optionally @VERSION")
    return _dataset(store, ident), version or None


def _show(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    dsid, version = _split(store, args.bundle)
    gone = {} if args.all else tombstones.dead(store.path, dsid)
    if version is None and gone:
        live = [v for v in bundle_store.versions(store.path, dsid) if v not in gone]
        if not live:
            raise NotFoundError(f"every version of dataset {dsid} is deleted; `--all` shows them")
        version = live[-1]
    if version in gone:
        t = gone[version]
        raise NotFoundError(f"bundle version {dsid}@{version} was deleted ({t.deleted_at} by "
                            f"{t.deleted_by}: {t.reason}); `--all` shows it")
    manifest = bundle_store.load(store.path, dsid, version)
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


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


def _delete(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    dsid, version = _split(store, args.bundle)
    written = tombstones.bury(store.path, dsid, version, reason=args.reason, who=_who())
    queued, problems = 0, []
    for t in written:
        try:
            event, paths = tombstones.event_of(store.path, t)
            queued += publish(store.path, event, paths)
        except (DssError, OSError) as e:
            problems.append(f"event of {dsid}@{t.version}: {one_line(e)}")
    if queued:
        outbox.spawn_deliverer(store.path)
    if read_config(store.path).mirrors:
        report = sync(open_store_replicas(store.path), [dsid], git_only=True)
        problems += report.failed
    if args.json:
        print(json.dumps([t.to_json() for t in written], indent=1))
    else:
        for t in written:
            print(f"deleted {dsid}@{t.version}: {t.reason}")
    for p in problems:
        print(f"dss: warning: {p}; run `dss sync {store.path}` to finish", file=sys.stderr)
    return 0

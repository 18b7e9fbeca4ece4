"""`dss index`, `dss search` and `dss meta set|show`: find bundle versions by their metadata."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from ria_store import store as ria
from ria_store.errors import DssError, one_line

from ..config.store_config import read_config
from ..history import bundle_store, bundles, meta_records
from ..hook.publish import publish
from ..replication.store_replicas import open_store_replicas
from ..replication.sync import sync
from ..search import query_language
from ..search.sqlite_index import SqliteIndex
from ..webhooks import outbox
from .common import named_dataset


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ix = sub.add_parser("index", help="bring the search index up to date (or rebuild it)",
                        description="Applies every event of the journal the index has not seen "
                        "(dss/index/search.sqlite, a cache: never mirrored). --rebuild makes it "
                        "again from the manifests, tombstones and metadata records alone.")
    ix.add_argument("store", type=Path)
    ix.add_argument("--rebuild", action="store_true", help="from scratch, from the manifests")
    ix.add_argument("--json", action="store_true", help="what was done, as JSON")
    ix.set_defaults(func=_index)

    s = sub.add_parser("search", help="bundle versions whose metadata match a query",
                       description="Catches the index up, then prints the matching bundle versions "
                       "(dataset id, version, alias). Query language: docs/search.md, e.g. "
                       "'meta.species:mouse AND size>1GB', 'path:raw/*.nii.gz', "
                       "'created>=2026-06-01 NOT alias:scratch'.")
    s.add_argument("store", type=Path)
    s.add_argument("query", help="the query ('' for every version)")
    s.add_argument("--sort", default="version:desc",
                   help="FIELD[:asc|:desc] (or --sort=-FIELD): version, created, dataset_id, alias, "
                   "uuid, bundle_fqid, size, file_count (default version:desc: newest first)")
    s.add_argument("--limit", type=int, default=50, help="results per page (default 50)")
    s.add_argument("--page", type=int, default=1, help="page number, from 1")
    s.add_argument("--json", action="store_true",
                   help="{total, results: [{bundle_fqid, dataset_id, version, document}]}")
    s.set_defaults(func=_search)

    m = sub.add_parser("meta", help="store-side metadata of datasets and bundle versions")
    msub = m.add_subparsers(dest="meta_command", metavar="ACTION", required=True)
    ms = msub.add_parser("set", help="add a metadata record (versioned, with a meta.updated event)",
                         description="key=value sets a string, key:=JSON any JSON value (year:=2026), "
                         "--unset KEY removes a key. Without @VERSION the record applies to every version "
                         "of the dataset. Searches see it as meta.<key>.")
    ms.add_argument("store", type=Path)
    ms.add_argument("bundle", metavar="ID[@VERSION]", help="dataset id or ~alias, optionally @version")
    ms.add_argument("values", nargs="*", metavar="KEY=VALUE")
    ms.add_argument("--unset", action="append", default=[], metavar="KEY", help="remove KEY (repeatable)")
    ms.add_argument("--json", action="store_true", help="the record written, as JSON")
    ms.set_defaults(func=_meta_set)
    mg = msub.add_parser("show", help="the metadata of a bundle version and the records behind it")
    mg.add_argument("store", type=Path)
    mg.add_argument("bundle", metavar="ID[@VERSION]")
    mg.add_argument("--json", action="store_true")
    mg.set_defaults(func=_meta_show)


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise DssError(f"{option} {value} must be 1 or more")
    return value


def _index(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    with SqliteIndex(store.path) as index:
        report = index.rebuild() if args.rebuild else index.catch_up()
        stats = index.stats()
    if args.json:
        print(json.dumps(report.to_json() | {"index": stats}, indent=1))
        return 0
    if report.rebuilt_because:
        print(f"rebuilt the index: {report.rebuilt_because}")
    what = "rebuilt" if args.rebuild else f"{report.events} new events applied"
    print(f"{what}: {report.documents} documents written, {report.removed} removed; the index "
          f"holds {stats['documents']} documents ({stats['bytes']} bytes)")
    for p in report.problems:
        print(f"indexed without content: {p.path} ({p.reason})")
    return 0


def _search(args: argparse.Namespace) -> int:
    query = query_language.parse(args.query)
    sort = query_language.parse_sort(args.sort)
    limit, page = _positive(args.limit, "--limit"), _positive(args.page, "--page")
    store = ria.open_store(args.store.absolute())
    with SqliteIndex(store.path) as index:
        index.catch_up()
        res = index.search(query, sort=sort, limit=limit, offset=(page - 1) * limit,
                           with_docs=args.json)
    if args.json:
        out: dict[str, Any] = {"total": res.total, "page": page, "results": [
            {"bundle_fqid": h.bundle_fqid, "dataset_id": h.dataset_id, "version": h.version,
             "document": h.doc} for h in res.hits]}
        print(json.dumps(out, indent=1, ensure_ascii=False))
        return 0
    for h in res.hits:
        print(f"{h.dataset_id}\t{h.version}")
    shown = (page - 1) * limit + len(res.hits)
    if res.total > shown:
        print(f"({res.total} matches; {shown} shown: --page {page + 1} for more)")
    return 0


def _bundle_arg(store: ria.Store, text: str) -> tuple[str, str | None]:
    name, _, version = text.partition("@")
    dsid = named_dataset(store, name)
    if version:
        bundles.parse_version(version)
    return dsid, version or None


def _meta_set(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    dsid, version = _bundle_arg(store, args.bundle)
    values, unset = meta_records.parse_assignments(args.values, args.unset)
    known = bundle_store.versions(store.path, dsid)
    if version is not None and version not in known:
        raise DssError(f"no bundle version {dsid}@{version} (see `dss bundles list {store.path} "
                       f"--dataset {dsid}`)")
    if not known:
        raise DssError(f"dataset {dsid} has no bundle versions in {store.path}; push to it first")
    rec, event = meta_records.add(store.path, dsid, version, values, unset, who=getpass.getuser())
    problems = []
    try:
        if publish(store.path, event, []):
            outbox.spawn_deliverer(store.path)
    except (DssError, OSError) as e:
        problems.append(f"event {event.event_id}: {one_line(e)}")
    if read_config(store.path).mirrors:
        problems += sync(open_store_replicas(store.path), [dsid], git_only=True).failed
    if args.json:
        print(json.dumps(rec.to_json(), indent=1))
    else:
        print(f"{dsid}{'@' + version if version else ''}: {event.reason} (event {event.event_id})")
    for p in problems:
        print(f"dss: warning: {p}; run `dss sync {store.path}` to finish", file=sys.stderr)
    return 0


def _meta_show(args: argparse.Namespace) -> int:
    store = ria.open_store(args.store.absolute())
    dsid, version = _bundle_arg(store, args.bundle)
    version = version or bundle_store.load(store.path, dsid).head.version
    recs = meta_records.records(store.path, dsid)
    merged = meta_records.merged(recs, version)
    if args.json:
        print(json.dumps({"dataset_id": dsid, "version": version, "meta": merged,
                          "records": [r.to_json() for r in recs if r.applies_to(version)]}, indent=1))
        return 0
    for k, v in merged.items():
        print(f"{k}\t{json.dumps(v, ensure_ascii=False)}")
    return 0

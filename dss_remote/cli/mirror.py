"""`dss mirror add|remove|list|quorum STORE ...`: the store's S3/GCS mirrors and its write quorum."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ria_store import store as ria

from ..admin.store import add_mirror, mirror_from_args, remove_mirror, set_quorum
from ..config.store_config import read_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("mirror", help="add, remove or list the store's mirrors",
                       description="Mirrors live in the store's dss/config.json (url, endpoint, "
                       "region, storage class; never credentials), so every clone finds them.")
    msub = p.add_subparsers(dest="mirror_command", metavar="ACTION", required=True)
    a = msub.add_parser("add", help="add a mirror (checked by writing the store's top files to it)")
    a.add_argument("store", type=Path)
    a.add_argument("url", help="s3://bucket/prefix, gs://bucket/prefix, sftp://[user@]host[:port]/path, "
                   "file:///path, or http(s)://host/path (read-only)")
    a.add_argument("--name", help="short name (default: <scheme>-<bucket>)")
    a.add_argument("--endpoint-url", help="endpoint of an S3-compatible service or GCS emulator")
    a.add_argument("--region")
    a.add_argument("--storage-class")
    a.add_argument("--read-only", action="store_true",
                   help="only read from this mirror (implied for http(s)://): never written, not in "
                   "the write quorum; something else keeps it up to date")
    a.set_defaults(func=_add)
    r = msub.add_parser("remove", help="forget a mirror (its bucket is left as it is)")
    r.add_argument("store", type=Path)
    r.add_argument("mirror", help="name or url")
    r.set_defaults(func=_remove)
    ls = msub.add_parser("list", help="list the mirrors")
    ls.add_argument("store", type=Path)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    q = msub.add_parser("quorum", help='set write_quorum: "all" or a number of replicas')
    q.add_argument("store", type=Path)
    q.add_argument("value")
    q.set_defaults(func=_quorum)


def _add(args: argparse.Namespace) -> int:
    m = mirror_from_args(args.url, args.name, args.endpoint_url, args.region, args.storage_class,
                         read_only=args.read_only)
    add_mirror(args.store.absolute(), m)
    if m.writable:
        print(f"added mirror {m.name}: {m.url} (run `dss sync {args.store}` to copy what the store holds)")
    else:
        print(f"added read-only mirror {m.name}: {m.url} (read after the store; dss never writes it)")
    return 0


def _remove(args: argparse.Namespace) -> int:
    remove_mirror(args.store.absolute(), args.mirror)
    print(f"removed mirror {args.mirror} (its objects were left in place)")
    return 0


def _list(args: argparse.Namespace) -> int:
    cfg = read_config(ria.open_store(args.store.absolute()).path)
    if args.json:
        print(json.dumps({"write_quorum": cfg.write_quorum,
                          "mirrors": [m.to_json() for m in cfg.mirrors]}, indent=2))
        return 0
    for m in cfg.mirrors:
        extra = " ".join(f"{k}={v}" for k, v in m.to_json().items() if k not in ("name", "url", "read_only"))
        extra += "" if m.writable else (" " if extra else "") + "read-only"
        print(f"{m.name}\t{m.url}" + (f"\t{extra}" if extra else ""))
    print(f"write_quorum: {cfg.write_quorum} of {cfg.writable_replicas} writable replicas")
    return 0


def _quorum(args: argparse.Namespace) -> int:
    cfg = set_quorum(args.store.absolute(), args.value)
    print(f"write_quorum: {cfg.write_quorum} of {cfg.writable_replicas} writable replicas")
    return 0

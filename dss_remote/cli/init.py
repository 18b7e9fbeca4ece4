"""`dss init STORE [--mirror URL ...] [--group GROUP]`: create an empty RIA store (or adopt one
DataLad created), optionally shared by a Unix group."""

from __future__ import annotations

import argparse
from pathlib import Path

from ria_store import sharing

from ..admin.sharing import safe_directory_hint
from ..admin.store import init_store, mirror_from_args, set_quorum
from ..config import paths


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", help="create an empty RIA store",
                       description="Create an empty RIA store at STORE (ria-layout-version 1, "
                       "error_logs/, alias/, dss/config.json). Idempotent; adopts a store DataLad "
                       "created; refuses a directory that holds anything else. Each --mirror is "
                       "checked by writing the store's top-level files to it.")
    p.add_argument("store", type=Path, help="directory of the store (created if missing)")
    p.add_argument("--mirror", action="append", default=[], metavar="URL",
                   help="s3://bucket/prefix or gs://bucket/prefix to mirror the store to (repeatable)")
    p.add_argument("--endpoint-url", help="S3 endpoint for the s3:// mirrors (S3-compatible services), "
                   "kept in the store's config; without it, each machine's AWS_ENDPOINT_URL_S3 or "
                   "AWS_ENDPOINT_URL applies")
    p.add_argument("--gcs-endpoint-url", help="GCS JSON API endpoint for the gs:// mirrors, kept in the "
                   "store's config; without it, each machine's STORAGE_EMULATOR_HOST applies (an "
                   "emulator, no credentials)")
    p.add_argument("--region", help="region of the s3:// mirrors")
    p.add_argument("--storage-class", help="storage class for objects on the mirrors")
    p.add_argument("--write-quorum", help='"all" (default) or how many replicas must take each write')
    p.add_argument("--group", help="share the store with this Unix group (name or gid): setgid, "
                   "group-writable directories, core.sharedRepository=group in every bare repo, "
                   "subscriptions readable by the group; a store that holds datasets already is "
                   "shared with `dss adopt --group`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root: Path = args.store.absolute()
    mirrors = [mirror_from_args(
        url, endpoint_url=args.endpoint_url if url.startswith("s3:") else
        args.gcs_endpoint_url if url.startswith("gs:") else None,
        region=args.region if url.startswith("s3:") else None,
        storage_class=args.storage_class) for url in args.mirror]
    status = init_store(root, mirrors, args.group)
    if args.write_quorum:
        set_quorum(root, args.write_quorum)
    if status == "created":
        print(f"created store {root} (use it as ria+file://{root})")
    elif status == "adopted":
        print(f"adopted existing RIA store {root}: added {paths.CONFIG}")
    else:
        print(f"store {root} already exists; nothing to do" if not mirrors else f"store {root} exists")
    for m in mirrors:
        print(f"mirror {m.name}: {m.url}")
    gid = sharing.shared_gid(root)
    if gid is not None:
        print(f"shared by group {sharing.group_name(gid)}; for git to work in repositories other "
              f"members own, on every machine: {safe_directory_hint(root)}")
    return 0

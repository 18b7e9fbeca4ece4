"""`dss checkout STORE ID[@VERSION] DEST`: a bundle version copied to DEST/bundles/<uuid>.<version>/."""

from __future__ import annotations

import argparse
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import DssError

from ..service import checkout as co
from .common import named_dataset, progress


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "checkout", help="copy a bundle version to a bucket or directory",
        description="Copies each file of the bundle version to DEST/bundles/<uuid>.<version>/<name>, "
        "server-side where a mirror is in DEST's service; files already there (same size and "
        "content) are kept, so running it again copies only what is missing. DEST: s3://BUCKET[/PREFIX], "
        "gs://BUCKET[/PREFIX] (the environment's credentials and endpoint) or a directory.")
    p.add_argument("store", type=Path, help="directory of the store")
    p.add_argument("bundle", nargs="?", metavar="ID[@VERSION]",
                   help="dataset id or ~alias, and a version (default: the newest live one)")
    p.add_argument("dest", nargs="?", metavar="DEST",
                   help="s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX] or a directory")
    p.add_argument("--replica", metavar="NAME", help="copy from this replica first (default: the store)")
    p.add_argument("--run-job", metavar="JOB", help=argparse.SUPPRESS)  # the worker `dss serve` starts
    p.set_defaults(func=_checkout)


def _checkout(args: argparse.Namespace) -> int:
    store_root = args.store.absolute()
    if args.run_job:
        job = co.run_job(store_root, args.run_job)
        return 0 if job is None or job.status != co.FAILED else 1
    if not args.bundle or not args.dest:
        raise DssError("give the bundle and the destination: dss checkout STORE ID[@VERSION] DEST")
    store = ria.open_store(store_root)
    text, _, version = args.bundle.partition("@")
    dsid = named_dataset(store, text)
    version = co.live_version(store.path, dsid, version or None)
    dest_text = args.dest if "://" in args.dest else str(Path(args.dest).absolute())
    dest = co.store_destination(store.path, dest_text, checkout_dirs=["/"])
    dest.check()
    with progress(f"checkout {dsid[:8]}") as tick:
        done = [0]

        def update(counts: co.Counts) -> None:
            n = counts.copied + counts.present
            tick(n - done[0])
            done[0] = n

        counts = co.checkout(store.path, dsid, version, dest, replica=args.replica, progress=update)
    print(f"{dest.location(f'bundles/{dsid}.{version}')}: {counts.copied} copied "
          f"({counts.bytes_copied} bytes), {counts.present} already there, of {counts.files} files")
    return 0

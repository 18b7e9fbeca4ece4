"""`dss create-sibling`: publish a dataset to a store through the dss special remote."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..admin.sharing import safe_directory_hint
from ..admin.sibling import create_sibling
from ..admin.store import adopt_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "create-sibling", help="make a dataset publishable to a store",
        description="Create the dataset's directory in the store (bare git repo, annex/objects), "
        "add git remote NAME and the dss special remote NAME-storage (autoenable) with a publish "
        "dependency, so that `datalad push --to NAME` publishes history and content. Idempotent.")
    p.add_argument("-d", "--dataset", type=Path, default=Path("."), help="the dataset (default: .)")
    p.add_argument("--name", "-s", required=True, help="name of the git remote (e.g. store)")
    p.add_argument("url", help="the store, e.g. ria+file:///data/store")
    p.add_argument("--alias", help="also reachable as <url>#~ALIAS")
    p.add_argument("--storage-name", help="name of the special remote (default: NAME-storage)")
    p.add_argument("--shared", help="passed to `git init --bare --shared` (default: group in a store "
                   "shared by a group, else git's default)")
    p.set_defaults(func=run)
    a = sub.add_parser(
        "adopt", help="install the dss post-update hook in every dataset of a store",
        description="For datasets DataLad created (`datalad create-sibling-ria`): install the hook that "
        "records bundle versions, events and webhook deliveries on every push and mirrors the git side. "
        "An existing post-update hook (e.g. DataLad's `git update-server-info`) keeps running first. "
        "With --group, or in a store a group shares already, first share the store with the group: "
        "every path given to it (setgid, group-writable directories; subscriptions 0640), and "
        "core.sharedRepository=group in every bare repo. Idempotent.")
    a.add_argument("store", type=Path, help="directory of the store")
    a.add_argument("--group", help="share the store with this Unix group (name or gid); run as root, "
                   "or as a member of the group who owns every path")
    a.set_defaults(func=_adopt)


def run(args: argparse.Namespace) -> int:
    s = create_sibling(args.dataset, args.name, args.url, alias=args.alias,
                       storage_name=args.storage_name, shared=args.shared)
    print(f"dataset {s.dataset_id}: git remote {s.git_remote!r} -> {s.dataset_dir}")
    print(f"content remote {s.storage_remote!r} (dss, uuid {s.storage_uuid}); "
          f"publish with: datalad push -d {args.dataset} --to {s.git_remote}")
    if s.group is not None:
        print(f"shared by group {s.group}; other members need git's safe.directory for "
              f"{s.dataset_dir}: git config --global --add safe.directory {s.dataset_dir}")
    return 0


def _adopt(args: argparse.Namespace) -> int:
    root = args.store.absolute()
    done = adopt_store(root, args.group)
    if done.shared is not None:
        print(f"shared by group {done.shared.group} ({done.shared.changed} changes); for git to work "
              f"in repositories other members own, on every machine: {safe_directory_hint(root)}")
    for dsid, status in done.hooks:
        print(f"{dsid}\thook {status}")
    return 0

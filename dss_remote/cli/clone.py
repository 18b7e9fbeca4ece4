"""`dss clone` and `dss verify-remote`: clone a store's dataset so that it can push back."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..admin.clone import Verification, clone, verify_remotes


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser(
        "clone", help="datalad clone a dataset from a store, ready to push back",
        description="Run `datalad clone SOURCE [PATH]`, then verify (`git annex verifyremote`) the "
        "dss or ora special remote that points at the very store and dataset SOURCE names, so that "
        "git-annex lets the clone send content and pushes (`datalad push --to origin`). A remote "
        "pointing anywhere else is left unverified and reported (exit 1; the clone stays).")
    c.add_argument("source", help="ria+file:///store#ID, ria+ssh://host/store#~ALIAS, "
                   "ria+http(s)://…#ID[@VERSION], as `datalad clone` takes it")
    c.add_argument("path", nargs="?", type=Path, help="where to clone to (default: DataLad's choice)")
    c.set_defaults(func=_clone)
    v = sub.add_parser(
        "verify-remote", help="verify a clone's store remote so that it can push back",
        description="For a clone made with plain `datalad clone` (or `git clone`): verify "
        "(`git annex verifyremote`) its dss or ora special remotes that point at the store you "
        "name with --store, or else at the store `origin` came from, and at the clone's dataset. "
        "A remote named with --remote that points anywhere else is refused, nothing verified.")
    v.add_argument("-d", "--dataset", type=Path, default=Path("."), help="the clone (default: .)")
    v.add_argument("--store", metavar="URL", help="the store you expect, e.g. ria+file:///data/store "
                   "(default: the store of remote origin)")
    v.add_argument("--remote", metavar="NAME", help="only this special remote")
    v.set_defaults(func=_verify)


def _clone(args: argparse.Namespace) -> int:
    c = clone(args.source, args.path)
    print(f"cloned {args.source} into {c.path} (dataset {c.dataset_id})")
    _report(c.verification)
    print(f"push changes back with: datalad push -d {c.path} --to origin")
    return 0


def _verify(args: argparse.Namespace) -> int:
    _report(verify_remotes(args.dataset, args.store, args.remote))
    return 0


def _report(v: Verification) -> None:
    for name in v.verified:
        print(f"verified {name}: it points at {v.expected}")
    for name in v.unchanged:
        print(f"{name}: verified before, unchanged since")
    for name in v.not_needed:
        print(f"{name}: this git-annex has no verifyremote, so there is nothing to verify")
    if not (v.verified or v.unchanged or v.not_needed or v.refused):
        print("nothing to verify: no dss or ora special remote in this clone")
    for name in v.publish_depends:
        print(f"`datalad push --to origin` now sends content through {name}")
    error = v.blocked()
    if error is not None:
        raise error

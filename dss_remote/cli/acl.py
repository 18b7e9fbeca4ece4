"""`dss acl set|show|default`: who may read and write which dataset through `dss serve`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ria_store import store as ria

from ..access import acl
from ..access.acl import Rule

_ENTRIES = ("`public` (anyone, also anonymous; read only), `authenticated` (anyone signed in), "
            "user:NAME or a group; comma-separated; '' (empty) for nobody")


def _list(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    a = sub.add_parser("acl", help="who may read and write which dataset through `dss serve`")
    asub = a.add_subparsers(dest="acl_command", metavar="ACTION", required=True)
    s = asub.add_parser("set", help="set a dataset's readers and/or writers",
                        description="Set who may read and/or write one dataset; what is set replaces "
                        "the store default for it. Writers may also read; admins may do everything.")
    s.add_argument("store", type=Path, help="directory of the store")
    s.add_argument("dataset", metavar="ID|~alias", help="the dataset, by id or ~alias")
    s.add_argument("--read", type=_list, metavar="ENTRY,...", help=f"readers: {_ENTRIES}")
    s.add_argument("--write", type=_list, metavar="ENTRY,...",
                   help="writers: `authenticated`, user:NAME or a group; comma-separated")
    s.set_defaults(func=_set, usage_error=s.error)
    sh = asub.add_parser("show", help="show the store's rules, or one dataset's effective rule")
    sh.add_argument("store", type=Path, help="directory of the store")
    sh.add_argument("dataset", nargs="?", metavar="ID|~alias")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=_show)
    d = asub.add_parser("default", help="set the store default, its admin groups and who may create datasets",
                        description="Change the rule of every dataset without its own, the admin "
                        "groups (may do everything) and the groups that may create datasets. With no "
                        "option, show them. A new store lets nobody in until an admin group is set.")
    d.add_argument("store", type=Path, help="directory of the store")
    d.add_argument("--read", type=_list, metavar="ENTRY,...", help=f"default readers: {_ENTRIES}")
    d.add_argument("--write", type=_list, metavar="ENTRY,...", help="default writers")
    d.add_argument("--admin", type=_list, metavar="GROUP,...", help="the admin groups")
    d.add_argument("--create", type=_list, metavar="GROUP,...", help="groups that may create datasets")
    d.set_defaults(func=_default)


def _rule_text(rule: Rule) -> str:
    return f"read={','.join(rule.read or ()) or '-'}\twrite={','.join(rule.write or ()) or '-'}"


def _set(args: argparse.Namespace) -> int:
    if args.read is None and args.write is None:
        args.usage_error("give --read and/or --write")
    root = ria.open_store(args.store.absolute()).path
    dsid, rule = acl.set_dataset(root, args.dataset, args.read, args.write)
    print(f"{dsid}\t{_rule_text(rule)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    rules = acl.load(root)
    if args.dataset is not None:
        dsid = acl.resolve_dataset(root, args.dataset)
        rule = rules.rule(dsid)
        if args.json:
            print(json.dumps({"dataset": dsid} | rule.to_json(), indent=2, sort_keys=True))
        else:
            print(f"{dsid}\t{_rule_text(rule)}")
        return 0
    if args.json:
        print(json.dumps(rules.to_json(), indent=2, sort_keys=True))
        return 0
    _print_store(rules)
    return 0


def _print_store(rules: acl.Acl) -> None:
    print(f"default\t{_rule_text(rules.default)}")
    print(f"admin\t{','.join(rules.admin) or '-'}")
    print(f"create\t{','.join(rules.create) or '-'}")
    for dsid in sorted(rules.datasets):
        print(f"{dsid}\t{_rule_text(rules.rule(dsid))}")


def _default(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    if all(v is None for v in (args.read, args.write, args.admin, args.create)):
        _print_store(acl.load(root))
        return 0
    _print_store(acl.set_default(root, args.read, args.write, args.admin, args.create))
    return 0

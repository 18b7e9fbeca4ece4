"""`dss token create|list|revoke`: the dss tokens `dss serve` accepts (as Bearer, or in ~/.netrc)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from ria_store import store as ria

from ..access import tokens
from ..access.durations import parse_duration


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = sub.add_parser("token", help="create, list or revoke the dss tokens `dss serve` accepts")
    tsub = t.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    c = tsub.add_parser("create", help="create a token; prints it alone on stdout",
                        description="Create a dss token for USER. The token is printed once, alone "
                        "on stdout (T=$(dss token create ...)); the store keeps only a hash of its "
                        "secret. Send it as `Authorization: Bearer TOKEN`, or for ria+http as the "
                        "password in ~/.netrc.")
    c.add_argument("store", type=Path, help="directory of the store")
    c.add_argument("--user", required=True, help="the user the token stands for (ACL entries user:NAME)")
    c.add_argument("--group", action="append", default=[], metavar="G",
                   help="a group the user is in (repeatable; ACL entries name groups)")
    c.add_argument("--expires", default="90d", metavar="DURATION",
                   help="lifetime: a number with s, m, h, d or w (e.g. 90d, 12h), or `never` (default 90d)")
    c.set_defaults(func=_create)
    ls = tsub.add_parser("list", help="list tokens (never their secrets)")
    ls.add_argument("store", type=Path, help="directory of the store")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    r = tsub.add_parser("revoke", help="revoke a token; every server refuses it from the next request on")
    r.add_argument("store", type=Path, help="directory of the store")
    r.add_argument("id", help="token id (see `dss token list`)")
    r.set_defaults(func=_revoke)


def _create(args: argparse.Namespace) -> int:
    expires = parse_duration(args.expires)  # the cheap check first: nothing is written in vain
    root = ria.open_store(args.store.absolute()).path
    token_id, text = tokens.create(root, args.user, args.group, expires)
    print(text)
    until = "never expires" if expires is None else f"expires in {args.expires}"
    print(f"created token {token_id} for {args.user} ({until}); it is shown only now", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    now = datetime.now(timezone.utc)
    found = tokens.list_tokens(root)
    if args.json:
        print(json.dumps([t.public_json(now) for t in found], indent=2, sort_keys=True))
        return 0
    for t in found:
        groups = ",".join(t.groups) or "-"
        print(f"{t.id}\t{t.user}\tgroups={groups}\tcreated={t.created}\texpires={t.expires or 'never'}"
              f"\t{t.status(now)}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    info = tokens.revoke(root, args.id)
    print(f"revoked token {info.id} of {info.user} (on {info.revoked})")
    return 0

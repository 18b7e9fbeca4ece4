"""`dss auth issuer add|list|remove`: the JWT issuers whose tokens `dss serve` trusts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ria_store import store as ria

from ..access import issuers


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    a = sub.add_parser("auth", help="trusted JWT issuers of `dss serve`")
    asub = a.add_subparsers(dest="auth_command", metavar="WHAT", required=True)
    i = asub.add_parser("issuer", help="add, list or remove trusted JWT issuers")
    isub = i.add_subparsers(dest="issuer_command", metavar="ACTION", required=True)
    add = isub.add_parser("add", help="trust the JWTs of an issuer (replaces an entry for the same issuer)",
                          description="Trust JWTs whose `iss` is ISSUER and `aud` is AUDIENCE, signed "
                          "(RS256 or ES256) by a key of the issuer's JWKS: fetched from --jwks-uri by "
                          "the server, or copied now from --jwks-file into the store.")
    add.add_argument("store", type=Path, help="directory of the store")
    add.add_argument("--issuer", required=True, help="the `iss` claim, e.g. https://login.example.org/")
    add.add_argument("--audience", required=True, help="the `aud` claim tokens must carry for this store")
    keys = add.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-uri", metavar="URL", help="where the issuer publishes its JWKS")
    keys.add_argument("--jwks-file", type=Path, metavar="FILE", help="a JWKS document to copy into the store")
    add.add_argument("--groups-claim", default="groups", metavar="C",
                     help="claim holding the user's groups, a string or a list (default: groups)")
    add.add_argument("--email-claim", default="email", metavar="C",
                     help="claim naming the user (default: email; `sub` when absent)")
    add.set_defaults(func=_add)
    ls = isub.add_parser("list", help="list trusted issuers")
    ls.add_argument("store", type=Path, help="directory of the store")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    rm = isub.add_parser("remove", help="stop trusting an issuer")
    rm.add_argument("store", type=Path, help="directory of the store")
    rm.add_argument("issuer", help="the issuer's `iss` (see `dss auth issuer list`)")
    rm.set_defaults(func=_remove)


def _add(args: argparse.Namespace) -> int:
    jwks = issuers.read_jwks_file(args.jwks_file) if args.jwks_file is not None else None
    iss = issuers.make_issuer(args.issuer, args.audience, jwks_uri=args.jwks_uri, jwks=jwks,
                              groups_claim=args.groups_claim, email_claim=args.email_claim)
    root = ria.open_store(args.store.absolute()).path
    new = issuers.add(root, iss)
    print(f"{'trusted' if new else 'updated'} issuer {iss.issuer} (audience {iss.audience})")
    return 0


def _list(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    found = issuers.load(root)
    if args.json:
        print(json.dumps([i.summary() for _, i in sorted(found.items())], indent=2, sort_keys=True))
        return 0
    for name, i in sorted(found.items()):
        keys = i.jwks_uri or f"jwks in store ({len((i.jwks or {}).get('keys', []))} keys)"
        print(f"{name}\taudience={i.audience}\t{keys}\tgroups_claim={i.groups_claim}"
              f"\temail_claim={i.email_claim}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    issuers.remove(root, args.issuer)
    print(f"removed issuer {args.issuer}")
    return 0

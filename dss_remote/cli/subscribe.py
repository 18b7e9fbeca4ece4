"""`dss subscribe` and `dss subscriptions list|delete`: who receives signed webhooks of store events."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ria_store import store as ria
from ria_store.urls import redact_url

from ..config import paths
from ..webhooks import outbox, subscriptions
from ..webhooks.subscriptions import Subscription


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("subscribe", help="POST a signed webhook to URL for every new bundle version",
                       description="Add a subscription: every event of the store (a new bundle "
                       "version) that passes the filters is POSTed to URL as JSON, signed with "
                       "HMAC-SHA256 under the secret in the X-DSS-Signature-256 header, and retried "
                       "with backoff until the receiver answers 2xx. The secret is kept in "
                       "dss/subscriptions/<id>.json (mode 0600) and never printed.")
    s.add_argument("store", type=Path, help="directory of the store")
    s.add_argument("--url", required=True, help="http(s) URL of the receiver")
    s.add_argument("--secret-file", required=True, type=Path, metavar="FILE",
                   help="file holding the shared secret (one line; e.g. `openssl rand -hex 32 > FILE`)")
    s.add_argument("--dataset", metavar="ID", help="only events of this dataset (its DataLad id)")
    s.add_argument("--path", metavar="GLOB",
                   help="only versions that added, changed or removed a path matching GLOB ('*' crosses '/')")
    q = s.add_mutually_exclusive_group()
    q.add_argument("--query", metavar="QUERY",
                   help="only versions whose bundle document matches QUERY, in `dss search`'s "
                   "language (e.g. 'meta.species:mouse'; docs/search.md)")
    q.add_argument("--jmespath", metavar="EXPR",
                   help="only versions for which the JMESPath expression EXPR over the bundle "
                   "document is truthy, as the DSS's jmespath_query (e.g. "
                   "\"files.meta_sample_json.species == 'mouse'\")")
    s.add_argument("--json", action="store_true", help="print the subscription (without its secret) as JSON")
    s.set_defaults(func=_subscribe)

    p = sub.add_parser("subscriptions", help="list or delete webhook subscriptions")
    psub = p.add_subparsers(dest="subscriptions_command", metavar="ACTION", required=True)
    ls = psub.add_parser("list", help="list subscriptions (never their secrets)")
    ls.add_argument("store", type=Path, help="directory of the store")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    d = psub.add_parser("delete", help="delete a subscription; its pending deliveries become dead letters",
                        description="Delete a subscription. Deliveries still pending for it are moved "
                        "to dss/outbox-dead/ with the reason (listed by `dss events --failed`), "
                        "never dropped silently.")
    d.add_argument("store", type=Path, help="directory of the store")
    d.add_argument("id", help="subscription id (see `dss subscriptions list`)")
    d.set_defaults(func=_delete)


def _describe(sub: Subscription) -> str:
    filters = [f"dataset={sub.dataset}"] if sub.dataset else []
    filters += [f"path={sub.path}"] if sub.path else []
    filters += [f"query={sub.query}"] if sub.query is not None else []
    filters += [f"jmespath={sub.jmespath_query}"] if sub.jmespath_query is not None else []
    filters += ([f"es_query={json.dumps(sub.es_query, sort_keys=True)}"] if sub.es_query is not None
                else [])
    return f"{sub.id}\t{redact_url(sub.url)}" + "".join(f"\t{f}" for f in filters)


def _subscribe(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    subscriptions.check_url(args.url)  # the cheap checks first, so nothing is read or written in vain
    subscriptions.check_queries(args.query, args.jmespath)
    secret = subscriptions.read_secret(args.secret_file)
    sub = subscriptions.create(root, args.url, secret, args.dataset, args.path, query=args.query,
                               jmespath_query=args.jmespath)
    if args.json:
        print(json.dumps(sub.public_json(), indent=2, sort_keys=True))
    else:
        print(f"subscribed {_describe(sub)}")
        print(f"the secret is kept in {subscriptions.subscription_path(root, sub.id)} (mode 0600)")
    return 0


def _list(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    subs = subscriptions.load_all(root)
    if args.json:
        rows = [s.public_json() | {"pending": outbox.pending_count(root, s.id)} for s in subs]
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    for s in subs:
        print(f"{_describe(s)}\tcreated={s.created}\tpending={outbox.pending_count(root, s.id)}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    pending = outbox.pending_count(root, args.id) if subscriptions.is_subscription_id(args.id) else 0
    subscriptions.delete(root, args.id)
    print(f"deleted subscription {args.id}")
    if pending:
        moved = outbox.dead_letter_orphans(root)
        if moved is None:
            print(f"the running `dss deliver` moves its {pending} pending deliveries to "
                  f"{paths.OUTBOX_DEAD}/ (see `dss events {args.store} --failed`)")
        else:
            print(f"moved {moved} pending deliveries to {paths.OUTBOX_DEAD}/ "
                  f"(see `dss events {args.store} --failed`)")
    return 0

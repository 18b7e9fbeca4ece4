"""`dss events STORE [--since ID|TIME] [--follow] [--json]`: replay the store's event journal."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ria_store import store as ria

from ..history import events
from ..webhooks import outbox

#: how often --follow looks for new events (the journal may be on NFS: no inotify)
FOLLOW_INTERVAL = 1.0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("events", help="replay the store's events (bundle.created, ...)",
                       description="Events are files under dss/events/, one per event, in time order.")
    p.add_argument("store", type=Path)
    p.add_argument("--since", metavar="EVENT_ID|TIME",
                   help="only events after this event id, or at/after this time (ISO 8601, UTC default)")
    p.add_argument("--follow", "-f", action="store_true", help="keep waiting for new events")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--failed", action="store_true",
                   help="instead: deliveries given up on (dead) or unreadable (quarantined); exit 1 if any")
    p.set_defaults(func=_events)


def _print(e: events.Event, as_json: bool) -> None:
    if as_json:
        print(json.dumps(e.to_json(), sort_keys=True))
    else:
        print(f"{e.event_id}\t{e.type}\t{e.dataset_id}@{e.version}\t{e.ref}\t{e.commit[:12]}")
    sys.stdout.flush()


def _failed(root: Path, as_json: bool) -> int:
    found = list(outbox.iter_failed(root))
    for f in found:
        if as_json:
            print(json.dumps(f.to_json()))
        else:
            print(f"{f.state}\t{f.event_id}\t{f.subscription_id}\t{f.attempts} attempts\t{f.reason}"
                  + (f" (last error: {f.last_error})" if f.last_error else ""))
    if found and not as_json:
        print("dss: resend dead ones with `dss deliver STORE --retry-dead`; repair quarantined files and "
              "move them back to dss/outbox/ (or delete them)", file=sys.stderr)
    return 1 if found else 0


def _events(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    if args.failed:
        return _failed(root, args.json)
    since, bad = args.since, 0
    while True:
        for e, path in events.iter_events(root, since):
            since = path.name[:-5]
            if e is None:
                bad += 1
                print(f"dss: warning: corrupt event file {path} (skipped)", file=sys.stderr)
                continue
            _print(e, args.json)
        if not args.follow:
            return 1 if bad else 0
        time.sleep(FOLLOW_INTERVAL)

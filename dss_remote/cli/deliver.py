"""`dss deliver STORE`: send the store's pending webhooks (started by the push hook, or from cron)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from ria_store import store as ria
from ria_store.errors import ConfigError

from ..config import delivery_policy
from ..config.store_config import read_config
from ..webhooks.deliverer import DeliveryReport, deliver


def _schedule(text: str) -> tuple[float, ...]:
    try:
        return delivery_policy.parse_schedule_arg(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _seconds(text: str) -> float:
    try:
        return delivery_policy.check_give_up_after(float(text), "--give-up-after")
    except (ValueError, ConfigError) as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (>= 0)") from e


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = sub.add_parser("deliver", help="send pending webhooks, retrying with backoff",
                       description="Deliver the outbox (dss/outbox/): POST each due entry to its "
                       "subscriber, remove it on a 2xx answer, otherwise retry it on the store's "
                       "schedule (dss/config.json `delivery`; default 0, 60, 600, 3600, 21600 s, then "
                       "every 6 h for 7 days) and then move it to dss/outbox-dead/. Only one deliverer "
                       "runs per store; a second one exits at once. Without --once it runs until the "
                       "outbox is empty, sleeping until the next entry is due.")
    d.add_argument("store", type=Path, help="directory of the store")
    d.add_argument("--once", action="store_true",
                   help="attempt each due entry once, then exit (for cron)")
    d.add_argument("--retry-dead", action="store_true",
                   help="first move dead letters back to the outbox with their attempts reset")
    d.add_argument("--schedule", type=_schedule, metavar="S,S,...",
                   help="waits in seconds before each attempt, overriding the store config for this run")
    d.add_argument("--give-up-after", type=_seconds, metavar="SECONDS",
                   help="give up this long after the first attempt, once the schedule has run out")
    d.add_argument("--json", action="store_true", help="print what was done as JSON")
    d.set_defaults(func=_deliver)


def _log_progress() -> None:
    """Each delivery at info, with times: the output of a background run is its log file."""
    ours = logging.getLogger("dss_remote")
    if ours.getEffectiveLevel() > logging.INFO:
        ours.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(fmt)


def _summary(report: DeliveryReport) -> str:
    parts = [f"delivered {report.delivered}", f"failed attempts {report.failed} (retried later)",
             f"dead {len(report.dead)}", f"quarantined {len(report.quarantined)}",
             f"pending {report.pending}"]
    if report.requeued:
        parts.insert(0, f"requeued {report.requeued} dead letters")
    return ", ".join(parts)


def _deliver(args: argparse.Namespace) -> int:
    root = ria.open_store(args.store.absolute()).path
    _log_progress()
    policy = read_config(root).delivery
    if args.schedule is not None:
        policy = dataclasses.replace(policy, schedule=args.schedule)
    if args.give_up_after is not None:
        policy = dataclasses.replace(policy, give_up_after=args.give_up_after)
    delivery_policy.check_policy(policy, "--schedule/--give-up-after with the store's delivery config")
    report = deliver(root, policy, once=args.once, retry_dead=args.retry_dead)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    elif report.busy is not None:
        print(f"another `dss deliver` is running ({report.busy}); it delivers the new entries too")
    else:
        print(_summary(report))
        for failed in report.dead + report.quarantined:
            print(f"{failed.state}: event {failed.event_id} for subscription {failed.subscription_id}: "
                  f"{failed.reason} ({failed.path})")
    return 1 if report.dead or report.quarantined else 0

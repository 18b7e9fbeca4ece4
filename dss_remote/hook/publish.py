"""Publishing an event: queue its webhook deliveries, then write it to the journal."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..history import events
from ..webhooks import outbox


def publish(root: Path, event: events.Event, changed_paths: Sequence[str]) -> int:
    """Queue `event` for every matching subscriber (filters and queries: `outbox.enqueue`), then
    append it to the journal; return how many subscribers will get it.

    In this order, a missing event file means "maybe not queued": `dss sync` then publishes it
    again (a delivery may repeat; receivers deduplicate on X-DSS-Delivery, which is stable), and a
    journal write that fails after queueing loses nothing either.
    """
    queued = outbox.enqueue(root, event, changed_paths)
    events.append(root, event)
    return queued

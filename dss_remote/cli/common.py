"""What several subcommands share: the STORE [--dataset ID] arguments and a progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from tqdm import tqdm

from ria_store import store as ria
from ria_store.layout import check_dataset_id

from ..replication.store_replicas import StoreReplicas, open_store_replicas


def store_and_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path, help="directory of the store")
    p.add_argument("--dataset", action="append", metavar="ID", help="only this dataset (repeatable)")


def open_selected(args: argparse.Namespace) -> tuple[StoreReplicas, list[str]]:
    """The store's replicas and the datasets `--dataset` names (default: every dataset); the
    caller closes the replicas (`with sr:`), which shuts down their writer threads."""
    store = ria.open_store(args.store.absolute())
    if args.dataset:
        datasets = [check_dataset_id(d) for d in args.dataset]
        for d in datasets:
            ria.open_dataset(store, d)  # a typo must not read as "all clean"
    else:
        datasets = list(ria.iter_datasets(store))
    return open_store_replicas(store.path), datasets


def leftover_age_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--leftover-age", type=_hours, metavar="HOURS",
                   help="a temp file, unfinished upload or empty directory of an interrupted write "
                   "last written longer ago than this is a leftover to remove; a fresher one may "
                   "belong to a running writer (default: the store's leftover_age_hours, else 6)")


def leftover_age(args: argparse.Namespace, sr: StoreReplicas) -> timedelta:
    """The safe age `--leftover-age` names, else the store's config."""
    hours: float | None = args.leftover_age
    return sr.config.leftover_age if hours is None else timedelta(hours=hours)


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not 0 <= hours < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours, 0 or more (e.g. 6 or 0.5)")
    return hours


@contextmanager
def progress(desc: str) -> Iterator[Callable[[int], None]]:
    """tqdm on a TTY, nothing in pipes."""
    bar = tqdm(desc=desc, unit=" obj", disable=not sys.stderr.isatty(), leave=False)

    def tick(n: int) -> None:
        bar.update(n)

    try:
        yield tick
    finally:
        bar.close()


@contextmanager
def byte_progress(desc: str) -> Iterator[Callable[[int], None]]:
    """tqdm counting bytes on a TTY, nothing in pipes."""
    bar = tqdm(desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
               disable=not sys.stderr.isatty(), leave=False)

    def tick(n: int) -> None:
        bar.update(n)

    try:
        yield tick
    finally:
        bar.close()

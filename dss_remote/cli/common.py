"""What several subcommands share: the STORE [--dataset ID] arguments and a progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from ria_store import store as ria
from ria_store.errors import DssError, one_line
from ria_store.layout import check_dataset_id

from ..access.durations import parse_duration
from ..replication.store_replicas import StoreReplicas, open_store_replicas

T = TypeVar("T")


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
def progress(desc: str, *, in_bytes: bool = False) -> Iterator[Callable[[int], None]]:
    """tqdm on a TTY, nothing in pipes; counting objects, or bytes with `in_bytes`."""
    bar = tqdm(desc=desc, unit="B" if in_bytes else " obj", unit_scale=in_bytes, unit_divisor=1024,
               disable=not sys.stderr.isatty(), leave=False)

    def tick(n: int) -> None:
        bar.update(n)

    try:
        yield tick
    finally:
        bar.close()


def named_dataset(store: ria.Store, text: str) -> str:
    """The dataset `ID` or `~alias` names; an error if it is not in the store (a typo must not
    read as "nothing to do")."""
    dsid = ria.resolve_alias(store, text[1:]) if text.startswith("~") else check_dataset_id(text)
    ria.open_dataset(store, dsid)
    return dsid


def age(text: str, option: str, examples: str) -> timedelta:
    """An age as `--min-age`/`--grace` take it: `0`/`0s`, or a lifetime like 12h or 30d."""
    if text in ("0", "0s"):
        return timedelta(0)
    try:
        span = parse_duration(text)
    except DssError:
        span = None
    if span is None:
        raise DssError(f"{option} {text!r} is not an age: give a number and a unit s, m, h, d or w "
                       f"(e.g. {examples})")
    return span


def each_dataset(dsids: list[str], work: Callable[[str], T]) -> tuple[list[T], list[str]]:
    """`work` on each dataset: the results, and a line per dataset it failed on. With one
    dataset its failure is the command's error, as it is."""
    results: list[T] = []
    failed: list[str] = []
    for dsid in dsids:
        try:
            results.append(work(dsid))
        except DssError as e:
            if len(dsids) == 1:
                raise
            failed.append(f"{dsid}: {one_line(e)}")
    return results, failed

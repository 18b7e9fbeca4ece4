"""What several subcommands share: the STORE [--dataset ID] arguments and a progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

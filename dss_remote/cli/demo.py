"""`dss demo`: the whole round trip on a local store, narrated."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..demo import demo_main


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="publish, clone and get a sample dataset on a local store",
                       description="Create a local RIA store, publish a sample DataLad dataset to "
                       "it through the dss special remote, clone it with `datalad clone`, get the "
                       "content back and verify it. Needs no cloud account.")
    p.add_argument("--dir", type=Path, help="work here (new or empty) and keep the result")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(func=lambda a: demo_main(a.dir, a.keep))

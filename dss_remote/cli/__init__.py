"""`dss`: the root parser; each subcommand group lives in its own module."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ria_store.errors import DssError, one_line

from .. import __version__
from . import (
    acl,
    auth,
    bundles,
    checksums,
    clone,
    dedup,
    deliver,
    demo,
    events,
    fsck,
    gc,
    init,
    mirror,
    pack,
    repair,
    search,
    serve,
    sibling,
    subscribe,
    sync,
    token,
)

logger = logging.getLogger(__name__)

_GROUPS = (init, sibling, clone, mirror, fsck, repair, sync, checksums, pack, gc, dedup, bundles, events,
           subscribe, deliver, demo, token, auth, acl, serve, search)
_GROUPS = (*_GROUPS, __import__(f"{__name__}.checkout", fromlist=["register"]))  # type: ignore[assignment]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dss", description="Admin commands for dss-remote RIA stores.")
    parser.add_argument("--version", action="version", version=f"dss-remote {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `dss`; exit 0 on success, 1 on an expected failure, 2 on a usage error."""
    _setup_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DssError as e:
        logger.debug("failed", exc_info=True)
        print(f"dss: error: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dss: interrupted", file=sys.stderr)
        return 130


def _setup_logging() -> None:
    level = os.environ.get("DSS_DEBUG", "")
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s",
                        level=logging.DEBUG if level == "2" else logging.WARNING)
    if level:
        for name in ("dss_remote", "ria_store"):
            logging.getLogger(name).setLevel(logging.DEBUG)

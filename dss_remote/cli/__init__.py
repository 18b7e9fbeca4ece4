"""`dss`: the root parser; each subcommand group lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ria_store.errors import DssError, one_line

from .. import __version__

logger = logging.getLogger(__name__)

#: the module (in this package) that registers each command. `dss COMMAND` imports only that one:
#: importing every command's code cost 0.3 s per call; `dss`, `dss --help` and an unknown command
#: import them all. tests/test_cli.py checks this table against what the modules register.
COMMANDS = {
    "init": "init", "adopt": "sibling", "create-sibling": "sibling", "clone": "clone",
    "verify-remote": "clone", "mirror": "mirror", "fsck": "fsck", "repair": "repair", "sync": "sync",
    "checksums": "checksums", "pack": "pack", "gc": "gc", "dedup": "dedup", "bundles": "bundles",
    "events": "events", "subscribe": "subscribe", "subscriptions": "subscribe", "deliver": "deliver",
    "demo": "demo", "token": "token", "auth": "auth", "acl": "acl", "serve": "serve",
    "index": "search", "meta": "search", "search": "search", "checkout": "checkout",
}


def _modules(argv: Sequence[str]) -> list[str]:
    """The command modules `dss ARGV` needs: the command's, or all (in the order help lists them)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in COMMANDS:
        return [COMMANDS[command]]
    return list(dict.fromkeys(COMMANDS.values()))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of `dss`; given the arguments, with only the command they name (None: all)."""
    parser = argparse.ArgumentParser(
        prog="dss", description="Admin commands for dss-remote RIA stores.")
    parser.add_argument("--version", action="version", version=f"dss-remote {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _modules([] if argv is None else argv):
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `dss`; exit 0 on success, 1 on an expected failure, 2 on a usage error."""
    _setup_logging()
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
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

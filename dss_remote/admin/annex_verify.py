"""git-annex's `verifyremote`, without a prompt: read the configuration it shows, confirm that one.

`git annex verifyremote NAME` prints the special remote's configuration (as the git-annex branch
holds it) and an ID that stands for exactly that configuration; `--safe ID` records it as verified
(`remote.NAME.annex-verified=verified` and `.git/annex/verified-remote.log`). Confirming by ID, not
by name, means that what is verified is what was checked, even if the branch changes in between.
A remote that `git annex init` autoenabled in a clone has `annex-verified=automatic` until then,
and git-annex refuses to send content or pushes anywhere while one is left so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ria_store.errors import DssError, one_line

from .tools import run_tool

logger = logging.getLogger(__name__)

AUTOENABLED_UNVERIFIED = "automatic"
_SHOWN = "configuration of the remote:"
_UNCHANGED = "no changes to the remote's configuration since it was last verified"
_SAFE_ID = re.compile(r"--safe\s+(\S+)\s*$", re.MULTILINE)

NothingPending = Literal["unchanged", "unsupported"]


@dataclass(frozen=True)
class SpecialRemote:
    """A special remote of a clone as its git config describes it."""

    name: str
    externaltype: str | None  # "dss", "ora", ... for type=external; None for other types
    verified: str | None  # remote.NAME.annex-verified: "automatic" (autoenabled, unverified), ...


@dataclass(frozen=True)
class Pending:
    """A configuration git-annex showed for verification, and the ID that confirms exactly it."""

    remote: str
    safe_id: str
    config: Mapping[str, str]


def special_remotes(repo: Path) -> list[SpecialRemote]:
    """The clone's special remotes (an annex-uuid and no git url), from one `git config` call."""
    res = run_tool("git", "-C", str(repo), "config", "-z", "--get-regexp", r"^remote\..*\.", check=False)
    items: dict[str, dict[str, str]] = {}
    for entry in res.stdout.split("\0"):
        key, _, value = entry.partition("\n")
        name, dot, item = key[len("remote."):].rpartition(".")
        if key.startswith("remote.") and dot:
            items.setdefault(name, {})[item] = value
    return [SpecialRemote(name, cfg.get("annex-externaltype"), cfg.get("annex-verified"))
            for name, cfg in sorted(items.items()) if "annex-uuid" in cfg and "url" not in cfg]


def pending(repo: Path, remote: str) -> Pending | NothingPending:
    """What `git annex verifyremote REMOTE` shows to verify, or why nothing is pending: "unchanged"
    (verified before, unchanged since) or "unsupported" (a git-annex from before verification)."""
    res = run_tool("git", "-C", str(repo), "annex", "verifyremote", remote, check=False)
    text = res.stdout + res.stderr
    if res.returncode != 0:
        if "Invalid argument" in text and "verifyremote" in text:
            logger.debug("this git-annex has no verifyremote: nothing to verify")
            return "unsupported"
        raise DssError(f"`git annex verifyremote {remote}` in {repo} failed: "
                       f"{one_line(text) or f'exit {res.returncode}'}")
    if _UNCHANGED in text:
        return "unchanged"
    lines = text.splitlines()
    shown = [i for i, line in enumerate(lines) if line.rstrip().endswith(_SHOWN)]
    safe = _SAFE_ID.findall(text)
    config = _parse_config(lines[shown[0] + 1]) if shown and shown[0] + 1 < len(lines) else None
    if config is None or len(safe) != 1:
        raise DssError(f"cannot read what `git annex verifyremote {remote}` showed in {repo} "
                       f"({one_line(text)[:300]!r}); check it yourself: run it there and follow "
                       "its instructions")
    return Pending(remote, safe[0], config)


def confirm(repo: Path, p: Pending) -> None:
    """Record the configuration `p` showed as verified (`git annex verifyremote NAME --safe ID`)."""
    res = run_tool("git", "-C", str(repo), "annex", "verifyremote", p.remote, "--safe", p.safe_id,
                   check=False)
    if res.returncode != 0:
        raise DssError(f"`git annex verifyremote {p.remote} --safe {p.safe_id}` in {repo} failed: "
                       f"{one_line(res.stderr or res.stdout)}; run `git annex verifyremote "
                       f"{p.remote}` there and follow its instructions")
    logger.info("verified %s in %s: %s", p.remote, repo, dict(p.config))


def _parse_config(line: str) -> dict[str, str] | None:
    """`\\tkey=value key=value ...` as git-annex shows a remote's configuration; None if a token
    is no `key=value` (a value with a space cannot be read back safely)."""
    if not line.startswith("\t"):
        return None
    config: dict[str, str] = {}
    for token in line.split():
        key, eq, value = token.partition("=")
        if not eq or not key or key in config:
            return None
        config[key] = value
    return config or None


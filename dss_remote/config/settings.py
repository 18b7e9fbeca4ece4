"""Settings of the dss special remote, declared once, resolved in one place.

Three levels, highest first: git config `remote.<name>.dss-<item>` (per clone) > the annex config
(initremote parameters, kept in the git-annex branch) > the default. The store's `dss/config.json`
is no level here: these settings say where the store is, so they are needed before it can be read.
For `url`, git config `remote.<name>.ora-url` (set by `datalad clone`) counts like `dss-url`.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    """One setting: its initremote name, what it is for, and its default."""

    name: str
    description: str
    default: str | None = None


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("url", "the RIA store, e.g. ria+file:///data/store (git config remote.NAME.dss-url "
                   "overrides it per clone)"),
    Setting("archive-id", "the dataset's id: its directory in the store is <id[:3]>/<id[3:]> "
                          "(default: the DataLad dataset id)"),
)}

# remote.<name>.ora-url is what `datalad clone` sets on the storage remote to point it at the
# store the clone came from; we honour it like dss-url when it names a store we can reach.
_ORA_URL = "ora-url"


@dataclass(frozen=True)
class Resolver:
    """Resolves settings for one remote: git config `dss-<item>` > annex config > default."""

    git: Mapping[str, str]
    annex: Callable[[str], str]

    def get(self, name: str) -> str | None:
        setting = SETTINGS[name]
        for value in (self.git.get(f"dss-{name}"), self.annex(name) or None, setting.default):
            if value:
                return value
        return None

    def url(self) -> str | None:
        override = self.git.get("dss-url") or self.git.get(_ORA_URL)
        if override and override.startswith(("ria+file:", "ria+http:", "ria+https:")):
            return override
        return self.get("url")


def read_git_remote_config(git_dir: str, remote_name: str) -> dict[str, str]:
    """`remote.<name>.*` from the clone's git config, as {item: value} (one `git config` call)."""
    prefix = f"remote.{remote_name}."
    try:
        out = subprocess.run(
            ["git", f"--git-dir={git_dir}", "config", "-z", "--get-regexp",
             "^remote\\..*\\.(dss-|ora-url)"],
            capture_output=True, check=False).stdout
    except OSError as e:
        logger.debug("cannot read git config: %s", e)
        return {}
    values: dict[str, str] = {}
    for entry in out.decode("utf-8", "surrogateescape").split("\0"):
        name, _, value = entry.partition("\n")
        # git lowercases section and key in this output but keeps the remote name's case
        if name.startswith(prefix):
            values[name[len(prefix):]] = value
    return values

"""The bare git repository inside a dataset directory, through plain `git` plumbing."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from .errors import DssError, WriteError, one_line

logger = logging.getLogger(__name__)


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", f"--git-dir={repo}", *args]
    logger.debug("run %s", cmd)
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise DssError("git not found on PATH (install git)") from e
    except subprocess.CalledProcessError as e:
        msg = one_line(e.stderr) or e.returncode
        raise WriteError(f"git {' '.join(args)} in {repo} failed: {msg}") from e
    return out.stdout


def init_bare(path: Path, shared: str | None = None) -> None:
    """`git init --bare` in the dataset directory (idempotent; git re-init keeps what exists)."""
    args = ["init", "--bare", "--quiet"]
    if shared:
        args.append(f"--shared={shared}")
    try:
        subprocess.run(["git", *args, str(path)], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise WriteError(f"git init --bare {path} failed: {one_line(e.stderr)}") from e


def set_config(repo: Path, name: str, value: str) -> None:
    """Set a config value in the bare repo's own `config` file."""
    _git(repo, "config", name, value)


def get_config(repo: Path, name: str) -> str | None:
    """A config value from the bare repo, or None if unset."""
    try:
        return _git(repo, "config", "--get", name).strip() or None
    except WriteError:
        return None

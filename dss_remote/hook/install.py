"""Install our post-update hook in a dataset's bare repo, chaining any hook that was there."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from importlib import resources
from pathlib import Path

from ria_store import bare_repo
from ria_store import store as ria
from ria_store.atomic import write_bytes_atomic
from ria_store.errors import ConfigError, from_os_error

logger = logging.getLogger(__name__)

HOOK = "post-update"
CHAINED = "post-update.dss-chained"
MARKER = "dss-remote post-update hook"


def hook_text(python: str | None = None) -> str:
    """The hook as installed: the packaged template with this interpreter's path."""
    template = resources.files("dss_remote.hook").joinpath("post_update_hook.sh").read_text()
    return template.replace("@PYTHON@", shlex.quote(python or sys.executable))


def install_hook(dsdir: Path) -> str:
    """Install (or update) the hook; "installed", "updated", "unchanged" or "chained" (an existing
    foreign hook, e.g. DataLad's `git update-server-info` one, was kept and now runs first)."""
    hooks = dsdir / "hooks"
    hook, chained = hooks / HOOK, hooks / CHAINED
    text = hook_text()
    status = "installed"
    try:
        old = hook.read_text(errors="replace") if hook.is_file() else None
        if old is not None and MARKER not in old:
            if chained.exists():
                raise ConfigError(f"{hook} is not ours and {chained} exists too; merge them into "
                                  f"{chained} (it runs first), remove {hook}, then rerun")
            os.rename(hook, chained)
            status = "chained"
        elif old == text:
            status = "unchanged"
        elif old is not None:
            status = "updated"
        if status != "unchanged":
            write_bytes_atomic(hook, text.encode(), mode=0o755)
    except OSError as e:
        raise from_os_error(e, str(hook), writing=True) from e
    # The reflog lets `dss sync` rebuild a version whose hook run failed (bare repos keep none by default).
    bare_repo.set_config(dsdir, "core.logAllRefUpdates", "true")
    bare_repo.update_server_info(dsdir)
    logger.info("%s: post-update hook %s", dsdir, status)
    return status


def adopt(store_root: Path) -> list[tuple[str, str]]:
    """Install the hook in every dataset of the store (e.g. made by `datalad create-sibling-ria`)."""
    store = ria.open_store(store_root)
    return [(dsid, install_hook(store.dataset_dir(dsid))) for dsid in ria.iter_datasets(store)]


def has_hook(dsdir: Path) -> bool:
    """Whether the dataset's bare repo runs our hook (only then does `dss sync` keep its bundles)."""
    try:
        return MARKER in (dsdir / "hooks" / HOOK).read_text(errors="replace")
    except OSError:
        return False

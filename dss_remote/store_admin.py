"""Store-level admin operations behind `dss init` (and later mirror management)."""

from __future__ import annotations

import logging
from pathlib import Path

from ria_store import store as ria

from .store_config import CONFIG_RELPATH, default_config, read_config, write_config

logger = logging.getLogger(__name__)


def init_store(root: Path) -> str:
    """Create (or adopt) a RIA store with our config; return 'created', 'adopted' or 'exists'.

    Idempotent: an existing `dss/config.json` is validated, never overwritten.
    """
    created = ria.create_store(root)
    if (root / CONFIG_RELPATH).exists():
        read_config(root)
        return "created" if created else "exists"
    write_config(root, default_config())
    return "created" if created else "adopted"

"""Directory listings where a missing directory means "nothing there yet"."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import from_os_error


def list_dir(directory: Path) -> list[str]:
    """The names in `directory`, sorted; [] when it does not exist (nothing was ever written
    there), a DssError naming it when it cannot be read (permissions, a file in its place, I/O)."""
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise from_os_error(e, str(directory)) from e

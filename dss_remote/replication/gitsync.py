"""What a mirror needs to be a store that `datalad clone ria+http(s)://…` can read, and in what order.

A bucket served over HTTP is read with git's dumb protocol: `info/refs`, `objects/info/packs`,
HEAD, refs, packs and loose objects. DataLad also reads the dataset's `config` for
`datalad.ora-remote.uuid` to find its storage remote; the real `config` stays private (it may hold
anything an admin put there), so mirrors get a public one with only what a clone needs.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from ria_store.errors import DssError, one_line

from ..config import paths

logger = logging.getLogger(__name__)

#: the only settings of a dataset's bare-repo config that a mirror publishes
PUBLIC_CONFIG_KEYS = ("core.repositoryformatversion", "core.bare", "datalad.ora-remote.uuid")


def public_git_config(repo: Path) -> bytes:
    """A `config` file holding only PUBLIC_CONFIG_KEYS of the bare repo's config."""
    lines: dict[str, list[str]] = {}
    for key in PUBLIC_CONFIG_KEYS:
        res = subprocess.run(["git", "config", "-f", str(repo / "config"), "--get", key],
                             capture_output=True, text=True, check=False)
        if res.returncode not in (0, 1):
            raise DssError(f"cannot read {repo / 'config'}: {one_line(res.stderr)}; check the file")
        if res.returncode == 0:
            section, _, name = key.rpartition(".")
            head, _, sub = section.partition(".")
            title = f'[{head} "{sub}"]' if sub else f"[{head}]"
            lines.setdefault(title, []).append(f"\t{name} = {res.stdout.strip()}")
    return "".join(f"{t}\n" + "\n".join(v) + "\n" for t, v in lines.items()).encode()


def upload_rank(rel: str) -> int:
    """Upload order that keeps a mirror cloneable at every moment: objects and packs before the refs
    naming them; `info/refs`, `objects/info/packs` and HEAD after; events after their manifests."""
    if rel.startswith(paths.EVENTS + "/"):
        return 4
    if rel.endswith(("/info/refs", "/objects/info/packs", "/HEAD")):
        return 3
    if "/refs/" in rel or rel.endswith("/packed-refs"):
        return 2
    if "/objects/" in rel:
        return 0
    return 1

"""A deposited file's content on every replica of the store as soon as `PUT /v1/files` answers:
the pool object goes to each writable mirror under the same path (`dss/files/objects/...`),
in parallel, before the file's record makes the deposit visible; the store's `write_quorum`
(the POSIX store counts as one) decides whether the deposit stands. Mirrors missing it get it
again when a bundle takes the key (ReplicaSet.store fills every replica), and `dss gc` removes
old pool objects from the mirrors with the store's.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ria_store.errors import DssError, WriteError, one_line

from ..backends.base import Backend
from ..replication.store_replicas import open_store_replicas

logger = logging.getLogger(__name__)


def replicate(root: Path, local: Path) -> None:
    """Upload the pool object `local` (under `root`) to every writable mirror; WriteError when
    fewer replicas than the write quorum hold it."""
    rel = local.relative_to(root).as_posix()
    with open_store_replicas(root) as sr:
        mirrors = [(n, b) for n, b in sr.backends[1:] if b.writable]
        if not mirrors:
            return
        quorum = sr.config.quorum

        def one(mirror: tuple[str, Backend]) -> str | None:
            name, backend = mirror
            try:
                if (info := backend.info(rel)) is None or info.size != local.stat().st_size:
                    backend.put_file(local, rel)
            except DssError as e:
                return f"[{name}] {one_line(e)}"
            return None

        with ThreadPoolExecutor(max_workers=len(mirrors), thread_name_prefix="dss-pool-put") as pool:
            failed = [f for f in pool.map(one, mirrors) if f is not None]
    if 1 + len(mirrors) - len(failed) < quorum:
        raise WriteError(f"the deposit reached {1 + len(mirrors) - len(failed)} of {1 + len(mirrors)} "
                         f"replicas, write_quorum needs {quorum}: {'; '.join(failed)}; retry the PUT")
    for f in failed:
        logger.warning("deposit %s missed a mirror (a bundle taking it fills it): %s", rel, f)


def remove(root: Path, rels: list[str]) -> dict[str, str]:
    """Remove pool objects from every writable mirror: {path: why} for those a mirror kept."""
    failed: dict[str, str] = {}
    if not rels:
        return failed
    with open_store_replicas(root) as sr:
        for name, backend in sr.backends[1:]:
            if not backend.writable:
                continue
            for rel in rels:
                try:
                    backend.remove(rel)
                except DssError as e:
                    failed.setdefault(rel, f"[{name}] {rel}: {one_line(e)}")
    return failed

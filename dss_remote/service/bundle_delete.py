"""`DELETE /v1/bundles/{uuid}[?version=]`: tombstones written as `dss bundles delete` does, then
their `bundle.deleted` events published and the git side mirrored, detached (as after a push)."""

from __future__ import annotations

import logging
from pathlib import Path

from ria_store.errors import DssError, NotFoundError, one_line

from ..history import bundle_store, tombstones
from ..hook import post_update
from ..hook.publish import publish
from .file_pool import VersionConflict

logger = logging.getLogger(__name__)


def delete(root: Path, dsid: str, version: str | None, *, reason: str, who: str
           ) -> list[tombstones.Tombstone]:
    """Tombstone one version (or every live one); VersionConflict when already dead,
    NotFoundError when there is no such version."""
    tombstones.check_reason(reason)
    known = bundle_store.versions(root, dsid) if (bundle_store.bundles_dir(root, dsid)).is_dir() else []
    if not known:
        raise NotFoundError(f"bundle {dsid} not found: no dataset with this id has bundle versions")
    gone = tombstones.dead(root, dsid)
    if version is not None and version in gone:
        t = gone[version]
        raise VersionConflict(f"bundle {dsid} version {version} is already deleted ({t.deleted_at} by "
                              f"{t.deleted_by})")
    if version is None and all(v in gone for v in known):
        raise VersionConflict(f"every version of bundle {dsid} is already deleted")
    written = tombstones.bury(root, dsid, version, reason=reason, who=who)
    queued = 0
    for t in written:
        try:
            event, paths = tombstones.event_of(root, t)
            queued += publish(root, event, paths)
        except (DssError, OSError) as e:
            logger.warning("event of %s@%s not published (%s); `dss sync` writes it", dsid, t.version,
                           one_line(e))
    post_update.spawn_followups(root, dsid, queued)
    return written

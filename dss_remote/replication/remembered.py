"""A replica reached over the network that remembers three answers, to save requests."""

from __future__ import annotations

import time
from pathlib import Path

from ria_store.archive import ArchiveReader, ArchiveSource, Member
from ria_store.keys import AnnexKey

from ..backends.base import Backend, Progress
from .dataset_objects import DatasetObjects
from .replica import Replica

#: how long a mirror's answer "no archives/archive.7z" is trusted by `present` (seconds)
ARCHIVE_RECHECK_S = 30.0
#: at most this many keys `present` saw missing are remembered (then the memo starts over)
ABSENT_MEMO_MAX = 4096


def remembering(objects: DatasetObjects) -> Replica:
    """`objects` with the request memos when its replica is reached over the network; as it is
    when the replica is a directory on this machine, where a look is a stat."""
    if objects.backend.local_root is not None:
        return objects
    return RememberingObjects(objects)


class RememberingObjects:
    """DatasetObjects of a replica reached over the network (S3, GCS, SFTP, HTTP), where every
    HEAD and PUT is latency and money, remembering three answers for the process:

    - the replica's root `ria-layout-version`, once seen: the replica is the right bucket and
      prefix, so a key found nowhere is absent (an outage still shows as an error on the key's
      own request, never as "absent");
    - "no archive", for ARCHIVE_RECHECK_S and in `present` only: `retrieve` and `remove` always
      look afresh (a packed key is served, and never removed behind the archive's back), and
      the `present` after them looks again;
    - the keys `present` just found missing, so the `store` git-annex sends next writes them
      without asking again.

    Each memo can only make dss write a copy that is already there, never skip one.
    """

    def __init__(self, objects: DatasetObjects) -> None:
        self.objects = objects
        self._root_seen = False
        self._no_archive_until = 0.0
        self._absent: set[str] = set()

    @property
    def name(self) -> str:
        return self.objects.name

    @property
    def url(self) -> str:
        return self.objects.url

    @property
    def backend(self) -> Backend:
        return self.objects.backend

    @property
    def dsid(self) -> str:
        return self.objects.dsid

    @property
    def archives(self) -> ArchiveReader:
        return self.objects.archives

    def object_tree_version(self) -> str:
        return self.objects.object_tree_version()

    def archive(self) -> ArchiveSource | None:
        return self.objects.archive()

    def archived(self, key: AnnexKey) -> tuple[ArchiveSource, Member] | None:
        return self.objects.archived(key)

    def whereis(self, key: AnnexKey) -> str | None:
        return self.objects.whereis(key)

    def present(self, key: AnnexKey) -> bool:
        objects = self.objects
        if objects.has_loose(key):
            self._absent.discard(key.text)
            return True
        if time.monotonic() >= self._no_archive_until:
            source = objects.archive()
            # a look that finds no archive is trusted for a while; one that finds it, not
            self._no_archive_until = time.monotonic() + ARCHIVE_RECHECK_S if source is None else 0.0
            if source is not None and objects.member(source, key) is not None:
                return True
        if not self._root_seen:
            objects.confirm_dataset()
            self._root_seen = True
        if len(self._absent) >= ABSENT_MEMO_MAX:
            self._absent.clear()
        self._absent.add(key.text)
        return False

    def retrieve(self, key: AnnexKey, dst: Path, progress: Progress | None = None,
                 checksum: bool = True) -> None:
        self._no_archive_until = 0.0  # this looks afresh, and may find an archive: so will `present`
        self.objects.retrieve(key, dst, progress, checksum)

    def store(self, key: AnnexKey, src: Path, progress: Progress | None = None,
              replace: bool = False) -> None:
        just_seen_missing = key.text in self._absent
        try:
            self.objects.store(key, src, progress, replace=replace or just_seen_missing)
        finally:
            self._absent.discard(key.text)

    def remove(self, key: AnnexKey) -> None:
        self._no_archive_until = 0.0  # this looks afresh, and may find an archive: so will `present`
        self.objects.remove(key)

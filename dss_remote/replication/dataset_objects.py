"""One dataset's annex objects on one replica: RIA paths, loose objects first, then the 7z archive."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from ria_store import store as ria
from ria_store.archive import ArchiveReader, ArchiveSource, Member, local_archive
from ria_store.errors import (
    CorruptError,
    NotFoundError,
    UnavailableError,
    WriteError,
    from_os_error,
)
from ria_store.keys import AnnexKey
from ria_store.layout import (
    ARCHIVE_PATH,
    DEFAULT_OBJECT_TREE_VERSION,
    OBJECT_TREE_VERSIONS,
    VERSION_FILE,
    archive_members,
    dataset_relpath,
    object_relpath,
    parse_version_file,
)

from ..backends.base import Backend, Progress
from ..backends.checksums import Digests

logger = logging.getLogger(__name__)


class DatasetObjects:
    """Key operations for dataset `dsid` in the store behind `backend`, on the replica `name`.

    Layout versions are read on first use and cached for the process; an absent key is
    confirmed by re-checking that the dataset directory is still there, so an unmounted store
    reads as "cannot tell", never as "absent". On a mirror (no local root) a dataset that has
    no `ria-layout-version` yet simply holds no keys; its first write creates it with the
    store's version (`mirror_version`), so the mirror stays a byte copy of the store.
    A key that is not loose may be packed in the replica's `archives/archive.7z`: read by path
    where the replica is a directory on this machine, else by ranged reads through the backend
    (`archive`), so a bucket answers for packed keys without anyone downloading the archive.

    Every call looks afresh; `remembered.RememberingObjects` saves a replica reached over the
    network the requests whose answers it can safely remember.
    """

    def __init__(self, backend: Backend, dsid: str, archives: ArchiveReader | None = None,
                 name: str | None = None, mirror_version: str | None = None) -> None:
        self.backend = backend
        self.dsid = dsid
        self.ds_rel = dataset_relpath(dsid)
        self.archives = archives or ArchiveReader()
        #: the replica's name in the store's config (its url when it has none)
        self.name = name or backend.url
        #: set for a mirror: the layout version its datasets get when their first key arrives
        self.mirror_version = mirror_version
        self._version: str | None = None
        self._on_mirror: bool | None = None  # does the mirror hold this dataset's version file?

    @property
    def url(self) -> str:
        return self.backend.url

    # -- layout -------------------------------------------------------------------------
    def object_tree_version(self) -> str:
        if self._version is None:
            root = self.backend.local_root
            if root is None or self.mirror_version is not None:
                self._version = self._mirror_tree_version()
            else:
                store = ria.open_store(root)
                self._version = ria.open_dataset(store, self.dsid).version
        return self._version

    def _mirror_tree_version(self) -> str:
        rel = f"{self.ds_rel}/{VERSION_FILE}"
        try:
            text = self.backend.read_bytes(rel).decode("utf-8", "replace")
        except NotFoundError:
            self._on_mirror = False
            return self.mirror_version or DEFAULT_OBJECT_TREE_VERSION
        self._on_mirror = True
        version, _flags = parse_version_file(text, f"{self.url}/{rel}")
        if version not in OBJECT_TREE_VERSIONS:
            raise UnavailableError(f"{self.url}/{rel}: unknown layout version {version!r} "
                                   f"(known: {', '.join(OBJECT_TREE_VERSIONS)}); upgrade dss-remote")
        return version

    def _rel(self, key: AnnexKey) -> str:
        return f"{self.ds_rel}/{object_relpath(key, self.object_tree_version())}"

    def archive(self) -> ArchiveSource | None:
        """This replica's `archives/archive.7z`, or None when it has none: a local file where the
        replica is a directory here, else ranged reads through the backend (one HEAD per call,
        whose size and revision tell the index cache whether the archive changed)."""
        rel = f"{self.ds_rel}/{ARCHIVE_PATH}"
        root = self.backend.local_root
        if root is not None:
            return local_archive(root / rel)
        info = self.backend.info(rel)
        if info is None:
            return None
        return ArchiveSource(f"{self.url}/{rel}", info.size, (info.size, info.revision),
                             functools.partial(self.backend.read_range, rel))

    def member(self, source: ArchiveSource, key: AnnexKey) -> tuple[ArchiveSource, Member] | None:
        """The member of the archive `source` holding `key` at the size the key says, if any;
        ArchiveError if the archive is there but unreadable."""
        member = self.archives.find(source, archive_members(key))
        if member is None:
            return None
        expected = key.expected_size
        if expected is not None and member.size != expected:
            logger.warning("%s: archive member %s has %d bytes, key says %d; ignoring it",
                           self.url, member.name, member.size, expected)
            return None
        return source, member

    def archived(self, key: AnnexKey) -> tuple[ArchiveSource, Member] | None:
        """The archive and its member holding `key`, if this replica's archive has it at the size
        the key says; ArchiveError if the archive is there but unreadable."""
        source = self.archive()
        return None if source is None else self.member(source, key)

    def confirm_dataset(self) -> None:
        """Raise UnavailableError unless the dataset directory is still reachable."""
        if self.backend.local_root is None or self.mirror_version is not None:
            # A mirror that holds its store-level version file answers for its datasets: one
            # without this dataset simply lacks its keys. Without that file it is not mounted,
            # or the url points at the wrong bucket or prefix.
            if self.backend.info(VERSION_FILE) is None:
                raise UnavailableError(
                    f"{self.url}: no {VERSION_FILE} at the mirror's root (not mounted, or the wrong "
                    "bucket/prefix; `dss mirror add` writes it, `dss sync` restores it)")
            return
        if self.backend.info(f"{self.ds_rel}/{VERSION_FILE}") is None:
            self._version = None
            self.object_tree_version()  # raises the precise error (store gone, dataset gone)
            raise UnavailableError(f"{self.url}: dataset {self.dsid} vanished during the run")

    def has_loose(self, key: AnnexKey) -> bool:
        """A loose object of the size the key says; a wrong-sized one counts as absent, so
        git-annex never trusts (and drops other copies for) a corrupt object, and re-stores it."""
        rel = self._rel(key)
        info = self.backend.info(rel)
        if info is None:
            return False
        expected = key.expected_size
        if expected is None or info.size == expected:
            return True
        logger.warning("%s: %s has %d bytes, key says %d: treating it as absent",
                       self.url, rel, info.size, expected)
        return False

    # -- key operations -----------------------------------------------------------------
    def present(self, key: AnnexKey) -> bool:
        """Whether the key is loose or packed here; False only once the dataset directory is
        confirmed reachable (else UnavailableError: "cannot tell")."""
        if self.has_loose(key) or self.archived(key) is not None:
            return True
        self.confirm_dataset()
        return False

    def retrieve(self, key: AnnexKey, dst: Path, progress: Progress | None = None,
                 checksum: bool = True) -> None:
        """Write the key's content to `dst`: the loose object, else the archive member.
        The size is always checked; the key's checksum too unless `checksum` is False."""
        rel = self._rel(key)
        try:
            fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as e:
            raise from_os_error(e, f"local file {dst}", writing=True) from e
        try:
            corrupt = None
            try:
                n = self.backend.get_file(rel, fd, progress)
            except NotFoundError:
                pass
            else:
                corrupt = self._verify(key, rel, fd, n, checksum)
                if corrupt is None:
                    return
            found = self.archived(key)
            if found is None:
                if corrupt is not None:
                    raise corrupt
                self.confirm_dataset()
                raise NotFoundError(f"{self.url}: {key} is not in dataset {self.dsid} "
                                    "(neither loose nor in archives/archive.7z)")
            source, member = found
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            self.archives.extract(source, member, fd, progress)
            corrupt = self._verify(key, f"{ARCHIVE_PATH}:{member.name}", fd, member.size, checksum)
            if corrupt is not None:
                raise corrupt
        finally:
            os.close(fd)

    def _verify(self, key: AnnexKey, where: str, fd: int, n: int, checksum: bool) -> CorruptError | None:
        """Check what was just written to `fd` against the key: size, then its checksum if it
        has one, so a bad copy makes the ReplicaSet fall back to the next replica."""
        expected = key.expected_size
        if expected is not None and n != expected:
            return CorruptError(
                f"{self.url}: {where} has {n} bytes but key {key} says {expected} (corrupt object; "
                "`dss fsck` then `dss repair` fixes it from a good replica)")
        algo_want = key.checksum if checksum else None
        if algo_want is None:
            return None
        algo, want = algo_want
        with os.fdopen(os.dup(fd), "rb") as f:
            f.seek(0)
            got = Digests([algo]).read_from(f).hexdigests()[algo]
        if got == want:
            return None
        return CorruptError(
            f"{self.url}: {where} does not match its key {key} ({algo} differs; corrupt object: "
            "`dss fsck` then `dss repair` fixes it from a good replica)")

    def store(self, key: AnnexKey, src: Path, progress: Progress | None = None,
              replace: bool = False) -> None:
        """Publish `src` as the key's loose object, unless a right-sized one is there already;
        `replace` writes without looking (repair of a same-sized corrupt copy, or a key the
        caller has just seen missing)."""
        expected = key.expected_size
        try:
            have = os.stat(src).st_size
        except OSError as e:
            raise from_os_error(e, f"local file {src}") from e
        if expected is not None and have != expected:
            raise WriteError(f"refusing to store {key}: local file {src} has {have} bytes, the key "
                             f"says {expected} (run `git annex fsck` on this clone)")
        if not self.backend.writable:
            raise WriteError(f"{self.url} is read-only; copy to a writable url (ria+file)")
        rel = self._rel(key)  # reads the layout version first: `_on_mirror` depends on it
        if not replace and self.has_loose(key):
            return
        if self._on_mirror is False:
            # first key of this dataset on the mirror: make it a RIA dataset dir there too
            self.backend.write_bytes(f"{self.ds_rel}/{VERSION_FILE}", f"{self._version}\n".encode())
            self._on_mirror = True
        self.backend.put_file(src, rel, progress)

    def remove(self, key: AnnexKey) -> None:
        if self.archived(key) is not None:
            raise WriteError(
                f"{self.url}: {key} is also packed in {self.ds_rel}/{ARCHIVE_PATH}, which dss "
                "does not rewrite, so it would stay retrievable; nothing was removed (re-pack the "
                "archive without it, or keep it)")
        self.backend.remove(self._rel(key))

    def whereis(self, key: AnnexKey) -> str | None:
        if self.has_loose(key):
            rel = self._rel(key)
            root = self.backend.local_root
            return str(root / rel) if root is not None else f"{self.url}/{rel}"
        found = self.archived(key)
        if found is not None:
            return f"{found[0].name}:{found[1].name}"
        return None


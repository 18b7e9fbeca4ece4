"""One replica of one dataset as the rest of replication sees it, and how to pick and try replicas."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

from ria_store.archive import ArchiveReader, ArchiveSource, Member
from ria_store.errors import DssError, NotFoundError, one_line
from ria_store.keys import AnnexKey

from ..backends.base import Backend, Progress

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Replica(Protocol):
    """One dataset's keys on one replica: `DatasetObjects`, or the memo wrapper of a replica
    reached over the network (`remembered.RememberingObjects`)."""

    @property
    def name(self) -> str:
        """The replica's name in the store's config (`store` for the POSIX store)."""

    @property
    def url(self) -> str:
        """Where the replica is, for messages."""

    @property
    def backend(self) -> Backend: ...

    @property
    def dsid(self) -> str: ...

    @property
    def archives(self) -> ArchiveReader: ...

    def object_tree_version(self) -> str: ...

    def archive(self) -> ArchiveSource | None: ...

    def archived(self, key: AnnexKey) -> tuple[ArchiveSource, Member] | None: ...

    def present(self, key: AnnexKey) -> bool: ...

    def retrieve(self, key: AnnexKey, dst: Path, progress: Progress | None = None,
                 checksum: bool = True) -> None: ...

    def store(self, key: AnnexKey, src: Path, progress: Progress | None = None,
              replace: bool = False) -> None: ...

    def remove(self, key: AnnexKey) -> None: ...

    def whereis(self, key: AnnexKey) -> str | None: ...


R = TypeVar("R", bound=Replica)


def named(pairs: Iterable[tuple[str, T]], name: str) -> T:
    """The item called `name`; DssError naming every known name if there is none (a typo must
    not read as "nothing to do")."""
    pairs = list(pairs)
    for n, item in pairs:
        if n == name:
            return item
    names = ", ".join(n for n, _ in pairs)
    raise DssError(f"no replica named {name!r} (this store has: {names})")


class Failures:
    """What went wrong on which replica, as one line: `[name] cause; [name] cause`."""

    def __init__(self) -> None:
        self.items: list[tuple[str, DssError]] = []

    def add(self, name: str, error: DssError) -> None:
        self.items.append((name, error))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[str, DssError]]:
        return iter(self.items)

    def all_absent(self) -> bool:
        """Every replica said "not there" (also when none was tried): the key is gone, as
        opposed to some replica that could not tell."""
        return all(isinstance(e, NotFoundError) for _, e in self.items)

    def line(self, named: bool = True) -> str:
        """One line for all failures; without `named` (a single replica), the causes alone."""
        if not named:
            return "; ".join(one_line(e) for _, e in self.items)
        return "; ".join(f"[{name}] {one_line(e)}" for name, e in self.items)


def first_success(replicas: Iterable[R], attempt: Callable[[R], T],
                  error: Callable[[Failures], DssError], what: str) -> tuple[R, T]:
    """Run `attempt` on each replica in order until one succeeds; return that replica and its
    result. A DssError moves on to the next replica; when none succeeds, raise `error(failures)`,
    the one error that names every replica tried and why it failed. `what` names the attempt in
    the log, e.g. "KEY: read" logs "KEY: read from m2 after [store] ..."."""
    failures = Failures()
    for r in replicas:
        try:
            result = attempt(r)
        except DssError as e:
            logger.debug("%s from %s failed: %s", what, r.name, e)
            failures.add(r.name, e)
            continue
        if failures:
            logger.info("%s from %s after %s", what, r.name, failures.line())
        return r, result
    raise error(failures)

"""ReplicaSet: one dataset across its replicas; reads in cost order with fallback, writes to all."""

from __future__ import annotations

import logging
from pathlib import Path

from ria_store.errors import DssError, NotFoundError, UnavailableError, WriteError, one_line
from ria_store.keys import AnnexKey

from .backends.base import Progress
from .dataset_objects import DatasetObjects

logger = logging.getLogger(__name__)


def _joined(failures: list[tuple[str, DssError]]) -> str:
    if len(failures) == 1:
        return one_line(failures[0][1])
    return "; ".join(f"replica {name}: {one_line(e)}" for name, e in failures)


class ReplicaSet:
    """The replicas of one dataset, cheapest first.

    - `present` is True when any replica has the key; when none has it and some could not
      answer, it raises UnavailableError (git-annex must hear "cannot tell", not "absent").
    - `retrieve` tries replicas in order and falls back on any failure; the error names each.
    - `store` writes every replica (write quorum "all"); `remove` removes from every replica.
    """

    def __init__(self, replicas: list[DatasetObjects]) -> None:
        if not replicas:
            raise ValueError("a ReplicaSet needs at least one replica")
        self.replicas = replicas

    def present(self, key: AnnexKey) -> bool:
        failures: list[tuple[str, DssError]] = []
        for r in self.replicas:
            try:
                if r.present(key):
                    return True
            except DssError as e:
                failures.append((r.name, e))
        if failures:
            raise UnavailableError(_joined(failures))
        return False

    def retrieve(self, key: AnnexKey, dst: Path, progress: Progress | None = None) -> None:
        failures: list[tuple[str, DssError]] = []
        for r in self.replicas:
            try:
                r.retrieve(key, dst, progress)
                return
            except DssError as e:
                logger.debug("retrieve %s from %s failed: %s", key, r.name, e)
                failures.append((r.name, e))
        if all(isinstance(e, NotFoundError) for _, e in failures):
            raise NotFoundError(_joined(failures))
        raise UnavailableError(_joined(failures))

    def store(self, key: AnnexKey, src: Path, progress: Progress | None = None) -> None:
        failures: list[tuple[str, DssError]] = []
        for r in self.replicas:
            try:
                r.store(key, src, progress)
            except DssError as e:
                failures.append((r.name, e))
        if failures:
            raise WriteError(_joined(failures))

    def remove(self, key: AnnexKey) -> None:
        failures: list[tuple[str, DssError]] = []
        for r in self.replicas:
            try:
                r.remove(key)
            except DssError as e:
                failures.append((r.name, e))
        if failures:
            raise WriteError(_joined(failures))

    def whereis(self, key: AnnexKey) -> str | None:
        places = []
        for r in self.replicas:
            try:
                where = r.whereis(key)
            except DssError:
                continue
            if where:
                places.append(where)
        return " ".join(places) or None

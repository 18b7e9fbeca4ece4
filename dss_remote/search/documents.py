"""The search document of a bundle version, shaped as the HCA DSS built its bundle documents.

`{uuid, version, bundle_fqid, dataset_id, alias, created, ref, commit, manifest: {files: [...]},
files: {<name>: <content>}, meta: {...}}`: `manifest.files` are the manifest's rows (each with
`name` = its path and `indexed`), `files` holds the parsed content of every indexed file under its
path with `/` and `.` turned into `_` (`meta/sample.json` → `files.meta_sample_json`), and `meta`
the store-side metadata of `dss meta set`. A file that is not valid JSON, too large or unreadable
is still a manifest row; it only has no content, and the reason is returned as a `Problem`.
Built from the store alone (manifest, blobs/objects, metadata records, aliases), so building it
again gives the same document: the index is a cache of these.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ria_store import bare_repo
from ria_store import store as ria
from ria_store.errors import DssError
from ria_store.keys import parse_key
from ria_store.layout import ALIAS_DIR, dataset_relpath, object_relpath
from ria_store.listing import list_dir

from ..config.search_settings import SearchSettings
from ..history import bundles, meta_records, times

logger = logging.getLogger(__name__)

DATALAD_CONFIG = ".datalad/config"


@dataclass(frozen=True)
class Problem:
    """An indexed file whose content is not in the document, and why (reported once per file)."""

    path: str
    ident: str  # its key or git blob: the same file in another version is the same problem
    reason: str


def file_field(path: str) -> str:
    """The name of a file's content in `files`: `/` and `.` turned into `_`, as the DSS did."""
    return path.replace("/", "_").replace(".", "_")


def is_indexed(row: Mapping[str, Any], settings: SearchSettings) -> bool:
    """Whether a manifest row's content goes into the document: a writer's mark wins, else the
    store's globs; subdatasets and symlinks never."""
    mark = row.get("indexed")
    if isinstance(mark, bool):
        return mark
    if row.get("type") not in ("annex", "git"):
        return False
    path = str(row.get("path", ""))
    return any(fnmatch.fnmatchcase(path, g) for g in settings.indexed)


def _ident(row: Mapping[str, Any]) -> str:
    return str(row.get("key") or row.get("git_blob") or "")


def parse_git_config(text: str) -> dict[str, str]:
    """`[section "sub"] name = value` lines as {"section.sub.name": value} (enough for
    `.datalad/config`, which DataLad writes with `git config`)."""
    out: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r'\[\s*([A-Za-z0-9.\-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]', line)
        if m:
            section = m.group(1).lower() + (f".{m.group(2)}" if m.group(2) is not None else "")
            continue
        name, sep, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if section:
            out[f"{section}.{name.strip().lower()}"] = value if sep else "true"
    return out


def parse_content(path: str, data: bytes) -> Any:
    """The content of an indexed file; ValueError says why it has none."""
    if path == DATALAD_CONFIG or path.endswith("/" + DATALAD_CONFIG):
        return parse_git_config(data.decode("utf-8", "replace"))
    try:
        return json.loads(data)
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg}: line {e.lineno} column {e.colno})") from e
    except RecursionError as e:
        raise ValueError("JSON nested too deeply") from e


def document(head: bundles.ManifestHead, rows: Sequence[Mapping[str, Any]], *,
             contents: Mapping[str, Any], aliases: Sequence[str], meta: Mapping[str, Any],
             settings: SearchSettings) -> dict[str, Any]:
    """The document of a version from its parts (pure: `build` does the reading)."""
    files: dict[str, Any] = {}
    out_rows = []
    for row in rows:
        r = dict(row)
        path = str(r.get("path", ""))
        r["name"] = path
        r["indexed"] = is_indexed(row, settings)
        out_rows.append(r)
        if path in contents:
            files.setdefault(file_field(path), contents[path])  # rows are in path order: first wins
    doc: dict[str, Any] = {
        "uuid": head.dataset_id, "version": head.version, "bundle_fqid": head.bundle_fqid,
        "dataset_id": head.dataset_id,
        "created": times.format_utc(bundles.parse_version(head.version)),
        "ref": head.ref, "commit": head.commit, "manifest": {"files": out_rows}, "files": files}
    if aliases:
        doc["alias"] = aliases[0] if len(aliases) == 1 else list(aliases)
    if meta:
        doc["meta"] = meta_records.expand(meta)
    return doc


def dataset_aliases(store_root: Path) -> dict[str, list[str]]:
    """Dataset id → its aliases in the store's `alias/` (links that leave the store are skipped)."""
    out: dict[str, list[str]] = {}
    store = ria.open_store(store_root)
    for name in list_dir(store_root / ALIAS_DIR):
        try:
            dsid = ria.resolve_alias(store, name, check=False)
        except DssError:
            continue
        out.setdefault(dsid, []).append(name)
    return {k: sorted(v) for k, v in out.items()}


class ParsedCache:
    """Parsed contents by (key or blob, how parsed), least recently used first out, bounded by the
    bytes they were parsed from. Content-addressed, so never stale: consecutive versions share
    most of their JSON files, and a rebuild or catch-up reads each file once."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, bool], tuple[int, Any, str | None]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, bool]) -> tuple[Any, str | None] | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[1], item[2]

    def put(self, key: tuple[str, bool], size: int, value: Any, problem: str | None) -> None:
        if size > self.max_bytes // 8 or key in self._items:
            return
        self._items[key] = (size, value, problem)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (old, _, _) = self._items.popitem(last=False)
            self._bytes -= old


class ContentReader:
    """Reads indexed files of one dataset: git blobs from the bare repo in one batch, annexed
    ones loose from the store, else through the store's replicas (archives, mirrors); each
    file's parsed content (or why it has none) is kept in `cache` by its key or blob."""

    def __init__(self, store_root: Path, dsid: str, settings: SearchSettings,
                 replicas: Any | None = None, cache: ParsedCache | None = None) -> None:
        self.store_root, self.dsid, self.settings = store_root, dsid, settings
        self.repo = store_root / dataset_relpath(dsid)
        self._tree_version: str | None = None
        self._replicas = replicas  # StoreReplicas, opened when a key is not loose here
        self.cache = cache if cache is not None else ParsedCache()

    @staticmethod
    def _cache_key(row: Mapping[str, Any]) -> tuple[str, bool]:
        path = str(row["path"])
        return _ident(row), path == DATALAD_CONFIG or path.endswith("/" + DATALAD_CONFIG)

    def read(self, rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], list[Problem]]:
        contents: dict[str, Any] = {}
        problems: list[Problem] = []
        wanted = []
        for row in rows:
            if not is_indexed(row, self.settings):
                continue
            path = str(row["path"])
            size = row.get("size")
            if isinstance(size, int) and size > self.settings.max_bytes:
                problems.append(Problem(path, _ident(row), f"{size} bytes, over the index limit of "
                                        f"{self.settings.max_bytes} (search.max_bytes)"))
                continue
            known = self.cache.get(self._cache_key(row)) if _ident(row) else None
            if known is None:
                wanted.append(row)
            elif known[1] is None:
                contents[path] = known[0]
            else:
                problems.append(Problem(path, _ident(row), known[1]))
        blobs = [str(r["git_blob"]) for r in wanted if r.get("type") == "git" and r.get("git_blob")]
        try:
            blob_data = bare_repo.read_blobs(self.repo, blobs) if blobs else {}
        except DssError as e:
            logger.warning("dataset %s: cannot read git files for the index (%s)", self.dsid, e)
            blob_data = {}
        for row in wanted:
            path = str(row["path"])
            try:
                if row.get("type") == "git":
                    data = blob_data.get(str(row.get("git_blob")))
                    if data is None:
                        raise ValueError("its git blob is not in the dataset's repository")
                else:
                    data = self._annexed(str(row.get("key")))
            except (ValueError, DssError, OSError) as e:  # not readable (yet): never cached
                problems.append(Problem(path, _ident(row), str(e)))
                continue
            value, problem = None, None
            if len(data) > self.settings.max_bytes:
                problem = (f"{len(data)} bytes, over the index limit of {self.settings.max_bytes} "
                           "(search.max_bytes)")
            else:
                try:
                    value = parse_content(path, data)
                except ValueError as e:
                    problem = str(e)
            self.cache.put(self._cache_key(row), len(data), value, problem)
            if problem is None:
                contents[path] = value
            else:
                problems.append(Problem(path, _ident(row), problem))
        return contents, problems

    def _annexed(self, key_text: str) -> bytes:
        key = parse_key(key_text)
        if self._tree_version is None:
            self._tree_version = ria.open_dataset(ria.open_store(self.store_root), self.dsid).version
        path = self.repo / object_relpath(key, self._tree_version)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        if self._replicas is None:
            raise ValueError("its content is not in the store (not pushed yet?)")
        fd, tmp = tempfile.mkstemp(prefix=".dss-tmp-index-")
        os.close(fd)
        try:
            self._replicas.for_dataset(self.dsid).retrieve(key, Path(tmp))
            return Path(tmp).read_bytes()
        except DssError as e:
            raise ValueError(f"its content is not readable from any replica ({e})") from e
        finally:
            os.unlink(tmp)


def build(store_root: Path, manifest: bundles.Manifest, *, settings: SearchSettings,
          aliases: Sequence[str], meta: Sequence[meta_records.MetaRecord],
          reader: ContentReader | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """The document of a stored bundle version, and the problems of its indexed files."""
    head = manifest.head
    reader = reader or ContentReader(store_root, head.dataset_id, settings)
    contents, problems = reader.read(manifest.files)
    doc = document(head, manifest.files, contents=contents, aliases=aliases,
                   meta=meta_records.merged(meta, head.version), settings=settings)
    return doc, problems

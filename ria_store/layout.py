"""Where things live in a RIA store: dirhash, dataset directory, object path, archive member."""

from __future__ import annotations

import hashlib
import re

from .errors import LayoutError, UnsafePathError
from .keys import AnnexKey, parse_key, sanitize_key

STORE_LAYOUT_VERSIONS = ("1",)
# dataset (object tree) layout: "1" = DIRHASH-LOWER, "2" = DIRHASH (mixed case); DataLad writes "2".
OBJECT_TREE_VERSIONS = ("1", "2")
DEFAULT_OBJECT_TREE_VERSION = "2"
VERSION_FILE = "ria-layout-version"
OBJECTS_DIR = "annex/objects"
ARCHIVE_PATH = "archives/archive.7z"
ALIAS_DIR = "alias"
ERROR_LOGS_DIR = "error_logs"

# Utility/MD5.hs display_32bits_as_dir
_CHARS = "0123456789zqjxkmvwgpfZQJXKMVWGPF"
_DATASET_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ALIAS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@-]*")


def _md5(key: AnnexKey | str, escaped: bool = True) -> bytes:
    k = key if isinstance(key, AnnexKey) else parse_key(key)
    # ORA asks git-annex for the hash of the *escaped* key; git-annex drops chunk fields first.
    text = sanitize_key(k.non_chunk) if escaped else k.non_chunk
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).digest()


def dirhash_mixed(key: AnnexKey | str, escaped: bool = True) -> str:
    """git-annex `hashDirMixed` (DIRHASH): two levels like `aB/Cd/`.

    ORA hashes the escaped key (`escaped=True`); git-annex itself hashes the key as it is.
    The two differ only for keys holding `/ % & :`.
    """
    w = int.from_bytes(_md5(key, escaped)[:4], "little")
    c = [_CHARS[(w >> (6 * i)) & 31] for i in range(4)]
    return f"{c[1]}{c[0]}/{c[3]}{c[2]}/"


def dirhash_lower(key: AnnexKey | str) -> str:
    """git-annex `hashDirLower` (DIRHASH-LOWER): two levels like `abc/def/`."""
    h = _md5(key).hex()
    return f"{h[0:3]}/{h[3:6]}/"


def key_relpath(key: AnnexKey | str, object_tree_version: str) -> str:
    """`<dirhash><KEY>/<KEY>` for the escaped key, as in `.git/annex/objects` and ORA."""
    k = key if isinstance(key, AnnexKey) else parse_key(key)
    if object_tree_version == "2":
        hashdir = dirhash_mixed(k)
    elif object_tree_version == "1":
        hashdir = dirhash_lower(k)
    else:
        raise LayoutError(
            f"unknown dataset ria-layout-version {object_tree_version!r} "
            f"(known: {', '.join(OBJECT_TREE_VERSIONS)}); upgrade dss-remote")
    name = sanitize_key(k.text)
    return f"{hashdir}{name}/{name}"


def object_relpath(key: AnnexKey | str, object_tree_version: str) -> str:
    """Path of a loose key object relative to the dataset directory."""
    return f"{OBJECTS_DIR}/{key_relpath(key, object_tree_version)}"


def archive_members(key: AnnexKey | str) -> list[str]:
    """Member names a key may have in `archives/archive.7z` (mixed-case hash), best first.

    ORA reads `<DIRHASH of escaped key>/<escaped>/<escaped>`, which is what we pack. DataLad's
    `export-archive-ora` writes git-annex's `${hashdirmixed}${key}/${key}` (unescaped), which
    differs for keys holding `% & :` (a key with `/` cannot be a member name at all).
    """
    k = key if isinstance(key, AnnexKey) else parse_key(key)
    names = [key_relpath(k, "2")]
    raw = f"{dirhash_mixed(k, escaped=False)}{k.text}/{k.text}"
    if raw != names[0] and "/" not in k.text:
        names.append(raw)
    return names


def check_dataset_id(dsid: str) -> str:
    """Return `dsid` if it is a DataLad dataset id (a UUID), else raise UnsafePathError."""
    if not isinstance(dsid, str) or not _DATASET_ID_RE.fullmatch(dsid):
        raise UnsafePathError(
            f"invalid dataset id {dsid!r}: expected a DataLad dataset id like "
            "'4dc8313d-2567-4475-a4a0-17cdebad9c1d' (see `datalad.dataset.id` in .datalad/config)")
    return dsid


def dataset_relpath(dsid: str) -> str:
    """`<id[:3]>/<id[3:]>`: the dataset directory relative to the store root."""
    check_dataset_id(dsid)
    return f"{dsid[:3]}/{dsid[3:]}"


def check_alias(name: str) -> str:
    """Return `name` if it is a safe alias (one path component, no traversal), else raise."""
    if not isinstance(name, str) or not _ALIAS_RE.fullmatch(name) or len(name) > 200:
        raise UnsafePathError(
            f"invalid alias {name!r}: use one name of letters, digits and '_.+@-', "
            "not starting with '.' or '-' and without '/'")
    return name


def alias_target(dsid: str) -> str:
    """Relative symlink target of `alias/<name>`, as DataLad writes it (survives moving the store)."""
    return f"../{dataset_relpath(dsid)}"


def parse_version_file(text: str, what: str) -> tuple[str, frozenset[str]]:
    """Parse a `ria-layout-version` body (`1`, `2`, `1|l`) into (version, flags)."""
    fields = text.strip().split("|")
    if not fields[0] or len(fields) > 2:
        raise LayoutError(f"{what}: invalid ria-layout-version content {text.strip()!r} "
                          "(expected e.g. '1' or '1|l')")
    flags = frozenset(fields[1]) if len(fields) == 2 else frozenset()
    return fields[0], flags

"""What a dataset's tree and its `git-annex` branch hold for an annexed file, written without a
work tree or a git-annex process (pure: formats only; repo_write.py writes them).

The formats are git-annex's documented internals (https://git-annex.branchable.com/internals/):
- a work-tree file is a symlink to `.git/annex/objects/<hashDirMixed>/<key>/<key>`, relative to
  the file's own directory;
- `<hashDirLower>/<key>.log` on the git-annex branch is the key's location log, one line per
  change: `<POSIX time>s <1|0> <repository uuid>`; the last line per uuid wins;
- `uuid.log` lines are `<uuid> <description> timestamp=<POSIX time>s`;
- `remote.log` lines are `<uuid> <key=value ...> timestamp=<POSIX time>s` (a special remote's
  configuration); values may hold no whitespace (refused here, never escaped).
"""

from __future__ import annotations

import re
import time

from .errors import DssError
from .keys import parse_key, sanitize_key
from .layout import dirhash_lower, dirhash_mixed

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def timestamp(now: float | None = None) -> str:
    """git-annex's log time: POSIX seconds with a fraction and an `s`."""
    return f"{time.time() if now is None else now:.9f}s"


def symlink_target(path: str, key: str) -> str:
    """The symlink git-annex commits for `key` at work-tree path `path`."""
    k = parse_key(key)
    name = sanitize_key(k.text)
    up = "../" * path.count("/")
    return f"{up}.git/annex/objects/{dirhash_mixed(k, escaped=False)}{name}/{name}"


def location_log_path(key: str) -> str:
    """The key's location log on the git-annex branch."""
    k = parse_key(key)
    return f"{dirhash_lower(k)}{sanitize_key(k.text)}.log"


def _check_uuid(uuid: str) -> str:
    if not _UUID_RE.fullmatch(uuid):
        raise DssError(f"{uuid!r} is not a git-annex repository uuid")
    return uuid


def present_in(log: bytes, uuid: str) -> bool:
    """Whether a location log's last word on `uuid` is "present"."""
    state = False
    for line in log.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == uuid:
            state = parts[1] == "1"
    return state


def with_present(log: bytes, uuid: str, when: str) -> bytes:
    """A location log with `uuid` said to hold the key (unchanged when it already is)."""
    if present_in(log, uuid):
        return log
    if log and not log.endswith(b"\n"):
        log += b"\n"
    return log + f"{when} 1 {_check_uuid(uuid)}\n".encode()


def uuid_log_line(uuid: str, description: str, when: str) -> str:
    if any(c.isspace() and c != " " for c in description):
        raise DssError(f"repository description {description!r} holds a line break or tab")
    return f"{_check_uuid(uuid)} {description} timestamp={when}\n"


def remote_log_line(uuid: str, config: dict[str, str], when: str) -> str:
    for k, v in config.items():
        if not k or not v or any(c.isspace() for c in k + v) or "=" in k:
            raise DssError(f"special remote setting {k}={v!r} cannot be written to remote.log: "
                           "no whitespace (a store path with spaces? move the store)")
    fields = " ".join(f"{k}={config[k]}" for k in sorted(config))
    return f"{_check_uuid(uuid)} {fields} timestamp={when}\n"

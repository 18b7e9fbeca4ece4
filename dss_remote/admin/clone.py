"""`dss clone` and `dss verify-remote`: a clone of a store's dataset that can push back.

git-annex refuses to send content or pushes anywhere while a special remote that `git annex init`
autoenabled in a clone is unverified (`git annex verifyremote`). The store's remote (ours, `dss`,
or DataLad's `ora`) is verified here only when the configuration git-annex shows for it points at
the very store, and the very dataset, that the user named: the store of `dss clone SOURCE`, the
store of `dss verify-remote --store URL`, or the store the clone's `origin` came from. A remote
pointing anywhere else is left to the user (`git annex verifyremote NAME`), never verified here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ria_store.errors import ConfigError, DssError, UrlError, one_line
from ria_store.layout import check_dataset_id
from ria_store.urls import StoreUrl, parse_dataset_url, parse_store_url, redact_url

from . import annex_verify
from .sibling import dataset_id
from .tools import require, run_tool, tool_env

logger = logging.getLogger(__name__)

# externaltypes whose `url` and `archive-id` name a RIA store and a dataset in it
RIA_REMOTE_TYPES = ("dss", "ora")
# the keys of a RIA remote's configuration that name where it reads and writes
_LOCATION_KEYS = ("url", "push-url")
_DEFAULT_PORTS = {"ssh": 22, "http": 80, "https": 443}


@dataclass(frozen=True)
class Refused:
    """A remote left unverified, and why."""

    remote: str
    reason: str
    fix: str


@dataclass
class Verification:
    """What `verify_remotes` found and did in one clone."""

    repo: Path
    expected: str  # the dataset the remotes had to point at, as `ria+…://store#id`
    verified: list[str] = field(default_factory=list)  # verified now
    unchanged: list[str] = field(default_factory=list)  # verified before, unchanged since
    not_needed: list[str] = field(default_factory=list)  # this git-annex predates verification
    refused: list[Refused] = field(default_factory=list)  # left unverified (still blocks pushes)
    publish_depends: list[str] = field(default_factory=list)  # `origin` now publishes through these

    def blocked(self) -> DssError | None:
        """The error to report when git-annex will still refuse pushes from this clone."""
        if not self.refused:
            return None
        return DssError(f"git-annex still refuses pushes from {self.repo}: " + "; ".join(
            f"{r.remote} {r.reason} ({r.fix})" for r in self.refused))


@dataclass(frozen=True)
class Cloned:
    """What `clone` made."""

    path: Path
    dataset_id: str
    verification: Verification


def clone(source: str, path: Path | None = None, env: Mapping[str, str] | None = None) -> Cloned:
    """`datalad clone SOURCE [PATH]`, then verify the remote that points at SOURCE's store.

    A bad SOURCE is refused before anything is written. Remotes pointing elsewhere are left
    unverified and reported in the result (`Verification.blocked()`); the clone stays. `env` is
    the clone's environment (default: `tools.tool_env()`)."""
    try:
        ds_url = parse_dataset_url(source)
    except UrlError as e:
        raise UrlError(f"dss clone: {e}") from e
    env = env if env is not None else tool_env()
    require("git", "git-annex", "datalad", env=env)
    if path is not None and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"clone target {path} exists and is not an empty directory; "
                          "choose another path")
    cmd = ["datalad", "-f", "json", "clone", source] + ([str(path)] if path is not None else [])
    res = run_tool(*cmd, env=env, check=False)
    records = _json_records(res.stdout)
    where = [Path(str(r["path"])) for r in records
             if r.get("action") == "install" and r.get("status") in ("ok", "notneeded") and "path" in r]
    if res.returncode != 0 or not where:
        problems = [str(r.get("message")) for r in records if r.get("status") in ("error", "impossible")]
        raise DssError(f"`datalad clone {redact_url(source)}` failed: "
                       f"{one_line('; '.join(problems) or res.stderr or res.stdout) or res.returncode}")
    repo = where[0]
    dsid = ds_url.dataset_id or dataset_id(repo)
    logger.info("cloned %s into %s (dataset %s)", source, repo, dsid)
    return Cloned(repo, dsid, _verify(repo, ds_url.store, dsid, None))


def verify_remotes(repo: Path, store: str | None = None, remote: str | None = None) -> Verification:
    """Verify the RIA remotes of clone `repo` that point at `store` (default: the store `origin`
    came from) and at the clone's dataset; `remote` limits it to that one, and refuses it
    (ConfigError, nothing verified) when it points anywhere else."""
    named = _named_store(store) if store is not None else None
    repo = repo.resolve()
    try:
        dsid = dataset_id(repo)
    except ConfigError as e:
        raise ConfigError(f"{repo} is no clone of a DataLad dataset (no datalad.dataset.id in "
                          ".datalad/config); run dss verify-remote in the clone or pass -d CLONE") from e
    return _verify(repo, named or origin_store(repo), dsid, remote)


def origin_store(repo: Path) -> StoreUrl:
    """The store the clone's `origin` is a dataset of (`<store>/<id[:3]>/<id[3:]>` or
    `<store>/alias/<name>`); ConfigError naming the fix when it is none."""
    url = run_tool("git", "-C", str(repo), "config", "remote.origin.url", check=False).stdout.strip()
    fix = "name the store: dss verify-remote --store ria+file:///path/to/store"
    if not url:
        raise ConfigError(f"{repo} has no remote origin, so the store it came from is unknown; {fix}")
    scheme, netloc, path = _split_git_url(url)
    parts = path.rstrip("/").split("/")
    in_store = len(parts) >= 3 and (
        (parts[-2] == "alias" and bool(parts[-1]))
        or (len(parts[-2]) == 3 and _is_dataset_id(parts[-2] + parts[-1])))
    if scheme is None or not in_store:
        raise ConfigError(f"origin of {repo} ({redact_url(url)}) is not a dataset in a RIA store; {fix}")
    return parse_store_url(f"ria+{scheme}://{netloc}{'/'.join(parts[:-2]) or '/'}")


def same_store(a: StoreUrl, b: StoreUrl) -> bool:
    """Whether two store URLs name the same store: the same directory (symlinks resolved) for
    ria+file, else the same scheme, host, port and path (the user name does not move a store)."""
    if a.scheme != b.scheme:
        return False
    if a.is_local:
        return os.path.realpath(a.path) == os.path.realpath(b.path)
    return ((a.host or "").lower(), a.port or _DEFAULT_PORTS.get(a.scheme), a.path) == (
        (b.host or "").lower(), b.port or _DEFAULT_PORTS.get(b.scheme), b.path)


def _verify(repo: Path, su: StoreUrl, dsid: str, only: str | None) -> Verification:
    expected = f"{redact_url(su.url)}#{dsid}"
    v = Verification(repo, expected)
    remotes = annex_verify.special_remotes(repo)
    if only is not None:
        named = [r for r in remotes if r.name == only]
        if not named:
            raise ConfigError(f"{repo} has no special remote {only!r} (it has: "
                              f"{', '.join(r.name for r in remotes) or 'none'}); pick one of those")
        if named[0].externaltype not in RIA_REMOTE_TYPES:
            raise ConfigError(f"remote {only!r} in {repo} is no dss or ora remote, so dss cannot tell "
                              f"where it points; check it yourself: git annex verifyremote {only}")
        remotes = named
    for r in remotes:
        if r.externaltype not in RIA_REMOTE_TYPES:
            if r.verified == annex_verify.AUTOENABLED_UNVERIFIED:
                v.refused.append(Refused(r.name, "is an autoenabled special remote dss cannot judge",
                                         f"check where it points: git annex verifyremote {r.name}"))
            continue
        pending = annex_verify.pending(repo, r.name)
        if isinstance(pending, str):  # nothing to confirm
            (v.unchanged if pending == "unchanged" else v.not_needed).append(r.name)
            continue
        reason = _mismatch(pending.config, su, dsid)
        if reason is None:
            annex_verify.confirm(repo, pending)
            v.verified.append(r.name)
            continue
        if only is not None:
            raise ConfigError(f"remote {only!r} in {repo} {reason}, not at {expected}; nothing verified "
                              f"(if you expect that location, name its store with --store, or check it "
                              f"yourself: git annex verifyremote {only})")
        v.refused.append(Refused(r.name, f"{reason}, not at {expected}",
                                 f"if you expect that location: dss verify-remote -d {repo} --remote "
                                 f"{r.name} --store <its store URL>"))
    _publish_through(repo, su, v)
    return v


def _mismatch(config: Mapping[str, str], su: StoreUrl, dsid: str) -> str | None:
    """None when the shown configuration is a RIA remote on store `su` and dataset `dsid`, else
    what it points at instead."""
    if config.get("type") != "external" or config.get("externaltype") not in RIA_REMOTE_TYPES:
        return (f"is configured as type={config.get('type')} externaltype={config.get('externaltype')} "
                "in the git-annex branch")
    if not config.get("url"):
        return "names no store url"
    for key in _LOCATION_KEYS:
        if key not in config:
            continue
        try:
            other = parse_store_url(config[key])
        except UrlError:
            return f"has {key}={redact_url(config[key])!r}, no RIA store URL"
        if not same_store(other, su):
            return f"points at {redact_url(config[key])}" + (" for pushes" if key == "push-url" else "")
    archive_id = config.get("archive-id")
    if archive_id != dsid:
        return f"points at dataset {archive_id or '(none)'} of {redact_url(config['url'])}"
    return None


def _publish_through(repo: Path, su: StoreUrl, v: Verification) -> None:
    """Make `datalad push --to origin` send content through the remotes verified now, as DataLad
    does for an ora remote it recognises: only when origin is this very store."""
    if not v.verified:
        return
    try:
        if not same_store(origin_store(repo), su):
            return
    except ConfigError:
        return
    key = "remote.origin.datalad-publish-depends"
    have = run_tool("git", "-C", str(repo), "config", "--get-all", key, check=False).stdout.split()
    for name in v.verified:
        if name not in have:
            run_tool("git", "-C", str(repo), "config", "--add", key, name)
            v.publish_depends.append(name)


def _named_store(store: str) -> StoreUrl:
    try:
        return parse_store_url(store)
    except UrlError as e:
        raise UrlError(f"--store: {e}") from e


def _split_git_url(url: str) -> tuple[str | None, str, str]:
    """(RIA scheme, netloc, path) of a git remote url, scheme None when it is no kind a store has."""
    if url.startswith("/"):
        return "file", "", url
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "file", "", parts.path
    if parts.scheme in ("ssh", "http", "https"):
        return parts.scheme, parts.netloc, parts.path
    host, colon, path = url.partition(":")
    if colon and path.startswith("/") and "/" not in host:  # scp-like host:/path
        return "ssh", host, path
    return None, "", url


def _is_dataset_id(text: str) -> bool:
    try:
        check_dataset_id(text)
    except DssError:
        return False
    return True


def _json_records(stdout: str) -> list[dict[str, object]]:
    records = []
    for line in stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records

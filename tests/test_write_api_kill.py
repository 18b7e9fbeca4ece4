"""kill -9 of `dss serve` during writes (issue 19): a direct upload and a PUT bundle, each at 20
random points. Afterwards no replica holds a partial key, the dataset's branch and its git-annex
branch are either untouched or hold the whole version, and the retried request succeeds.

The server (uvicorn, tests/api_server.py) is SIGKILLed alone or with its process group (then the
git it runs dies too), at a random time after the client's request started; what it had started is
waited for, the store is checked with the server down, then a new server over the same store
serves the retry. `DSS_TEST_KILL_SEED=N` replays a run (the seed is printed and in every failure)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cloud_servers import LoopbackServer, MirrorFixture, s3_admin_client
from conftest import dss, require_tool, run
from kill_points import Background, seeded, servers
from test_write_api import ALICE, SPEC, TUS, entry, put_bundle, upload, version

from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from dss_remote.history import bundle_store
from dss_remote.service import file_pool
from ria_store import annex_branch, bare_repo, repo_write
from ria_store.errors import KeyFormatError
from ria_store.keys import parse_key, unsanitize_key
from ria_store.layout import OBJECTS_DIR, dataset_relpath

KILLS = 20
MAIN = "refs/heads/main"
ANNEX = "refs/heads/git-annex"
#: an upload's body: a few MiB in small chunks, so that kills land mid-body
UPLOAD_SIZE, CHUNK = 4 << 20, 64 << 10
#: files deposited for the bundle, and how many a new version of the existing dataset adds
BUNDLE_FILES, ADDED_FILES = 30, 3
#: `dss fsck --deep` and datalad clone + get of the dataset every this many kills (fsck of the
#: whole store after the last)
CLONE_EVERY = 5


def _sha256_ok(key_name: str, data: bytes) -> bool:
    """Whether `data` is the content a SHA256E key names (its size and digest)."""
    key = parse_key(key_name)
    assert key.backend == "SHA256E", key_name
    return (key.size in (None, len(data)) and
            hashlib.sha256(data).hexdigest() == key.name.split(".", 1)[0])


def _key_named(path: str) -> str | None:
    """The key a file's name is, or None (a temp file)."""
    try:
        return parse_key(unsanitize_key(path.rsplit("/", 1)[-1])).text
    except KeyFormatError:
        return None


# -- upload -------------------------------------------------------------------------------------

def _pool_is_whole(store: Path) -> list[str]:
    """What a reader of the file pool could see wrong: a record without its object, or an object
    that is not the content its key names."""
    wrong = []
    pool = file_pool.pool_dir(store)
    for record_path in sorted((pool / "records").glob("*/*.json")):
        record = file_pool.FileRecord.from_json(json.loads(record_path.read_bytes()))
        obj = file_pool.object_path(store, record.key)
        if not obj.is_file():
            wrong.append(f"record {record_path.name} without its object {record.key}")
        elif hashlib.sha256(obj.read_bytes()).hexdigest() != record.checksums["sha256"]:
            wrong.append(f"record {record_path.name}: object {record.key} has other bytes")
    for obj in sorted(p for p in (pool / "objects").rglob("*") if p.is_file()):
        key = _key_named(obj.name)
        if key is None:
            wrong.append(f"a file that is no key among the pool's objects: {obj}")
        elif not _sha256_ok(key, obj.read_bytes()):
            wrong.append(f"pool object {key} does not have the content its key names")
    return wrong


def _chunks(data: bytes) -> Iterator[bytes]:
    for at in range(0, len(data), CHUNK):
        time.sleep(0.001)  # the body takes a while to arrive, as over a real network
        yield data[at:at + CHUNK]


def _patch(location: str, data: bytes, offset: int) -> requests.Response:
    return requests.patch(location, data=_chunks(data[offset:]), timeout=60, headers=ALICE | TUS | {
        "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})


def _put_file(url: str, fuuid: str, fversion: str, source: str,
              headers: dict[str, str] = ALICE) -> requests.Response:
    return requests.put(f"{url}/v1/files/{fuuid}?version={fversion}", headers=headers, timeout=60,
                        json={"creator_uid": 7, "source_url": source})


@dataclass
class _Upload:
    """One client's upload: its bytes, its URL path, the file uuid and version it deposits."""

    data: bytes
    path: str
    fuuid: str
    fversion: str
    #: what the client was doing: PATCH, PUT or done (kills are reported with it)
    phase: str = "PATCH"

    def send(self, url: str) -> tuple[int, int | None]:
        """PATCH the whole body, then PUT /v1/files naming it: (PATCH status, PUT status)."""
        patched = _patch(url + self.path, self.data, 0)
        if patched.status_code != 204:
            return patched.status_code, None
        self.phase = "PUT"
        put = _put_file(url, self.fuuid, self.fversion, url + self.path).status_code
        self.phase = "done"
        return 204, put


def _start_upload(url: str, data: bytes) -> _Upload:
    res = requests.post(f"{url}/v1/uploads", headers=ALICE | TUS | {"Upload-Length": str(len(data))},
                        timeout=30)
    assert res.status_code == 201, res.text
    return _Upload(data, urlsplit(res.headers["Location"]).path, str(uuidlib.uuid4()), version())


def _resume(store: Path, url: str, up: _Upload, answered: tuple[int, int | None] | None, where: str) -> None:
    """What a client does after the cut: HEAD, PATCH the rest from the server's offset, PUT the
    file again (200 when the cut one had deposited it, as the DSS answers the identical thing)."""
    if answered == (204, 201):
        return  # the client had its answer before the kill: nothing to retry
    head = requests.head(url + up.path, headers=ALICE | TUS, timeout=30)
    assert head.status_code in (200, 404), f"{where}: HEAD of the upload answered {head.status_code}"
    if head.status_code == 200:
        offset = int(head.headers["Upload-Offset"])
        assert 0 <= offset <= len(up.data), f"{where}: offset {offset}"
        if offset < len(up.data):
            res = _patch(url + up.path, up.data, offset)
            assert res.status_code == 204, f"{where}: the resumed PATCH from {offset}: {res.text}"
            assert res.headers["Upload-Offset"] == str(len(up.data)), where
    expected = 201 if file_pool.lookup(store, up.fuuid, up.fversion) is None else 200
    res = _put_file(url, up.fuuid, up.fversion, url + up.path)
    assert res.status_code == expected, f"{where}: the retried PUT /v1/files: {res.status_code} {res.text}"


@pytest.mark.slow(30)
def test_a_kill_9_of_the_server_during_an_upload_loses_nothing_and_the_retry_succeeds(
        store: Path, tmp_path: Path) -> None:
    seed, rng = seeded("upload kills")
    with servers(store, SPEC, tmp_path / "srv") as srvs:
        url = srvs.start().url
        took = []
        for _ in range(3):
            timing = _start_upload(url, os.urandom(UPLOAD_SIZE))
            started = time.monotonic()
            assert timing.send(url) == (204, 201)
            took.append(time.monotonic() - started)
        full = sorted(took)[1]
        for i in range(KILLS):
            up = _start_upload(url, os.urandom(UPLOAD_SIZE))
            client = Background(lambda up=up, url=url: up.send(url))  # type: ignore[misc]
            delay = rng.uniform(0, full * 1.1)
            time.sleep(delay)
            how = srvs.kill(group=rng.random() < 0.5)
            answered = client.join()
            where = (f"seed {seed}, kill {i} of the {how} {delay:.3f}s into a {full:.3f}s upload, "
                     f"client in {up.phase} ({answered or client.error!r})")
            assert _pool_is_whole(store) == [], where
            print(where)
            url = srvs.start().url
            _resume(store, url, up, answered, where)
            record = file_pool.lookup(store, up.fuuid, up.fversion)
            assert record is not None, where
            sha256 = hashlib.sha256(up.data).hexdigest()
            assert record.key == file_pool.key_for(sha256, len(up.data), ""), where
            assert file_pool.object_path(store, record.key).read_bytes() == up.data, where
            assert requests.head(url + up.path, headers=ALICE | TUS, timeout=30).status_code == 404, where
            assert _pool_is_whole(store) == [], where


# -- PUT bundle ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Branches:
    """A dataset's branch and git-annex tips and its recorded versions (None: no repo yet)."""

    main: str | None
    annex: str | None
    versions: tuple[str, ...]


def _repo(store: Path, buuid: str) -> Path:
    return store / dataset_relpath(buuid)


def _branches(store: Path, buuid: str) -> _Branches:
    repo = _repo(store, buuid)
    recorded = tuple(bundle_store.versions(store, buuid))
    if not (repo / "HEAD").is_file():
        return _Branches(None, None, recorded)
    return _Branches(bare_repo.rev_parse(repo, MAIN), bare_repo.rev_parse(repo, ANNEX), recorded)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={repo}", *args], capture_output=True, text=True,
                          check=True).stdout


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class _Replicas:
    """The store and its S3 mirror, read directly (not through dss) to judge what a kill left."""

    store: Path
    s3: Any
    bucket: str
    prefix: str

    def posix(self, buuid: str) -> dict[str, bytes]:
        """Every key object of the dataset on the store: {key: bytes}; temp files left out."""
        base = _repo(self.store, buuid) / OBJECTS_DIR
        found = {}
        for obj in base.rglob("*"):
            key = _key_named(obj.name) if obj.is_file() else None
            if key is not None:
                found[key] = obj.read_bytes()
        return found

    def bucket_keys(self, buuid: str) -> dict[str, bytes]:
        """Every key object of the dataset in the bucket: {key: bytes}."""
        found = {}
        start = f"{self.prefix}/{dataset_relpath(buuid)}/{OBJECTS_DIR}/"
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", []):
                key = _key_named(item["Key"])
                if key is not None:
                    found[key] = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
        return found

    def partial(self, buuid: str) -> list[str]:
        """Key objects, on any replica, without the content their key names."""
        return [f"{where}: {key}" for where, held in (("store", self.posix(buuid)),
                                                      ("s3", self.bucket_keys(buuid)))
                for key, data in held.items() if not _sha256_ok(key, data)]

    def lacking(self, buuid: str, keys: set[str]) -> list[str]:
        return [f"{where}: {key}" for where, held in (("store", set(self.posix(buuid))),
                                                      ("s3", set(self.bucket_keys(buuid))))
                for key in sorted(keys - held)]


def _git_fsck(repo: Path) -> str:
    res = subprocess.run(["git", f"--git-dir={repo}", "fsck", "--no-progress", "--no-dangling"],
                         capture_output=True, text=True, check=False)
    bad = [line for line in (res.stdout + res.stderr).splitlines()
           if line.split(":")[0].split()[:1] and line.split()[0] in ("error", "missing", "broken", "fatal")]
    if res.returncode == 0 and not bad:
        return ""
    return f"git fsck exited {res.returncode}: {res.stdout}{res.stderr}"


def _whole_version(store: Path, buuid: str, bversion: str, parent: str | None, files: dict[str, str], *,
                   replicas: _Replicas) -> list[str]:
    """What is wrong with the branch tip as version `bversion` (one commit on `parent`, every file
    as the symlink to its key, every key on git-annex's location log and on every replica)."""
    repo = _repo(store, buuid)
    tip = bare_repo.rev_parse(repo, MAIN)
    annex = bare_repo.rev_parse(repo, ANNEX)
    assert tip is not None and annex is not None
    wrong = []
    subject = _git(repo, "log", "-1", "--format=%s", tip).strip()
    if subject != f"[DSS] bundle version {bversion}":
        wrong.append(f"the branch tip {tip} is {subject!r}")
    parents = _git(repo, "log", "-1", "--format=%P", tip).split()
    if parents != ([parent] if parent else []):
        wrong.append(f"the branch tip {tip} has parents {parents}, not {parent}: a second commit?")
    listing = repo_write.tree_listing(repo, tip)
    for name, key in files.items():
        if listing.get(name) != ("120000", _blob_id(annex_branch.symlink_target(name, key).encode())):
            wrong.append(f"{name} is not the symlink to {key} in {tip}")
    storage = _git(repo, "config", "--get", "datalad.ora-remote.uuid").strip()
    logs = repo_write.read_paths(repo, annex, [annex_branch.location_log_path(k) for k in files.values()])
    for key in set(files.values()):
        if not annex_branch.present_in(logs.get(annex_branch.location_log_path(key), b""), storage):
            wrong.append(f"{key} is not on git-annex's location log of {annex} as held by {storage}")
    wrong += [f"key of the commit not on {w}" for w in replicas.lacking(buuid, set(files.values()))]
    return wrong


def _annex_ahead(store: Path, buuid: str, annex: str | None, keys: set[str], *,
                 replicas: _Replicas) -> list[str]:
    """What is wrong with git-annex moved ahead of the branch (the write moves it first): every
    bundle key it logs as held by the store must be on every replica."""
    repo = _repo(store, buuid)
    assert annex is not None
    storage = _git(repo, "config", "--get", "datalad.ora-remote.uuid").strip()
    logs = repo_write.read_paths(repo, annex, [annex_branch.location_log_path(k) for k in keys])
    logged = {k for k in keys
              if annex_branch.present_in(logs.get(annex_branch.location_log_path(k), b""), storage)}
    return [f"git-annex, ahead of the branch, logs a key that is not on {missing}"
            for missing in replicas.lacking(buuid, logged)]


def _after_kill(store: Path, buuid: str, bversion: str, before: _Branches, files: dict[str, str], *,
                replicas: _Replicas) -> tuple[_Branches, list[str]]:
    """The dataset after a kill: untouched, or the whole version (recorded or not); what is wrong."""
    now = _branches(store, buuid)
    wrong = replicas.partial(buuid)
    if now.main == before.main:
        if now.annex != before.annex:  # ahead of the branch: only true facts (keys the store holds)
            wrong += _annex_ahead(store, buuid, now.annex, set(files.values()), replicas=replicas)
        if bversion in now.versions:
            wrong.append(f"version {bversion} recorded, but the branch is still at {before.main}")
        if now.main is None and now.versions:
            wrong.append(f"versions {now.versions} recorded for a dataset without a repo")
    else:
        if now.annex == before.annex:
            wrong.append(f"the branch moved ({before.main} -> {now.main}) without git-annex")
        wrong += _whole_version(store, buuid, bversion, before.main, files, replicas=replicas)
        if bversion in now.versions and bundle_store.load(store, buuid, bversion).head.commit != now.main:
            wrong.append(f"version {bversion} is recorded with another commit than the tip {now.main}")
    if now.main is not None:
        fsck = _git_fsck(_repo(store, buuid))
        if fsck:
            wrong.append(fsck)
    return now, wrong


def _fsck_problems(store: Path, buuid: str) -> list[dict[str, Any]]:
    """`dss fsck --deep` of the dataset: the findings that are problems."""
    res = subprocess.run([require_tool("dss"), "fsck", str(store), "--dataset", buuid, "--deep", "--json"],
                         capture_output=True, text=True, check=False)
    assert res.stdout, res.stderr
    return [f for f in json.loads(res.stdout)["findings"] if f["kind"] not in ("in-progress", "unverified")]


def _clone_and_get(store: Path, buuid: str, contents: dict[str, bytes], clone: Path) -> None:
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{buuid}", clone)
    run("datalad", "-l", "error", "get", ".", cwd=clone)
    for name, data in contents.items():
        assert (clone / name).read_bytes() == data, name


def _deposit(url: str, data: bytes, headers: dict[str, str]) -> tuple[str, str]:
    location = upload(url, data, headers)
    fuuid, fversion = str(uuidlib.uuid4()), version()
    res = _put_file(url, fuuid, fversion, location, headers)
    assert res.status_code == 201, res.text
    return fuuid, fversion


@dataclass
class _Bundle:
    """The files of a bundle (deposited by the client signed in with `headers`): what the client
    names, the keys and the bytes."""

    headers: dict[str, str]
    entries: list[dict[str, Any]]
    keys: dict[str, str]
    contents: dict[str, bytes]

    def add(self, url: str, store: Path, name: str, data: bytes) -> None:
        fuuid, fversion = _deposit(url, data, self.headers)
        record = file_pool.lookup(store, fuuid, fversion)
        assert record is not None
        self.entries.append(entry(name, fuuid, fversion))
        self.keys[name] = record.key
        self.contents[name] = data

    def plus(self, url: str, store: Path, added: dict[str, bytes]) -> _Bundle:
        more = _Bundle(self.headers, list(self.entries), dict(self.keys), dict(self.contents))
        for name, data in added.items():
            more.add(url, store, name, data)
        return more


def _put(url: str, buuid: str, bversion: str, bundle: _Bundle) -> requests.Response:
    return put_bundle(url, buuid, bversion, bundle.entries, bundle.headers)


def _timed_put(url: str, buuid: str, bundle: _Bundle) -> float:
    started = time.monotonic()
    res = _put(url, buuid, version(), bundle)
    assert res.status_code == 201, res.text
    return time.monotonic() - started


@pytest.mark.slow(240)
def test_a_kill_9_of_the_server_during_a_put_bundle_leaves_no_half_made_version_and_the_retry_succeeds(
        store: Path, tmp_path: Path, s3_mirror: MirrorFixture, s3_server: LoopbackServer) -> None:
    require_tool("datalad")
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    bucket, _, prefix = s3_mirror.url[len("s3://"):].partition("/")
    replicas = _Replicas(store, s3_admin_client(s3_server.endpoint), bucket, prefix)
    # the store's own gate: a dataset's creator keeps write on it across server restarts
    token = dss("token", "create", store, "--user", "alice", "--group", "producers")[1].strip()
    dss("acl", "default", store, "--create", "producers")
    seed, rng = seeded("put bundle kills")
    with servers(store, {}, tmp_path / "srv", factory="store_gate_factory:app") as srvs:
        url = srvs.start().url
        base = _Bundle({"Authorization": f"Bearer {token}"}, [], {}, {})
        for n in range(BUNDLE_FILES):
            base.add(url, store, f"data/{n:02d}.bin", os.urandom(rng.randint(20_000, 300_000)))
        # how long a PUT takes: of a new dataset (every key copied), and a new version of one
        # (a few new keys); kills land anywhere in that time (and a little after)
        existing = str(uuidlib.uuid4())
        full_new = min(_timed_put(url, buuid, base) for buuid in (existing, str(uuidlib.uuid4())))
        full_version = min(
            _timed_put(url, existing, base.plus(url, store, {f"first/{n}.bin": os.urandom(1 << 17)}))
            for n in range(2))
        for i in range(KILLS):
            new = i % 2 == 0
            if new:
                buuid, bundle, full = str(uuidlib.uuid4()), base, full_new
            else:
                buuid, full = existing, full_version
                bundle = base.plus(url, store, {f"added/{i}-{k}.bin": os.urandom(rng.randint(50_000, 200_000))
                                                for k in range(ADDED_FILES)})
            bversion = version()
            before = _branches(store, buuid)
            client = Background(lambda url=url, buuid=buuid, bversion=bversion, bundle=bundle:  # type: ignore[misc]
                                _put(url, buuid, bversion, bundle))
            delay = rng.uniform(0, full * 1.1)
            time.sleep(delay)
            how = srvs.kill(group=rng.random() < 0.5)
            answered = client.join()
            kind = "new dataset" if new else "new version"
            where = (f"seed {seed}, kill {i} of the {how} {delay:.3f}s into a {full:.3f}s PUT of a {kind} "
                     f"{buuid} ({answered.status_code if answered is not None else repr(client.error)})")
            now, wrong = _after_kill(store, buuid, bversion, before, bundle.keys, replicas=replicas)
            state = ("untouched" if now.main == before.main else
                     "recorded" if bversion in now.versions else "committed, not recorded")
            where += f", left {state}"
            print(where)
            assert wrong == [], f"{where}: {wrong}"

            url = srvs.start().url
            res = _put(url, buuid, bversion, bundle)
            assert res.status_code == (200 if bversion in now.versions else 201), f"{where}: retry {res.text}"
            after = _branches(store, buuid)
            assert after.versions.count(bversion) == 1 and after.versions[-1] == bversion, where
            assert after.versions[:-1] == before.versions, where
            if now.main != before.main:
                assert after.main == now.main, f"{where}: the retry wrote a second commit"
            assert _whole_version(store, buuid, bversion, before.main, bundle.keys,
                                  replicas=replicas) == [], where
            assert bundle_store.load(store, buuid, bversion).head.commit == after.main, where
            assert replicas.partial(buuid) == [] and _git_fsck(_repo(store, buuid)) == "", where
            if i % CLONE_EVERY == CLONE_EVERY - 1:  # (and the whole store's fsck at the end)
                assert _fsck_problems(store, buuid) == [], where
                _clone_and_get(store, buuid, bundle.contents, tmp_path / f"clone-{i}")
    code, out, err = dss("fsck", store, "--deep")
    assert code == 0, out + err

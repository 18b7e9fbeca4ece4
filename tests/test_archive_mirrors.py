"""Keys packed in `archives/archive.7z`, read from a mirror by ranged reads when the store is gone.

Every test runs on three kinds of mirror (the `site` fixture): fsspec memory:// in this process,
buckets on moto_server (S3) and on the GCS emulator, both real servers on 127.0.0.1, reached through
a proxy per mirror that a test can take down. Each mirror holds only the archive (no loose objects),
as after `dss sync` of a packed store; test_e2e_archive_mirrors drives the same through git-annex.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cloud_servers import LoopbackServer, MirrorFixture, SwitchableProxy
from conftest import PLAIN_DSID
from leftover_processes import wait_for_detached
from test_archive import corrupt, pack_7z, stage

from dss_remote.admin.store import add_mirror
from dss_remote.backends.base import Backend
from dss_remote.backends.gcs import GcsBackend
from dss_remote.backends.s3 import S3Backend
from dss_remote.cli import main as cli_main
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.dataset_objects import DatasetObjects
from dss_remote.replication.replica import Replica
from dss_remote.replication.replica_set import ReplicaSet
from dss_remote.replication.store_replicas import StoreReplicas, open_replicas
from ria_store import archive as archive_mod
from ria_store.archive import RANGE_CHUNK, load_index
from ria_store.atomic import TMP_PREFIX
from ria_store.errors import ArchiveError, NotFoundError, UnavailableError, WriteError
from ria_store.keys import AnnexKey, parse_key
from ria_store.layout import (
    ARCHIVE_PATH,
    OBJECTS_DIR,
    VERSION_FILE,
    archive_members,
    dataset_relpath,
    object_relpath,
)

MiB = 1 << 20
DS = dataset_relpath(PLAIN_DSID)
ARCHIVE_REL = f"{DS}/{ARCHIVE_PATH}"
FIX_HINT = "restore the archive from a replica or re-pack it"


def md5_key(data: bytes, ext: str) -> AnnexKey:
    return parse_key(f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}{ext}")


def sample() -> dict[AnnexKey, bytes]:
    """Empty, tiny, small, and one member larger than RANGE_CHUNK (several ranged reads)."""
    datas = [b"", b"x", os.urandom(1000), os.urandom(70_000), os.urandom(RANGE_CHUNK + 3 * MiB + 5)]
    return {md5_key(d, f".{i}"): d for i, d in enumerate(datas)}


@dataclass
class Packed:
    store: Path
    keys: dict[AnnexKey, bytes]
    sr: StoreReplicas
    archive: Path

    @property
    def rs(self) -> ReplicaSet:
        return self.sr.for_dataset(PLAIN_DSID)

    def replica(self, name: str) -> Replica:
        return self.rs.named(name)

    def mirror(self, name: str) -> Backend:
        return self.sr.named(name)

    def put_archive(self, name: str, data: bytes) -> None:
        self.mirror(name).write_bytes(ARCHIVE_REL, data)

    def unmount_store(self, tmp_path: Path) -> None:
        wait_for_detached()  # a push's detached `dss sync` would recreate the store's dss/
        os.rename(self.store, tmp_path / "unmounted")


@dataclass
class Site:
    """Where a test's two mirrors m1 and m2 live; `proxies` (real servers only) stand between dss
    and the server, one per mirror, so a test can take one mirror down and bring it back."""

    kind: str
    mirrors: dict[str, Mirror]
    proxies: dict[str, SwitchableProxy] = field(default_factory=dict)

    def short_timeout_backend(self, name: str) -> Backend:
        """A new backend on mirror `name` that gives up on a dead endpoint within seconds (the
        configured ones wait as long as a slow real service needs)."""
        mirror = self.mirrors[name]
        if self.kind == "s3":
            return S3Backend(mirror.url, endpoint_url=mirror.endpoint_url, connect_timeout=0.5,
                             read_timeout=2)
        if self.kind == "gcs":
            return GcsBackend(mirror.url, endpoint_url=mirror.endpoint_url, timeout=0.5)
        raise AssertionError(f"{self.kind} mirrors have no endpoint to time out")


MIRROR_NAMES = ("m1", "m2")


@pytest.fixture(params=["memory", "s3", "gcs"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """memory://, or a fresh bucket on the session's moto_server or GCS emulator (cloud_servers)."""
    kind: str = request.param
    if kind == "memory":
        bucket = uuid.uuid4().hex
        yield Site(kind, {n: Mirror(url=f"memory://{bucket}-{n}/store", name=n) for n in MIRROR_NAMES})
        return
    server: LoopbackServer = request.getfixturevalue(f"{kind}_server")
    first: MirrorFixture = request.getfixturevalue(f"{kind}_mirror")
    assert first.proxy is not None
    second = SwitchableProxy(server.port)
    proxies = {"m1": first.proxy, "m2": second}
    try:
        yield Site(kind, {n: Mirror(url=f"{first.url}/{n}", name=n, endpoint_url=proxies[n].endpoint)
                          for n in MIRROR_NAMES}, proxies)
    finally:
        second.close()


def build_packed(store: Path, dsdir: Path, tmp_path: Path, site: Site, keys: dict[AnnexKey, bytes],
                 *opts: str) -> Packed:
    """The store holds `keys` only in its archive; the two mirrors hold the same archive."""
    staging = stage(tmp_path / "staging", {archive_members(k)[0]: d for k, d in keys.items()})
    archive = pack_7z(staging, dsdir / ARCHIVE_PATH, *opts)
    assert not list((dsdir / OBJECTS_DIR).rglob("*")), "no loose objects"
    for name in MIRROR_NAMES:
        add_mirror(store, site.mirrors[name])
    sr = open_replicas(f"ria+file://{store}", read_config(store))
    for name in MIRROR_NAMES:
        backend = sr.named(name)
        backend.write_bytes(f"{DS}/{VERSION_FILE}", b"2\n")
        backend.put_file(archive, ARCHIVE_REL)
    packed = Packed(store, keys, sr, archive)
    packed.rs  # layout versions are read now, while the store is mounted  # noqa: B018
    return packed


@pytest.fixture
def packed(store: Path, dsdir: Path, tmp_path: Path, site: Site) -> Packed:
    return build_packed(store, dsdir, tmp_path, site, sample(), "-mx0")


def fetch(objects: Replica | ReplicaSet, key: AnnexKey, tmp_path: Path,
          progress: Callable[[int], None] | None = None) -> bytes:
    dst = tmp_path / "annex-tmp" / key.text
    dst.parent.mkdir(exist_ok=True)
    objects.retrieve(key, dst, progress)
    return dst.read_bytes()


def write(tmp_path: Path, data: bytes) -> Path:
    src = tmp_path / f"src-{uuid.uuid4().hex[:8]}"
    src.write_bytes(data)
    return src


def leftovers(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "annex-tmp").iterdir() if p.name.startswith(TMP_PREFIX)]


def count_calls(monkeypatch: pytest.MonkeyPatch, obj: Any, attr: str) -> list[Any]:
    calls: list[Any] = []
    real = getattr(obj, attr)

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(obj, attr, spy)
    return calls


# -- reads ----------------------------------------------------------------------------------------
def test_mirror_archive_serves_every_key_when_the_store_is_gone(packed: Packed, tmp_path: Path) -> None:
    packed.unmount_store(tmp_path)
    for key, data in packed.keys.items():
        calls: list[int] = []
        assert fetch(packed.rs, key, tmp_path, calls.append) == data
        if len(data) > MiB:
            assert calls and calls[-1] == len(data) and calls == sorted(calls)
    assert leftovers(tmp_path) == []


def test_checkpresent_on_a_mirror_sees_archived_keys(packed: Packed, tmp_path: Path) -> None:
    for name in ("m1", "m2"):
        assert all(packed.replica(name).present(k) for k in packed.keys)
    packed.unmount_store(tmp_path)
    key = next(iter(packed.keys))
    assert packed.replica("m1").present(key) and packed.replica("m2").present(key)
    # the set answers by write_quorum: all three by default, so "absent" while the store is away...
    assert packed.rs.present(key) is False
    # ...and present with a quorum the two mirrors' archives meet
    assert ReplicaSet(packed.rs.replicas, quorum=2).present(key) is True
    other = md5_key(b"never stored", ".x")
    assert packed.replica("m1").present(other) is False


def test_index_is_read_once_for_many_keys(packed: Packed, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A `git annex get` of many keys parses the header once; then one ranged read per small key."""
    packed.unmount_store(tmp_path)
    parses = count_calls(monkeypatch, archive_mod, "load_index")
    ranges = count_calls(monkeypatch, packed.mirror("m1"), "read_range")
    small = {k: d for k, d in packed.keys.items() if 0 < len(d) <= RANGE_CHUNK}
    for _ in range(3):
        for key, data in small.items():
            assert fetch(packed.replica("m1"), key, tmp_path) == data
    assert len(parses) == 1
    header_requests = len(ranges) - 3 * len(small)
    assert 1 <= header_requests <= 3, ranges
    big = next(k for k, d in packed.keys.items() if len(d) > RANGE_CHUNK)
    before = len(ranges)
    assert fetch(packed.replica("m1"), big, tmp_path) == packed.keys[big]
    assert len(ranges) - before == -(-big.size // RANGE_CHUNK)  # type: ignore[operator]
    assert len(parses) == 1


def test_a_replaced_archive_is_indexed_again(packed: Packed, tmp_path: Path) -> None:
    m1 = packed.replica("m1")
    first = next(iter(packed.keys))
    assert m1.present(first)
    new = {md5_key(b"a new pack", ".n"): b"a new pack"}
    staging = stage(tmp_path / "staging2", {archive_members(k)[0]: d for k, d in new.items()})
    packed.put_archive("m1", pack_7z(staging, tmp_path / "new.7z", "-mx0").read_bytes())
    (key, data), = new.items()
    assert fetch(m1, key, tmp_path) == data
    assert not m1.present(first)


def test_compressed_archive_on_a_mirror_is_read_with_py7zr_over_ranges(
        store: Path, dsdir: Path, tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """DataLad-made archives may be compressed: the 7z program cannot read a bucket, py7zr can."""
    big = os.urandom(MiB) * 3  # compresses, and spans several of py7zr's reads
    keys = {k: d for k, d in sample().items() if len(d) < MiB} | {md5_key(big, ".z"): big}
    packed = build_packed(store, dsdir, tmp_path, site, keys, "-mx5")
    packed.unmount_store(tmp_path)
    used = count_calls(monkeypatch, archive_mod, "_extract_with_py7zr")
    program = count_calls(monkeypatch, archive_mod, "_extract_with_7z")
    for key, data in keys.items():
        assert fetch(packed.rs, key, tmp_path) == data
    assert len(used) == sum(1 for d in keys.values() if d) and program == []


def test_whereis_names_the_mirror_archive(packed: Packed, tmp_path: Path) -> None:
    key = next(k for k, d in packed.keys.items() if d)
    where = packed.replica("m1").whereis(key)
    assert where == f"{packed.mirror('m1').url}/{ARCHIVE_REL}:{archive_members(key)[0]}"


def test_remove_refuses_a_key_packed_in_a_mirror_archive(packed: Packed, tmp_path: Path) -> None:
    packed.unmount_store(tmp_path)
    key = next(iter(packed.keys))
    with pytest.raises(WriteError, match="also packed"):
        packed.replica("m1").remove(key)
    assert packed.replica("m1").present(key)


# -- bad input -----------------------------------------------------------------------------------------
def assert_names_replica_and_archive(err: BaseException, packed: Packed, name: str, *words: str) -> None:
    msg = str(err)
    assert "\n" not in msg, msg
    assert f"archive {packed.mirror(name).url}/{ARCHIVE_REL}" in msg, msg
    assert FIX_HINT in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg


def test_corrupt_archive_on_a_mirror_falls_back_to_the_next(packed: Packed, tmp_path: Path) -> None:
    data = bytearray(packed.archive.read_bytes())
    data[-20:-12] = bytes(b ^ 0xFF for b in data[-20:-12])  # the header's end
    packed.put_archive("m1", bytes(data))
    packed.unmount_store(tmp_path)
    key, content = next((k, d) for k, d in packed.keys.items() if len(d) == 70_000)
    with pytest.raises(ArchiveError) as ei:
        fetch(packed.replica("m1"), key, tmp_path)
    assert_names_replica_and_archive(ei.value, packed, "m1", "corrupt")
    assert fetch(packed.rs, key, tmp_path) == content  # from m2
    assert leftovers(tmp_path) == []


def test_a_corrupt_archive_is_not_read_again_for_every_key(packed: Packed, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Many keys fall back past a mirror with a broken archive: its header is read once, until
    the archive changes (a `dss sync` or re-pack replaces it)."""
    archive = packed.archive.read_bytes()
    packed.put_archive("m1", archive[:-7])
    packed.unmount_store(tmp_path)
    ranges = count_calls(monkeypatch, packed.mirror("m1"), "read_range")
    for key, data in packed.keys.items():
        assert fetch(packed.rs, key, tmp_path) == data  # from m2
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        packed.replica("m1").present(next(iter(packed.keys)))
    assert 1 <= len(ranges) <= 2, ranges
    packed.put_archive("m1", archive)  # repaired
    assert all(packed.replica("m1").present(k) for k in packed.keys)


def test_truncated_archive_on_a_mirror(packed: Packed, tmp_path: Path) -> None:
    data = packed.archive.read_bytes()
    packed.put_archive("m1", data[:len(data) // 2])
    packed.put_archive("m2", data[:-7])
    packed.unmount_store(tmp_path)
    key = next(k for k, d in packed.keys.items() if len(d) == 1000)
    for name in ("m1", "m2"):
        with pytest.raises(ArchiveError) as ei:
            packed.replica(name).present(key)
        assert_names_replica_and_archive(ei.value, packed, name, "truncated")
    dst = tmp_path / "annex-tmp" / key.text
    with pytest.raises(UnavailableError) as ei2:
        fetch(packed.rs, key, tmp_path)
    msg = str(ei2.value)
    assert "\n" not in msg and "[store]" in msg and "[m1]" in msg and "[m2]" in msg, msg
    assert msg.count("is corrupt or truncated") == 2, msg
    assert leftovers(tmp_path) == []
    assert not dst.exists() or dst.read_bytes() == b"", "no partial content"


def test_corrupt_member_bytes_on_a_mirror_fail_crc_and_fall_back(packed: Packed, tmp_path: Path) -> None:
    key, content = next((k, d) for k, d in packed.keys.items() if len(d) > RANGE_CHUNK)
    member = load_index(packed.archive).get(archive_members(key)[0])
    assert member is not None and member.offset is not None
    corrupted = tmp_path / "corrupted.7z"
    corrupted.write_bytes(packed.archive.read_bytes())
    corrupt(corrupted, member.offset + RANGE_CHUNK + 10)  # in the second ranged read
    packed.put_archive("m1", corrupted.read_bytes())
    packed.unmount_store(tmp_path)
    with pytest.raises(ArchiveError) as ei:
        fetch(packed.replica("m1"), key, tmp_path)
    assert_names_replica_and_archive(ei.value, packed, "m1", "CRC32")
    assert (tmp_path / "annex-tmp" / key.text).read_bytes() == b""  # cut back
    assert fetch(packed.rs, key, tmp_path) == content
    assert leftovers(tmp_path) == []


def test_mirror_lost_during_a_member_read_is_unavailable_not_corrupt(
        packed: Packed, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mirror goes away between two ranged reads of one member. On moto and the GCS emulator
    its proxy stops listening and resets the open connections, as a server that died; memory://
    has no server to lose, so there the second read raises what a backend raises then. Either
    way: "can't tell" (not a corrupt archive), nothing partial, and the mirror serves the key
    again once it is back (the outage is not remembered as a broken archive)."""
    key = next(k for k, d in packed.keys.items() if len(d) > RANGE_CHUNK)
    backend = packed.mirror("m1") if site.kind == "memory" else site.short_timeout_backend("m1")
    m1 = DatasetObjects(backend, PLAIN_DSID, name="m1", mirror_version="2")
    assert m1.present(key)  # index cached
    proxy = site.proxies.get("m1")
    real = backend.read_range
    calls = 0

    def lost_after_the_first_read(relpath: str, start: int, length: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:
            if proxy is None:
                raise UnavailableError(f"replica {backend.url}: cannot reach the endpoint")
            proxy.down()
        return real(relpath, start, length)

    monkeypatch.setattr(backend, "read_range", lost_after_the_first_read)
    with pytest.raises(UnavailableError, match="cannot reach") as ei:
        fetch(m1, key, tmp_path)
    assert not isinstance(ei.value, ArchiveError) and "\n" not in str(ei.value)
    assert str(ei.value).startswith(f"replica {backend.url}: cannot reach"), ei.value
    assert calls == 2
    assert (tmp_path / "annex-tmp" / key.text).read_bytes() == b""
    assert leftovers(tmp_path) == []
    if proxy is not None:
        proxy.up()
    assert fetch(m1, key, tmp_path) == packed.keys[key]


def test_archive_deleted_between_two_ranged_reads_of_a_member(
        packed: Packed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive goes from the server while a member is being read (a re-pack, or an admin's
    delete): the next ranged read's 404 ends the read as "not found" naming the archive, the
    destination is cut back, and the set reads the key from the other mirror."""
    key = next(k for k, d in packed.keys.items() if len(d) > RANGE_CHUNK)
    m1 = packed.replica("m1")
    assert m1.present(key)  # index cached
    backend = packed.mirror("m1")
    real = backend.read_range
    calls = 0

    def delete_after_the_first_read(relpath: str, start: int, length: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:
            backend.remove(ARCHIVE_REL)
        return real(relpath, start, length)

    monkeypatch.setattr(backend, "read_range", delete_after_the_first_read)
    with pytest.raises(NotFoundError) as ei:
        fetch(m1, key, tmp_path)
    assert str(ei.value) == f"replica {backend.url}: {ARCHIVE_REL} not found"
    assert (tmp_path / "annex-tmp" / key.text).read_bytes() == b""
    assert leftovers(tmp_path) == []
    packed.unmount_store(tmp_path)
    assert fetch(packed.rs, key, tmp_path) == packed.keys[key]  # from m2


def test_archive_vanishing_between_head_and_read_means_no_archive(
        packed: Packed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive is deleted on the server right after the HEAD that found it (a re-pack
    replacing it): the ranged read's 404 means "no archive here", not an error."""
    m1 = packed.replica("m1")
    backend = packed.mirror("m1")
    key = next(iter(packed.keys))
    real_info = backend.info
    deleted: list[str] = []

    def info_then_delete(relpath: str) -> Any:
        found = real_info(relpath)
        if relpath == ARCHIVE_REL and found is not None:
            backend.remove(relpath)
            deleted.append(relpath)
        return found

    monkeypatch.setattr(backend, "info", info_then_delete)
    assert m1.archived(key) is None
    assert deleted == [ARCHIVE_REL]
    assert m1.present(key) is False


# -- fsck and sync see archived keys as held ----------------------------------------------------------
def fsck_json(store: Path, capsys: pytest.CaptureFixture[str],
              *extra: str) -> tuple[int, list[dict[str, Any]]]:
    rc = cli_main(["fsck", str(store), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)["findings"]


def test_fsck_counts_archived_keys_as_held(packed: Packed, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A mirror filled before the store was packed keeps loose copies: the store and the other
    mirror hold the same keys in their archives, so nothing is missing anywhere."""
    for key, data in packed.keys.items():
        packed.mirror("m2").put_file(write(tmp_path, data), f"{DS}/{object_relpath(key, '2')}")
    # --deep: memory:// keeps no checksums, so its loose copies are otherwise "unverified"
    assert fsck_json(packed.store, capsys, "--deep") == (0, [])
    assert fsck_json(packed.store, capsys, "--replica", "m1") == (0, [])
    # and `dss sync` copies no loose object back to a replica that has the key packed
    assert cli_main(["sync", str(packed.store)]) == 0
    copied = capsys.readouterr().out
    assert "annex/objects" not in copied, copied
    assert not list((packed.store / DS / OBJECTS_DIR).rglob("*"))
    assert [o.relpath for o in packed.mirror("m1").iter_objects(f"{DS}/{OBJECTS_DIR}")] == []


def test_fsck_finds_a_missing_mirror_archive_and_sync_copies_it(packed: Packed,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    packed.mirror("m2").remove(ARCHIVE_REL)
    rc, findings = fsck_json(packed.store, capsys)
    assert rc == 1
    assert [(f["kind"], f["replica"], f["path"], f["key"]) for f in findings] == [
        ("missing", "m2", ARCHIVE_REL, None)]
    assert "held by m1, store" in findings[0]["detail"]
    assert cli_main(["sync", str(packed.store)]) == 0
    assert f"copied m2: {ARCHIVE_REL}" in capsys.readouterr().out
    assert fsck_json(packed.store, capsys) == (0, [])


def test_fsck_reports_a_corrupt_mirror_archive_and_its_keys_as_missing(
        packed: Packed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, data = next((k, d) for k, d in packed.keys.items() if len(d) == 1000)
    packed.mirror("m2").put_file(write(tmp_path, data), f"{DS}/{object_relpath(key, '2')}")
    archive = packed.archive.read_bytes()
    packed.put_archive("m1", archive[:len(archive) // 2])
    rc, findings = fsck_json(packed.store, capsys, "--deep")
    assert rc == 1
    got = sorted((f["kind"], f["replica"], f["key"]) for f in findings)
    assert got == [("corrupt", "m1", None), ("missing", "m1", key.text)]
    corrupt_finding = next(f for f in findings if f["kind"] == "corrupt")
    assert corrupt_finding["path"] == ARCHIVE_REL
    assert "is corrupt or truncated" in corrupt_finding["detail"] and FIX_HINT in corrupt_finding["detail"]


def test_fsck_deep_hashes_packed_keys_and_names_a_member_that_is_not_its_key(
        store: Path, dsdir: Path, tmp_path: Path, site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """A member whose bytes pass the archive's own CRC32 but are not what its key says (packed
    from a bad file): only hashing with the key's checksum shows it, on every replica."""
    good = sample()
    bad_key = md5_key(b"what the key says", ".bad")
    packed = build_packed(store, dsdir, tmp_path, site, good | {bad_key: b"what the file held"[:17]}, "-mx0")
    assert fsck_json(packed.store, capsys) == (0, [])  # without --deep the header looks fine
    rc, findings = fsck_json(packed.store, capsys, "--deep")
    assert rc == 1
    member = archive_members(bad_key)[0]
    assert sorted((f["kind"], f["replica"], f["path"], f["key"]) for f in findings) == [
        ("corrupt", name, f"{ARCHIVE_REL}:{member}", bad_key.text) for name in ("m1", "m2", "store")]
    assert all("is not the key's" in f["detail"] for f in findings)


def _damaged_copy(packed: Packed, tmp_path: Path, size: int) -> tuple[AnnexKey, Path]:
    """The store's archive with one byte flipped inside the stored member of `size` bytes."""
    key = next(k for k, d in packed.keys.items() if len(d) == size)
    member = load_index(packed.archive).first(archive_members(key))
    assert member is not None and member.offset is not None, "stored (-mx0): bytes at an offset"
    damaged = tmp_path / "damaged.7z"
    damaged.write_bytes(packed.archive.read_bytes())
    corrupt(damaged, member.offset + size // 2)
    return key, damaged


def test_fsck_deep_finds_a_bit_flip_inside_a_mirror_archive(
        packed: Packed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, damaged = _damaged_copy(packed, tmp_path, 70_000)
    packed.mirror("m1").put_file(damaged, ARCHIVE_REL)
    rc, findings = fsck_json(packed.store, capsys, "--deep", "--replica", "m1")
    assert rc == 1
    member = archive_members(key)[0]
    assert [(f["kind"], f["path"], f["key"]) for f in findings] == [
        ("corrupt", f"{ARCHIVE_REL}:{member}", key.text)]
    assert "fails its CRC32 check" in findings[0]["detail"] and FIX_HINT in findings[0]["detail"]
    assert fsck_json(packed.store, capsys, "--deep", "--replica", "m2") == (0, [])


@pytest.mark.parametrize("damage", ["bit flip in a member", "truncated"])
def test_repair_replaces_a_bad_mirror_archive_with_a_good_replicas(
        packed: Packed, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    _key, damaged = _damaged_copy(packed, tmp_path, 70_000)
    if damage == "truncated":
        damaged.write_bytes(packed.archive.read_bytes()[: packed.archive.stat().st_size // 2])
    packed.mirror("m1").put_file(damaged, ARCHIVE_REL)
    assert cli_main(["repair", str(packed.store), "--deep"]) == 0
    out = capsys.readouterr().out
    assert f"repaired m1: {ARCHIVE_REL} (corrupt) copied from store" in out, out
    assert packed.mirror("m1").read_bytes(ARCHIVE_REL) == packed.archive.read_bytes()
    assert fsck_json(packed.store, capsys, "--deep") == (0, [])


def test_repair_of_a_key_packed_bad_everywhere_fails_naming_it(
        store: Path, dsdir: Path, tmp_path: Path, site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """No replica has a good archive or a good copy: nothing is replaced, and the line says so."""
    bad_key = md5_key(b"what the key says", ".bad")
    packed = build_packed(store, dsdir, tmp_path, site, {bad_key: b"what the file hel"}, "-mx0")
    before = packed.mirror("m1").read_bytes(ARCHIVE_REL)
    assert cli_main(["repair", str(packed.store), "--deep"]) != 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "could not repair m1" in ln)
    assert bad_key.text in line and "no good copy" in line, err
    assert packed.mirror("m1").read_bytes(ARCHIVE_REL) == before

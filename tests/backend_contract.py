"""The Backend contract as tests: each backend's test file subclasses BackendContract in a few lines
(ReadContract alone for a read-only backend, whose test places objects with `populate`)."""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pytest

from dss_remote.backends.base import EMPTY_DIR, TEMP_FILE, UPLOAD, Backend, Leftover, ObjectInfo
from dss_remote.backends.checksums import Digests
from ria_store.atomic import TMP_PREFIX
from ria_store.errors import DssError, NotFoundError, UnsafePathError

MiB = 1 << 20
#: above the 8 MiB where S3 goes multipart and GCS resumable
LARGE = 9 * MiB


def local_checksum(name: str, data: bytes, part_size: int | None = None) -> str:
    """What a service's checksum `name` must be for `data` (uploaded in parts of `part_size`
    bytes, for S3's composite CRC32), computed here from the bytes."""
    if name == "crc32":
        return f"{zlib.crc32(data):08x}"
    if name == "crc32-composite":
        assert part_size is not None, "a composite checksum needs the part size"
        parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
        joined = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
        return f"{zlib.crc32(joined):08x}-{len(parts)}"
    if name == "crc32c":
        import google_crc32c

        checksum: Any = google_crc32c.Checksum  # untyped in the library
        return bytes(checksum(data).digest()).hex()
    if name == "md5":
        return hashlib.md5(data).hexdigest()
    if name == "sha256":
        return hashlib.sha256(data).hexdigest()
    raise AssertionError(f"no local implementation of checksum {name!r}")


def write_source(tmp_path: Path, data: bytes, name: str = "src.bin") -> Path:
    src = tmp_path / name
    src.write_bytes(data)
    return src


def fetch(backend: Backend, relpath: str, tmp_path: Path,
          progress: Callable[[int], None] | None = None) -> tuple[int, bytes]:
    """get_file into a fresh file, as the special remote does; (count returned, bytes written)."""
    dst = tmp_path / f"dst-{os.urandom(4).hex()}"
    fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        count = backend.get_file(relpath, fd, progress)
    finally:
        os.close(fd)
    return count, dst.read_bytes()


def listed(backend: Backend, prefix: str) -> dict[str, int]:
    return {o.relpath: o.size for o in backend.iter_objects(prefix)}


def check_progress(calls: list[int], size: int) -> None:
    """Progress is cumulative and ends at the size; a backend may stay silent for tiny files."""
    if size >= MiB:
        assert calls, "no progress reported"
    if calls:
        assert calls[-1] == size
    assert all(0 <= c <= size for c in calls)


UNSAFE = ["../x", "a/../../x", "/abs/x", "", "a/\x00/b"]
#: object names as RIA stores hold them, with the characters git-annex keys may carry
ODD_NAMES = ["Ab/cD/WORM-s17-m1--odd,32,38name&c,32100&s.txt/WORM-s17-m1--odd,32,38name&c,32100&s.txt",
             "x/y/MD5E-s3--d41d8cd98f00b204e9800998ecf8427e.tar.gz/MD5E-s3--d41d8cd98f00b204e9800998ecf8427e.tar.gz",
             "q/k/SHA256-s1--a#b?c=d;e+f/SHA256-s1--a#b?c=d;e+f"]


def _call(backend: Backend, method: str, relpath: str, src: Path, fd: int) -> Any:
    calls: dict[str, Callable[[], Any]] = {
        "info": lambda: backend.info(relpath), "get_file": lambda: backend.get_file(relpath, fd),
        "read_range": lambda: backend.read_range(relpath, 0, 10),
        "put_file": lambda: backend.put_file(src, relpath),
        "read_bytes": lambda: backend.read_bytes(relpath),
        "write_bytes": lambda: backend.write_bytes(relpath, b"x"),
        "remove": lambda: backend.remove(relpath),
        "iter_objects": lambda: list(backend.iter_objects(relpath)),
        "iter_leftovers": lambda: list(backend.iter_leftovers(relpath)),
        "remove_leftover": lambda: backend.remove_leftover(
            Leftover(TEMP_FILE, relpath, datetime.now(timezone.utc)))}
    return calls[method]()


def _refuses_unsafe(backend: Backend, method: str, relpath: str, tmp_path: Path) -> None:
    src = write_source(tmp_path, b"data")
    fd = os.open(tmp_path / "dst", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(UnsafePathError):
            _call(backend, method, relpath, src, fd)
    finally:
        os.close(fd)


class ReadContract:
    """Reads. Abstract: subclasses provide a `backend` fixture returning a fresh, empty backend;
    `populate` places objects in it (through the backend, unless it is read-only)."""

    def populate(self, backend: Backend, tmp_path: Path, objects: dict[str, bytes]) -> None:
        for relpath, data in objects.items():
            backend.put_file(write_source(tmp_path, data, f"src-{os.urandom(4).hex()}"), relpath)

    @pytest.mark.parametrize("size", [0, 1, 3 * MiB], ids=["empty", "one-byte", "3MiB"])
    def test_get_file_reads_what_is_stored(self, backend: Backend, tmp_path: Path, size: int) -> None:
        data = os.urandom(size)
        self.populate(backend, tmp_path, {"ab/cd/KEY/KEY": data})
        info = backend.info("ab/cd/KEY/KEY")
        assert info is not None and (info.relpath, info.size) == ("ab/cd/KEY/KEY", size)
        calls: list[int] = []
        assert fetch(backend, "ab/cd/KEY/KEY", tmp_path, calls.append) == (size, data)
        check_progress(calls, size)
        assert calls == sorted(calls)

    def test_read_bytes_reads_a_small_object(self, backend: Backend, tmp_path: Path) -> None:
        self.populate(backend, tmp_path, {"ria-layout-version": b"1\n", "dss/config.json": b"{}\n"})
        assert backend.read_bytes("ria-layout-version") == b"1\n"
        assert backend.read_bytes("dss/config.json") == b"{}\n"

    def test_odd_object_names_read_back(self, backend: Backend, tmp_path: Path) -> None:
        objects = {name: name.encode() for name in ODD_NAMES}
        self.populate(backend, tmp_path, objects)
        for name, data in objects.items():
            info = backend.info(name)
            assert info is not None and info.size == len(data), name
            assert fetch(backend, name, tmp_path) == (len(data), data)
            assert backend.read_bytes(name) == data

    def test_info_of_absent_object_is_none(self, backend: Backend) -> None:
        assert backend.info("no/such/KEY") is None

    def test_get_file_of_absent_object_raises_not_found(self, backend: Backend, tmp_path: Path) -> None:
        with pytest.raises(NotFoundError):
            fetch(backend, "no/such/KEY", tmp_path)

    def test_read_bytes_of_absent_object_raises_not_found(self, backend: Backend) -> None:
        with pytest.raises(NotFoundError):
            backend.read_bytes("no/such/config")

    def test_read_range_reads_like_pread(self, backend: Backend, tmp_path: Path) -> None:
        data = os.urandom(300_000)
        size = len(data)
        self.populate(backend, tmp_path, {"arch/archive.7z": data})
        ranges = [(0, 32), (5, 1), (1000, 70_000), (size - 3, 3), (0, size), (17, size)]
        for start, length in ranges:
            assert backend.read_range("arch/archive.7z", start, length) == data[start:start + length], \
                (start, length)

    @pytest.mark.parametrize(("start", "length"), [(299_990, 100), (300_000, 1), (10 ** 9, 10), (5, 0)],
                             ids=["across-the-end", "at-the-end", "far-beyond", "zero-length"])
    def test_read_range_at_or_beyond_the_end_is_short(self, backend: Backend, tmp_path: Path,
                                                      start: int, length: int) -> None:
        data = os.urandom(300_000)
        self.populate(backend, tmp_path, {"arch/archive.7z": data})
        assert backend.read_range("arch/archive.7z", start, length) == data[start:start + length]

    def test_read_range_of_empty_object_is_empty(self, backend: Backend, tmp_path: Path) -> None:
        self.populate(backend, tmp_path, {"arch/empty": b""})
        assert backend.read_range("arch/empty", 0, 10) == b""

    @pytest.mark.parametrize("length", [10, 0])
    def test_read_range_of_absent_object_raises_not_found(self, backend: Backend, length: int) -> None:
        with pytest.raises(NotFoundError) as ei:
            backend.read_range("no/such/archive.7z", 0, length)
        assert isinstance(ei.value, FileNotFoundError)
        assert "\n" not in str(ei.value) and "no/such/archive.7z" in str(ei.value)

    @pytest.mark.parametrize(("start", "length"), [(-1, 5), (0, -1)])
    def test_read_range_refuses_negative_input(self, backend: Backend, tmp_path: Path,
                                               start: int, length: int) -> None:
        self.populate(backend, tmp_path, {"arch/x": b"0123456789"})
        with pytest.raises(ValueError, match="invalid byte range"):
            backend.read_range("arch/x", start, length)

    @pytest.mark.parametrize("relpath", UNSAFE)
    @pytest.mark.parametrize("method", ["info", "get_file", "read_range", "read_bytes", "iter_objects",
                                        "iter_leftovers"])
    def test_unsafe_relpaths_are_refused(self, backend: Backend, tmp_path: Path, method: str,
                                         relpath: str) -> None:
        _refuses_unsafe(backend, method, relpath, tmp_path)


class BackendContract(ReadContract):
    """Reads and writes. Abstract: subclasses provide a `backend` fixture returning a fresh,
    empty, writable backend, and say what a killed writer leaves on it (`interrupt_write`) and
    whether it has directories (`make_empty_dir`)."""

    def interrupt_write(self, backend: Backend, relpath: str, data: bytes) -> str | None:
        """Leave what a writer killed while writing `data` as `relpath` leaves on this backend;
        the Leftover kind iter_leftovers must list for it, None where nothing is left."""
        raise NotImplementedError(f"{type(self).__name__} must say what a killed writer leaves")

    def make_empty_dir(self, backend: Backend, relpath: str) -> bool:
        """Make directory `relpath` (with its parents) holding nothing; False where the backend
        has no directories."""
        raise NotImplementedError(f"{type(self).__name__} must say whether it has directories")

    #: True for backends whose service keeps checksums (S3, GCS): `recorded` must match them
    has_checksums: ClassVar[bool] = False
    #: the part size of the backend's multipart uploads of LARGE bytes, if it has them
    part_size: ClassVar[int | None] = None

    @pytest.mark.parametrize("size", [0, 1, 3 * MiB], ids=["empty", "one-byte", "3MiB"])
    def test_put_get_round_trip(self, backend: Backend, tmp_path: Path, size: int) -> None:
        data = os.urandom(size)
        put_calls: list[int] = []
        backend.put_file(write_source(tmp_path, data), "ab/cd/KEY/KEY", put_calls.append)
        check_progress(put_calls, size)
        info = backend.info("ab/cd/KEY/KEY")
        assert info is not None and info.size == size
        get_calls: list[int] = []
        count, got = fetch(backend, "ab/cd/KEY/KEY", tmp_path, get_calls.append)
        assert (count, got) == (size, data)
        check_progress(get_calls, size)

    def test_large_file_round_trip(self, backend: Backend, tmp_path: Path) -> None:
        data = os.urandom(LARGE)
        calls: list[int] = []
        backend.put_file(write_source(tmp_path, data), "big/KEY", calls.append)
        check_progress(calls, LARGE)
        assert calls == sorted(calls)
        info = backend.info("big/KEY")
        assert info is not None and info.size == LARGE
        count, got = fetch(backend, "big/KEY", tmp_path)
        assert count == LARGE
        assert got == data

    def test_read_write_bytes_round_trip(self, backend: Backend) -> None:
        backend.write_bytes("dss/config.json", b'{"a": 1}\n')
        assert backend.read_bytes("dss/config.json") == b'{"a": 1}\n'
        info = backend.info("dss/config.json")
        assert info is not None and info.size == 9

    def test_write_bytes_overwrites(self, backend: Backend) -> None:
        backend.write_bytes("meta/ria-layout-version", b"1\n")
        backend.write_bytes("meta/ria-layout-version", b"2 a longer version\n")
        assert backend.read_bytes("meta/ria-layout-version") == b"2 a longer version\n"
        # one object of the new size, and no temp file left beside it
        assert listed(backend, "meta") == {"meta/ria-layout-version": len(b"2 a longer version\n")}

    def test_put_file_overwrites(self, backend: Backend, tmp_path: Path) -> None:
        backend.put_file(write_source(tmp_path, b"old", "a"), "k/KEY")
        backend.put_file(write_source(tmp_path, b"new content", "b"), "k/KEY")
        assert fetch(backend, "k/KEY", tmp_path)[1] == b"new content"
        assert listed(backend, "k") == {"k/KEY": 11}

    def test_remove(self, backend: Backend, tmp_path: Path) -> None:
        backend.put_file(write_source(tmp_path, b"x" * 10), "ab/cd/KEY/KEY")
        backend.remove("ab/cd/KEY/KEY")
        assert backend.info("ab/cd/KEY/KEY") is None
        backend.remove("ab/cd/KEY/KEY")  # already gone: fine
        backend.remove("never/there")
        assert listed(backend, "ab") == {}

    def test_iter_objects_lists_exactly_what_was_put(self, backend: Backend, tmp_path: Path) -> None:
        objects = {"ab/cd/KEY1/KEY1": b"1", "ab/cd/KEY2/KEY2": b"22", "ab/ef/KEY3/KEY3": b"",
                   "abc/KEY4": b"4444", "other/KEY5": b"55555"}
        for relpath, data in objects.items():
            backend.put_file(write_source(tmp_path, data, relpath.replace("/", "_")), relpath)
        assert listed(backend, "ab") == {k: len(v) for k, v in objects.items() if k.startswith("ab/")}
        assert listed(backend, "ab/cd") == {"ab/cd/KEY1/KEY1": 1, "ab/cd/KEY2/KEY2": 2}
        assert listed(backend, "other") == {"other/KEY5": 5}
        assert all(isinstance(o, ObjectInfo) for o in backend.iter_objects("ab"))

    def test_iter_objects_of_empty_prefix_lists_nothing(self, backend: Backend, tmp_path: Path) -> None:
        assert listed(backend, "nothing") == {}
        backend.put_file(write_source(tmp_path, b"x"), "some/KEY")
        assert listed(backend, "nothing/here") == {}
        assert listed(backend, "som") == {}  # a prefix is a directory, not a string prefix

    #: seconds between two writes for their revisions to differ (SFTP v3 keeps whole-second mtimes)
    revision_tick = 0.0

    def test_revision_changes_when_the_object_is_replaced(self, backend: Backend, tmp_path: Path) -> None:
        """What archive index caches key on: a same-sized replacement must not look unchanged."""
        backend.put_file(write_source(tmp_path, b"first version", "a"), "arch/archive.7z")
        first = backend.info("arch/archive.7z")
        time.sleep(self.revision_tick)
        backend.put_file(write_source(tmp_path, b"other version", "b"), "arch/archive.7z")
        second = backend.info("arch/archive.7z")
        assert first is not None and second is not None and first.size == second.size
        assert first.revision is not None and second.revision is not None
        assert first.revision != second.revision
        assert backend.info("arch/archive.7z") == second  # stable while unchanged

    @pytest.mark.parametrize("relpath", UNSAFE)
    @pytest.mark.parametrize("method", ["put_file", "write_bytes", "remove", "remove_leftover"])
    def test_unsafe_relpaths_are_refused_for_writes(self, backend: Backend, tmp_path: Path, method: str,
                                                    relpath: str) -> None:
        _refuses_unsafe(backend, method, relpath, tmp_path)

    def test_put_file_from_missing_source_leaves_nothing(self, backend: Backend, tmp_path: Path) -> None:
        with pytest.raises(DssError):
            backend.put_file(tmp_path / "missing", "ab/KEY/KEY")
        assert backend.info("ab/KEY/KEY") is None
        assert listed(backend, "ab") == {}

    @pytest.mark.parametrize("size", [5, LARGE], ids=["single", "multipart"])
    def test_recorded_checksums_match_the_service(self, backend: Backend, tmp_path: Path,
                                                  size: int) -> None:
        """What fsck relies on: every checksum the service keeps was also recorded (from the source),
        with the same value, and every value, recorded or the service's, is what the bytes give."""
        data = os.urandom(size)
        backend.put_file(write_source(tmp_path, data), "sum/KEY")
        info = backend.info("sum/KEY")
        assert info is not None
        if not self.has_checksums:
            assert (dict(info.checksums), dict(info.recorded)) == ({}, {})
            return
        assert info.recorded, "put_file recorded no checksum"
        assert set(info.checksums) & set(info.recorded), f"nothing to compare: {info}"
        for name, value in info.checksums.items():
            assert info.recorded.get(name, value) == value, f"{name}: {info.checksums} != {info.recorded}"
        for name, value in {**info.recorded, **info.checksums}.items():
            assert value == local_checksum(name, data, self.part_size), name

    def test_write_bytes_records_checksums(self, backend: Backend) -> None:
        backend.write_bytes("dss/config.json", b"{}\n")
        info = backend.info("dss/config.json")
        assert info is not None
        if not self.has_checksums:
            return
        assert info.recorded
        for name, value in info.recorded.items():
            assert info.checksums.get(name) == value == local_checksum(name, b"{}\n")

    def test_writes_that_complete_or_fail_cleanly_leave_no_leftovers(self, backend: Backend,
                                                                     tmp_path: Path) -> None:
        backend.put_file(write_source(tmp_path, b"small", "a"), "ab/cd/KEY1/KEY1")
        backend.put_file(write_source(tmp_path, os.urandom(LARGE), "b"), "ab/cd/KEY2/KEY2")
        backend.put_file(write_source(tmp_path, b"replaced", "c"), "ab/cd/KEY1/KEY1")
        backend.write_bytes("ab/config", b"{}\n")
        backend.put_file(write_source(tmp_path, b"gone", "d"), "ab/ef/KEY3/KEY3")
        backend.remove("ab/ef/KEY3/KEY3")
        with pytest.raises(DssError):
            backend.put_file(tmp_path / "missing", "ab/gh/KEY4/KEY4")
        assert leftovers(backend, "ab") == []
        assert listed(backend, "ab") == {"ab/cd/KEY1/KEY1": 8, "ab/cd/KEY2/KEY2": LARGE, "ab/config": 3}

    def test_an_interrupted_write_is_a_leftover_until_removed(self, backend: Backend, tmp_path: Path) -> None:
        backend.put_file(write_source(tmp_path, b"other"), "ab/ef/OTHER/OTHER")
        kind = self.interrupt_write(backend, "ab/cd/KEY/KEY", os.urandom(6 * MiB))
        found = list(backend.iter_leftovers("ab"))
        assert backend.info("ab/cd/KEY/KEY") is None, "an interrupted write is never an object"
        assert listed(backend, "ab") == {"ab/ef/OTHER/OTHER": 5}
        if kind is None:
            assert found == []
            return
        assert [lo.kind for lo in found] == [kind]
        lo = found[0]
        if kind == UPLOAD:
            assert (lo.relpath, lo.token is not None) == ("ab/cd/KEY/KEY", True)
        else:
            assert lo.relpath.rpartition("/")[0] == "ab/cd/KEY", lo
            assert lo.relpath.rpartition("/")[2].startswith(".dss-tmp-"), lo
        assert lo.touched.tzinfo is not None and lo.touched <= datetime.now(timezone.utc)
        assert list(backend.iter_leftovers("other")) == []
        backend.remove_leftover(lo)
        assert leftovers(backend, "ab") == [], "the key directories it left empty go with it"
        backend.remove_leftover(lo)  # gone already: fine
        assert listed(backend, "ab") == {"ab/ef/OTHER/OTHER": 5}

    def test_empty_directories_are_leftovers(self, backend: Backend, tmp_path: Path) -> None:
        backend.put_file(write_source(tmp_path, b"other"), "ab/ef/OTHER/OTHER")
        if not self.make_empty_dir(backend, "ab/cd/KEY"):
            assert leftovers(backend, "ab") == []
            return
        found = list(backend.iter_leftovers("ab"))
        assert [(lo.kind, lo.relpath) for lo in found] == [(EMPTY_DIR, "ab/cd")], "the topmost one"
        assert found[0].touched <= datetime.now(timezone.utc)
        assert leftovers(backend, "ab/ef") == []
        backend.remove_leftover(found[0])
        assert leftovers(backend, "ab") == []
        backend.remove_leftover(found[0])  # gone already: fine
        assert listed(backend, "ab") == {"ab/ef/OTHER/OTHER": 5}

    def test_a_directory_that_got_a_file_is_not_removed_as_empty(self, backend: Backend,
                                                                 tmp_path: Path) -> None:
        if not self.make_empty_dir(backend, "ab/cd/KEY"):
            assert leftovers(backend, "ab") == []
            return
        [found] = backend.iter_leftovers("ab")
        backend.put_file(write_source(tmp_path, b"late"), "ab/cd/KEY/KEY")  # a writer came meanwhile
        backend.remove_leftover(found)
        assert listed(backend, "ab") == {"ab/cd/KEY/KEY": 4}


def leftovers(backend: Backend, prefix: str) -> list[tuple[str, str]]:
    return sorted((lo.kind, lo.relpath) for lo in backend.iter_leftovers(prefix))


def killed_temp_file(directory: Path, data: bytes) -> str:
    """What a writer killed half way leaves in `directory` on a file system: its temp file
    (named as ria_store.atomic names them), holding the first half of `data`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{TMP_PREFIX}killed-writer").write_bytes(data[: len(data) // 2])
    return TEMP_FILE


def outage_call(backend: Any, op: str, tmp_path: Path) -> Any:
    """One backend operation by name, for the outage tests."""
    if op == "info":
        return backend.info("ab/KEY")
    if op == "get_file":
        return fetch(backend, "ab/KEY", tmp_path)
    if op == "put_file":
        return backend.put_file(write_source(tmp_path, b"new", "new"), "ab/NEW")
    return listed(backend, "ab")


class ChangeSourceAfterDigest(Digests):
    """Digests that, once the source was read, change its first bytes: what was checksummed is
    then not what gets uploaded (a file modified during an upload, or bytes corrupted in transit)."""

    def read_from(self, f: BinaryIO) -> Digests:
        super().read_from(f)
        with open(f.name, "r+b") as w:
            w.write(b"\xff\x00\xff")
        return self

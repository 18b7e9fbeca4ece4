"""ria_store.atomic: temp-then-rename output that leaves nothing behind, and copy_fd with progress."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ria_store import atomic
from ria_store.atomic import CHUNK, TMP_PREFIX, atomic_output, copy_fd, write_bytes_atomic

DATA = os.urandom(2 * CHUNK + 12345)  # more than two chunks, and not a multiple of one


class PatchedOs:
    """The `os` module as ria_store.atomic sees it, with some functions replaced."""

    def __init__(self, **overrides: Callable[..., Any]) -> None:
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(TMP_PREFIX)]


@pytest.fixture
def src(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "src.bin"
    path.write_bytes(DATA)
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


# --- atomic_output / write_bytes_atomic ----------------------------------------------------------

def test_atomic_output_content_and_mode(tmp_path: Path) -> None:
    final = tmp_path / "obj"
    with atomic_output(final) as fd:
        os.write(fd, b"payload")
        assert not final.exists()  # readers see nothing until the block succeeds
        assert len(temp_files(tmp_path)) == 1
    assert final.read_bytes() == b"payload"
    assert stat.S_IMODE(final.stat().st_mode) == 0o444 & ~_umask()
    assert temp_files(tmp_path) == []


def test_atomic_output_creates_missing_parents(tmp_path: Path) -> None:
    final = tmp_path / "a" / "b" / "obj"
    with atomic_output(final, mode=0o666) as fd:
        os.write(fd, b"x")
    assert final.read_bytes() == b"x"
    assert stat.S_IMODE(final.stat().st_mode) == 0o666 & ~_umask()


def test_atomic_output_error_in_block_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "obj"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_output(final) as fd:
        os.write(fd, b"half of the new content")
        raise RuntimeError("boom")
    assert final.read_bytes() == b"old"
    assert temp_files(tmp_path) == []


def test_atomic_output_error_leaves_nothing_when_new(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt), atomic_output(out / "obj") as fd:
        os.write(fd, b"x")
        raise KeyboardInterrupt
    assert list(out.iterdir()) == []


def test_atomic_output_retries_when_the_directory_vanishes(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = atomic._mkstemp
    calls: list[Path] = []

    def flaky(parent: Path) -> tuple[int, str]:
        calls.append(parent)
        if len(calls) == 1:
            raise FileNotFoundError(errno.ENOENT, "pruned by a concurrent remove")
        return real(parent)

    monkeypatch.setattr(atomic, "_mkstemp", flaky)
    write_bytes_atomic(tmp_path / "d" / "obj", b"x")
    assert len(calls) == 2
    assert (tmp_path / "d" / "obj").read_bytes() == b"x"


def test_write_bytes_atomic_replaces(tmp_path: Path) -> None:
    final = tmp_path / "store" / "ria-layout-version"
    write_bytes_atomic(final, b"1\n")
    write_bytes_atomic(final, b"1|l\n")
    assert final.read_bytes() == b"1|l\n"
    assert stat.S_IMODE(final.stat().st_mode) == 0o644 & ~_umask()
    assert os.listdir(final.parent) == ["ria-layout-version"]


def _fail_after_first(real: Callable[..., int], calls: list[int]) -> Callable[..., int]:
    """`real`, limited to 1000 bytes the first time; the second call fails as if the disk were full."""
    def patched(*args: Any) -> int:
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if real is os.write:
            return real(args[0], bytes(args[1])[:1000])
        return real(args[0], args[1], 1000, *args[3:])
    return patched


@pytest.mark.parametrize("how", ["copy_file_range", "write", "write_bytes_atomic"])
def test_disk_full_during_write_leaves_nothing(tmp_path: Path, src: int, how: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    if how == "copy_file_range":
        fake = PatchedOs(copy_file_range=_fail_after_first(os.copy_file_range, calls))
    else:
        fake = PatchedOs(write=_fail_after_first(os.write, calls), copy_file_range=_exdev)
    monkeypatch.setattr(atomic, "os", fake)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OSError, match="No space left") as e:
        if how == "write_bytes_atomic":
            write_bytes_atomic(out / "obj", DATA)
        else:
            with atomic_output(out / "obj") as fd:
                copy_fd(src, fd)
    assert e.value.errno == errno.ENOSPC
    assert len(calls) == 2  # part was written before the failure
    assert list(out.iterdir()) == []


def _enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fails", ["write", "temp-file", "mkdir"])
def test_disk_full_removes_the_directories_made_for_the_write(tmp_path: Path, fails: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A key's write that runs out of space leaves no empty key (or hash) directory behind; the
    directories that were there before stay."""
    objects = tmp_path / "annex" / "objects"
    objects.mkdir(parents=True)
    if fails == "write":
        monkeypatch.setattr(atomic, "os", PatchedOs(write=_enospc))
    elif fails == "temp-file":
        monkeypatch.setattr(atomic, "_mkstemp", _enospc)
    else:
        real_mkdir = Path.mkdir

        def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
            if self.name == "KEY":  # the hash directories above it are made by then
                _enospc()
            real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(OSError, match="No space left") as e:
        write_bytes_atomic(objects / "ab" / "cd" / "KEY" / "KEY", b"content")
    assert e.value.errno == errno.ENOSPC
    assert list(objects.iterdir()) == []


def test_disk_full_keeps_a_directory_a_concurrent_writer_put_a_file_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_dir = tmp_path / "ab" / "KEY"

    def other_writer_then_full(*args: Any) -> int:
        (key_dir / f"{TMP_PREFIX}other-writer").write_bytes(b"in flight")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "os", PatchedOs(write=other_writer_then_full))
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(key_dir / "KEY", b"content")
    assert [p.name for p in key_dir.iterdir()] == [f"{TMP_PREFIX}other-writer"]


def test_create_exclusive_out_of_space_leaves_no_temp_file(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "os", PatchedOs(write=_enospc))
    with pytest.raises(OSError, match="No space left"):
        atomic.create_exclusive(tmp_path / "events" / "e.json", b"{}\n")
    assert list((tmp_path / "events").iterdir()) == []


def test_read_only_directory_write_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(parent: Path) -> tuple[int, str]:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(parent))

    monkeypatch.setattr(atomic, "_mkstemp", read_only)
    (tmp_path / "existing").write_bytes(b"keep")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OSError, match="Read-only file system") as e:
        write_bytes_atomic(tmp_path / "obj", b"x")
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError, match="Read-only file system"), atomic_output(tmp_path / "existing"):
        pytest.fail("the block must not run without a temp file")
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / "existing").read_bytes() == b"keep"


# --- copy_fd ------------------------------------------------------------------------------------

def _exdev(*args: Any) -> int:
    raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))


def _copy(tmp_path: Path, src: int, **kwargs: Any) -> tuple[int, bytes, list[int]]:
    seen: list[int] = []
    with atomic_output(tmp_path / "copy") as fd:
        n = copy_fd(src, fd, seen.append, **kwargs)
    return n, (tmp_path / "copy").read_bytes(), seen


def test_copy_fd_whole_file_with_progress(tmp_path: Path, src: int) -> None:
    n, data, seen = _copy(tmp_path, src)
    assert (n, data) == (len(DATA), DATA)
    assert seen == sorted(set(seen)) and seen[-1] == len(DATA)


@pytest.mark.parametrize("err", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP])
def test_copy_fd_falls_back_when_copy_file_range_is_refused(tmp_path: Path, src: int, err: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[int] = []

    def refuse(*args: Any) -> int:
        tries.append(1)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(atomic, "os", PatchedOs(copy_file_range=refuse))
    n, data, seen = _copy(tmp_path, src)
    assert (n, data) == (len(DATA), DATA)
    assert tries == [1]  # refused once, then never asked again
    assert seen == [CHUNK, 2 * CHUNK, len(DATA)]


def test_copy_fd_other_errors_propagate(tmp_path: Path, src: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def eio(*args: Any) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(atomic, "os", PatchedOs(copy_file_range=eio))
    with pytest.raises(OSError, match="Input/output error"):
        _copy(tmp_path, src)
    assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize(("start", "length"), [
    (0, 0), (100, 5000), (CHUNK - 1, CHUNK + 2), (0, len(DATA)), (len(DATA) - 10, None),
    (len(DATA) - 10, 1000), (len(DATA) + 5, 10),
])
def test_copy_fd_start_and_length(tmp_path: Path, src: int, start: int, length: int | None,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    expected = DATA[start:] if length is None else DATA[start:start + length]
    for fallback in (False, True):
        with monkeypatch.context() as m:
            if fallback:
                m.setattr(atomic, "os", PatchedOs(copy_file_range=_exdev))
            n, data, seen = _copy(tmp_path, src, start=start, length=length)
        assert (n, data) == (len(expected), expected), f"fallback={fallback}"
        assert seen == sorted(set(seen))
        # one chunk or less: no progress (nothing in between); more: every chunk, ending at the size
        assert seen[-1:] == ([len(expected)] if len(expected) > CHUNK else [])

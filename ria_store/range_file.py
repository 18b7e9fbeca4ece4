"""A read-only, seekable file over ranged reads, for parsers that seek and read a few bytes at a time.

py7zr reads a 7z header with many small reads and seeks; over a bucket each of those would be an
HTTP request. RangeFile serves them from a small cache of aligned blocks: a read fetches at least
one block, and a run of reads that each start where the last ended (py7zr streaming a packed
block) fetches ever larger blocks ahead, up to `max_ahead`. A read larger than the cache goes
straight through in one request.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Callable

#: pread-like: up to `length` bytes from `start`, fewer only at the end of the file
ReadRange = Callable[[int, int], bytes]

BLOCK = 64 << 10
MAX_AHEAD = 8 << 20
CACHE_BYTES = 16 << 20


class RangeFile(io.RawIOBase):
    """A file of `size` bytes whose content `read_range` returns; see the module docstring.

    `requests` counts the calls of `read_range`, for tests and debug logs. `failure` keeps the
    last exception `read_range` raised: parsers may swallow an OSError (py7zr reads "not a 7z
    file" into one), and the caller must still learn that the source, not the file, failed.
    """

    def __init__(self, read_range: ReadRange, size: int, *, block: int = BLOCK,
                 max_ahead: int = MAX_AHEAD, cache_bytes: int = CACHE_BYTES) -> None:
        super().__init__()
        if size < 0 or block <= 0 or max_ahead < block or cache_bytes < max_ahead:
            raise ValueError(f"RangeFile: bad geometry (size {size}, block {block}, "
                             f"max_ahead {max_ahead}, cache {cache_bytes})")
        self._read_range = read_range
        self._size = size
        self._block = block
        self._max_ahead = max_ahead
        self._cache_bytes = cache_bytes
        self._pos = 0
        self._ahead = block
        self._next_sequential = -1
        self._chunks: OrderedDict[int, bytes] = OrderedDict()  # start -> bytes, least recently used first
        self._cached = 0
        self.requests = 0
        self.failure: BaseException | None = None

    # -- io.RawIOBase -------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(22, f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` as far as the file goes (never a short read before the end)."""
        out = memoryview(buffer).cast("B")
        want = max(0, min(len(out), self._size - self._pos))
        if want == 0:
            return 0
        sequential = self._pos == self._next_sequential
        self._ahead = min(self._ahead * 2, self._max_ahead) if sequential else self._block
        done = 0
        while done < want:
            pos = self._pos + done
            chunk_start, chunk = self._lookup(pos)
            if chunk is None:
                chunk_start, chunk = self._fetch(pos, want - done)
            offset = pos - chunk_start
            n = min(len(chunk) - offset, want - done)
            if n <= 0:  # the source ended before the size it was said to have
                break
            out[done:done + n] = chunk[offset:offset + n]
            done += n
        self._pos += done
        self._next_sequential = self._pos
        return done

    # -- the block cache ----------------------------------------------------------------------
    def _lookup(self, pos: int) -> tuple[int, bytes | None]:
        for start, chunk in self._chunks.items():
            if start <= pos < start + len(chunk):
                self._chunks.move_to_end(start)
                return start, chunk
        return pos, None

    def _fetch(self, pos: int, need: int) -> tuple[int, bytes]:
        """One request covering [pos, pos + need), widened to whole blocks and the read-ahead."""
        start = pos - pos % self._block
        end = pos + max(need, self._ahead)
        end = min(self._size, -(-end // self._block) * self._block)
        self.requests += 1
        try:
            chunk = self._read_range(start, end - start)
        except BaseException as e:
            self.failure = e
            raise
        if len(chunk) > self._cache_bytes:
            return start, chunk  # one large read (a big header): serve it, do not cache it
        # cached chunks never overlap: drop any the new one covers, then the least recently used
        for old in [s for s, c in self._chunks.items() if s < start + len(chunk) and start < s + len(c)]:
            self._cached -= len(self._chunks.pop(old))
        self._chunks[start] = chunk
        self._cached += len(chunk)
        while self._cached > self._cache_bytes:
            _, dropped = self._chunks.popitem(last=False)
            self._cached -= len(dropped)
        return start, chunk

"""A shard's bytes in bounded memory: memory-mapped local files, chunked range reads of remote ones.

A shard is read front to back through a window. ``read(start, stop)`` gives the bytes [start, stop)
(fewer only at the end of the file) and ``release(offset)`` promises that no byte before ``offset`` will
be asked for again, so what a reader holds is the bytes between its last release and its furthest read
(about one record, or one chunk), however large the shard.

- Local files (plain paths and ``file://`` URLs) are memory-mapped. Released pages are handed back
  with ``madvise(MADV_DONTNEED)``: they stay in the page cache but leave the process's resident set, so
  reading a 400 MB shard does not grow the reader by 400 MB.
- Remote files (any other fsspec URL) are read in range requests of :data:`CHUNK_BYTES`. Each request's
  length is checked against the file's size, and a failed or short transfer is tried :data:`ATTEMPTS`
  times in all, with exponential back-off (:data:`BACKOFF_S`, then twice that, ...); after that
  :class:`ShardReadError` names the URL and the byte range. A dropped connection never ends a shard
  early without an error.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Protocol, TypeVar

from fsspec.utils import stringify_path

from compactvideo.data.files import filesystem, is_local, local_path
from compactvideo.errors import CompactVideoError

CHUNK_BYTES = 8 * 2**20  # one remote range request
RELEASE_BYTES = 8 * 2**20  # local pages are handed back in steps of this size
ATTEMPTS = 4
BACKOFF_S = 0.5
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
T = TypeVar("T")


class ShardReadError(CompactVideoError):
    """A shard that cannot be opened or read (missing, or a transfer that kept failing): names the shard."""


class Shard(Protocol):
    """A window over one shard's bytes (see the module docstring)."""

    name: str
    size: int

    def read(self, start: int, stop: int) -> memoryview: ...

    def release(self, offset: int) -> None: ...

    def close(self) -> None: ...


@contextmanager
def open_shard(reference: str | os.PathLike) -> Iterator[Shard]:
    """The shard a reference names, memory-mapped if local, else streamed through fsspec; closed on exit."""
    shard = MappedShard(reference) if is_local(reference) else RemoteShard(stringify_path(reference))
    try:
        yield shard
    finally:
        shard.close()


class MappedShard:
    """A local file, memory-mapped read-only; released pages leave the resident set."""

    def __init__(self, reference: str | os.PathLike) -> None:
        self.name = stringify_path(reference)
        try:
            with open(local_path(reference), "rb") as file:
                self.size = os.fstat(file.fileno()).st_size
                self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        except OSError as error:
            raise ShardReadError(f"{self.name}: cannot open the shard ({error.strerror or error})") from None
        self._view = memoryview(self._map if self._map is not None else b"")
        self._handed_back = 0
        self._advise = self._map is not None and hasattr(self._map, "madvise")
        if self._advise:
            self._map.madvise(mmap.MADV_SEQUENTIAL)

    def read(self, start: int, stop: int) -> memoryview:
        return self._view[start:stop]

    def release(self, offset: int) -> None:
        upto = offset - offset % mmap.PAGESIZE
        if self._advise and upto - self._handed_back >= RELEASE_BYTES:
            self._map.madvise(mmap.MADV_DONTNEED, self._handed_back, upto - self._handed_back)
            self._handed_back = upto

    def close(self) -> None:
        self._view = memoryview(b"")
        if self._map is not None:
            with suppress(BufferError):  # a payload still held keeps the mapping until it is freed
                self._map.close()


class RemoteShard:
    """A file behind an fsspec URL, read in checked, retried range requests of CHUNK_BYTES."""

    def __init__(self, url: str) -> None:
        self.name, self.chunk_bytes, self.attempts, self.backoff_s = url, CHUNK_BYTES, ATTEMPTS, BACKOFF_S
        self._fs, self._path = filesystem(url)
        size = self._retrying(lambda: self._fs.size(self._path), "reading its size")
        if size is None:
            raise ShardReadError(f"{url}: the server does not say the file's size, so it cannot be streamed")
        self.size = int(size)
        self._buffer, self._start, self._released = b"", 0, 0  # the window holds [_start, _start + len)

    def read(self, start: int, stop: int) -> memoryview:
        stop = min(stop, self.size)
        end = self._start + len(self._buffer)
        if stop > end:
            new = self._fetch(end, min(max(stop, end + self.chunk_bytes), self.size))
            kept = memoryview(self._buffer)[self._released - self._start :]
            self._buffer, self._start = b"".join((kept, new)), self._released
        return memoryview(self._buffer)[start - self._start : max(start, stop) - self._start]

    def release(self, offset: int) -> None:
        self._released = max(self._released, offset)

    def close(self) -> None:
        self._buffer = b""

    def _fetch(self, start: int, stop: int) -> bytes:
        def fetch() -> bytes:
            data = self._fs.cat_file(self._path, start=start, end=stop)
            if len(data) != stop - start:
                raise _IncompleteTransfer(f"received {len(data)} bytes, expected {stop - start}")
            return data

        return self._retrying(fetch, f"reading bytes {start}-{stop}")

    def _retrying(self, action: Callable[[], T], what: str) -> T:
        attempt = 1
        while True:
            try:
                return action()
            except _PERMANENT as error:
                raise ShardReadError(f"{self.name}: {what}: {type(error).__name__}: {error}") from None
            except _transient_errors() as error:
                if attempt == self.attempts:
                    raise ShardReadError(
                        f"{self.name}: {what} failed {attempt} times, "
                        f"last with {type(error).__name__}: {error}"
                    ) from error
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
            attempt += 1


class _IncompleteTransfer(Exception):
    """A range request that returned another number of bytes than asked for."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors worth retrying: network and I/O failures (aiohttp's, for http(s), when it is installed)."""
    try:
        from aiohttp import ClientError
    except ImportError:
        return (OSError, TimeoutError, _IncompleteTransfer)
    return (OSError, TimeoutError, _IncompleteTransfer, ClientError)

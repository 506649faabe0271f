"""TFRecord files without TensorFlow: framing with masked CRC32C checks, resynchronising reader, writer.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little-endian) | uint32 masked_crc(length) | payload[length] | uint32 masked_crc(payload)

with masked_crc(x) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32), c = CRC32C(x) (the Castagnoli
polynomial). Shards are read front to back in bounded memory (:mod:`compactvideo.data.shards`).

By default any damage raises :class:`CorruptRecordError`, naming the file and the byte offset at which
the damaged record starts. Given a :class:`ReadStats`, :func:`iter_payloads` skips damage instead and
counts it there, losing nothing intact:

- a payload CRC mismatch whose length held (a valid header follows it, or the file ends) skips that
  record only: the next record starts where its length says;
- broken framing (a length CRC mismatch, a length past the end of the file, a file that ends inside a
  record, or a payload CRC mismatch followed by no valid header) resynchronises: reading goes on at the
  first later offset whose 12-byte header has a valid length CRC, whose length fits in the file, and
  whose payload CRC holds (a false match needs two 32-bit CRCs to agree by chance, odds of 2^-64).

The search for that offset is vectorised. CRC32C is affine over GF(2): for 8-byte strings,
CRC32C(x) = CRC32C(0^8) xor T_0[x_0] xor ... xor T_7[x_7], where T_i[v] = CRC32C(v at byte i, zeros
elsewhere) xor CRC32C(0^8). So the length CRCs of every position of a window are 8 table look-ups per
position in numpy, after a cheaper filter on the length itself (under 1 TiB).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from functools import reduce
from pathlib import Path

import crc32c
import numpy as np

from compactvideo.data.damage import CorruptRecordError, ReadStats
from compactvideo.data.shards import Shard, open_shard

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
FRAMING_BYTES = _HEADER.size + _FOOTER.size  # a record's bytes besides its payload
SCAN_BYTES = 2**20  # header positions searched per numpy pass while resynchronising


def _mask(crc: int | np.ndarray) -> int | np.ndarray:
    """TFRecord's masking of a CRC (a Python int, or a numpy uint32 array, element-wise)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc(data: bytes | memoryview) -> int:
    return _mask(crc32c.crc32c(data))


_ZEROS_CRC = crc32c.crc32c(bytes(8))
_BYTE_TABLES = np.array(  # T_i[v] of the module docstring
    [[crc32c.crc32c(bytes(i) + bytes([v]) + bytes(7 - i)) for v in range(256)] for i in range(8)],
    dtype=np.uint32,
) ^ np.uint32(_ZEROS_CRC)


def length_crcs(data: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """Masked CRC32C of the 8 bytes at each of ``positions`` of a uint8 array (at every position that has
    8 bytes when None), vectorised by the byte tables of the module docstring."""
    count = len(data) - 7 if positions is None else len(positions)
    crc = np.full(count, _ZEROS_CRC, dtype=np.uint32)
    for index in range(8):
        crc ^= _BYTE_TABLES[index][
            data[index : index + count] if positions is None else data[positions + index]
        ]
    return _mask(crc)


def iter_payloads(
    path: str | os.PathLike, stats: ReadStats | None = None, max_skipped: int | None = None
) -> Iterator[tuple[int, memoryview]]:
    """(offset, payload) of every intact record of one file (a local path or an fsspec URL), CRC-checked.

    Without ``stats`` the first damage raises :class:`CorruptRecordError`; with it, damage is skipped
    as the module docstring says and each skip is counted in ``stats`` with its offset and length;
    more than ``max_skipped`` skips in ``stats`` raise ``TooManySkippedError``. A payload stays valid
    after the iteration moves on.
    """
    with open_shard(path) as shard:
        offset = 0
        while shard.read(offset, offset + 1):
            payload, end, problem = _record_at(shard, offset)
            if problem is None:
                yield offset, payload
            else:
                error = CorruptRecordError(shard.name, offset, problem)
                if stats is None:
                    raise error
                if end is None or not _header_or_end_at(shard, end):
                    end = _resynchronise(shard, offset + 1)
                stats.skip(error, end - offset)
                stats.check(max_skipped)
            offset = end
            shard.release(offset)


def _record_at(shard: Shard, offset: int) -> tuple[memoryview | None, int | None, str | None]:
    """(payload, next offset, None) for an intact record; (None, next offset, problem) when only the
    payload or its CRC is damaged; (None, None, problem) when the framing itself is broken."""
    header = shard.read(offset, offset + _HEADER.size)
    if len(header) < _HEADER.size:
        return None, None, f"file ends inside a record header ({len(header)} bytes)"
    length, length_crc = _HEADER.unpack(header)
    if masked_crc(header[:8]) != length_crc:
        return None, None, "length CRC mismatch (not a TFRecord file, or damaged)"
    start = offset + _HEADER.size
    end = start + length + _FOOTER.size
    if end > shard.size:
        left = shard.size - start
        return None, None, f"file ends inside the record: {length} payload bytes announced, {left} left"
    body = shard.read(start, end)
    payload = body[:length]
    if masked_crc(payload) != _FOOTER.unpack(body[length:])[0]:
        return None, end, "payload CRC mismatch"
    return payload, end, None


def _header_or_end_at(shard: Shard, offset: int) -> bool:
    """Whether a header with a valid length CRC, or the end of the file, is at ``offset``."""
    header = shard.read(offset, offset + _HEADER.size)
    if len(header) < _HEADER.size:
        return len(header) == 0
    return masked_crc(header[:8]) == _HEADER.unpack(header)[1]


def _resynchronise(shard: Shard, start: int) -> int:
    """The offset of the first intact record at or after ``start``, or the end of the file."""
    position = start
    while True:
        shard.release(position)
        want = SCAN_BYTES + _HEADER.size - 1  # headers starting at the SCAN_BYTES positions
        window = shard.read(position, position + want)
        for candidate in _header_candidates(window, position, shard.size):
            if _record_at(shard, candidate)[2] is None:
                return candidate
        if len(window) < want:
            return position + len(window)
        position += SCAN_BYTES


def _header_candidates(window: memoryview, base: int, size: int) -> list[int]:
    """File offsets in ``window`` (which starts at ``base``) of headers whose length CRC holds and whose
    announced record fits in the file (and is under 1 TiB: the length's top three bytes are zero)."""
    count = min(len(window) - _HEADER.size + 1, size - base - FRAMING_BYTES + 1)
    if count <= 0:
        return []
    data = np.frombuffer(window, dtype=np.uint8)
    positions = np.flatnonzero((data[5 : 5 + count] | data[6 : 6 + count] | data[7 : 7 + count]) == 0)
    dense = len(positions) > count // 8  # zero-filled damage, zero-rich payloads: whole-window arithmetic
    if dense:  # an all-zero header never holds (the masked CRC32C of 8 zero bytes is not 0)
        others = reduce(np.bitwise_or, [data[i : i + count] for i in (0, 1, 2, 3, 4, 8, 9, 10, 11)])
        positions = positions[others[positions] != 0]
    if len(positions) > count // 8:
        crcs = length_crcs(data[: count + 7])[positions]
    else:
        crcs = length_crcs(data, positions)
    stored = np.ndarray((count,), dtype="<u4", buffer=data, offset=8, strides=(1,))[positions]
    positions = positions[crcs == stored]
    lengths = np.ndarray((count,), dtype="<u8", buffer=data, strides=(1,))[positions]
    # the record at base + p needs its 12 + length + 4 bytes in the size - (base + p) left
    positions = positions[lengths <= np.uint64(size - base - FRAMING_BYTES) - positions.astype(np.uint64)]
    return (base + positions).tolist()


def frame_record(payload: bytes) -> bytes:
    """The framed bytes of one record."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc(length)) + payload + struct.pack("<I", masked_crc(payload))


def write_payloads(path: str | os.PathLike, payloads: Iterable[bytes]) -> int:
    """Write records atomically (temporary file, then rename); return how many were written.

    If ``payloads`` raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with open(temporary, "wb") as file:
            for payload in payloads:
                file.write(frame_record(payload))
                count += 1
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
    return count

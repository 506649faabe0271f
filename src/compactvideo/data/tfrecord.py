"""TFRecord files without TensorFlow: record framing with masked CRC32C checks, reading and writing.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little-endian) | uint32 masked_crc(length) | payload[length] | uint32 masked_crc(payload)

with masked_crc(x) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32), c = CRC32C(x) (the Castagnoli
polynomial). Any mismatch or a file that ends inside a record raises :class:`CorruptRecordError`, which
names the file and the byte offset at which the damaged record starts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

from compactvideo.errors import CompactVideoError

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


class CorruptRecordError(CompactVideoError, ValueError):
    """A damaged record: names the file, the record's byte offset and what was expected."""

    def __init__(self, path: str | os.PathLike, offset: int, reason: str) -> None:
        self.path, self.offset, self.reason = str(path), offset, reason
        super().__init__(f"{path}: record at byte offset {offset}: {reason}")


@dataclass
class ReadStats:
    """What a read skipped: with ``skip_corrupt=True`` damaged records are counted here, not raised."""

    records: int = 0
    skipped: int = 0
    errors: list[CorruptRecordError] = field(default_factory=list)

    def skip(self, error: CorruptRecordError) -> None:
        self.skipped += 1
        if len(self.errors) < 100:
            self.errors.append(error)

    def summary(self) -> str:
        lines = [f"read {self.records} records, skipped {self.skipped} damaged"]
        lines += [f"  {error}" for error in self.errors[:10]]
        if self.skipped > 10:
            lines.append(f"  ... and {self.skipped - 10} more")
        return "\n".join(lines)


def masked_crc(data: bytes | memoryview) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_payloads(path: str | os.PathLike) -> Iterator[tuple[int, memoryview]]:
    """(offset, payload) of every record of one file, CRC-checked; raises CorruptRecordError."""
    path = Path(path)
    view = memoryview(path.read_bytes())  # shards are tens of MB; slices of bytes are cheap and safe
    size, offset = len(view), 0
    while offset < size:
        if size - offset < _HEADER.size:
            raise CorruptRecordError(
                path, offset, f"file ends inside a record header ({size - offset} bytes)"
            )
        length, length_crc = _HEADER.unpack_from(view, offset)
        if masked_crc(view[offset : offset + 8]) != length_crc:
            raise CorruptRecordError(path, offset, "length CRC mismatch (not a TFRecord file, or damaged)")
        start = offset + _HEADER.size
        end = start + length
        if end + _FOOTER.size > size:
            raise CorruptRecordError(
                path,
                offset,
                f"file ends inside the record: {length} payload bytes announced, {size - start} left",
            )
        payload = view[start:end]
        if masked_crc(payload) != _FOOTER.unpack_from(view, end)[0]:
            raise CorruptRecordError(path, offset, "payload CRC mismatch")
        yield offset, payload
        offset = end + _FOOTER.size


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

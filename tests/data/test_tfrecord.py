"""TFRecord framing against records framed by hand from the format's definition."""

import struct

import crc32c
import pytest

from compactvideo.data import CorruptRecordError
from compactvideo.data.tfrecord import frame_record, iter_payloads, masked_crc, write_payloads

CHECK_CRC = 0xE3069283  # CRC32C of b"123456789", the Castagnoli polynomial's published check value


def mask(crc: int) -> int:
    """TFRecord's masking, written out: rotate right by 15 bits, add 0xa282ead8, modulo 2^32."""
    return ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF


def framed(payload: bytes) -> bytes:
    """length (uint64 LE) | masked CRC of the length | payload | masked CRC of the payload."""
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", mask(crc32c.crc32c(length)))
        + payload
        + struct.pack("<I", mask(crc32c.crc32c(payload)))
    )


def test_masked_crc32c_of_the_check_vector():
    assert crc32c.crc32c(b"123456789") == CHECK_CRC
    # rotated right by 15 bits: the low 15 bits 0x1283 move to the top (0x1283 << 17 = 0x2506_0000), the
    # rest shifts down (0xE306_9283 >> 15 = 0x1_C60D): 0x2507_C60D; plus 0xA282_EAD8 is 0xC78A_B0E5
    assert masked_crc(b"123456789") == 0xC78A_B0E5


def test_frames_match_the_hand_framed_bytes_and_read_back_with_offsets(tmp_path):
    payloads = [b"", b"123456789", bytes(range(256)) * 3]
    assert [frame_record(p) for p in payloads] == [framed(p) for p in payloads]
    path = tmp_path / "records.tfrecord"
    assert write_payloads(path, payloads) == 3
    assert path.read_bytes() == b"".join(framed(p) for p in payloads)
    offsets = [0, 16, 16 + 16 + 9]
    assert [(offset, bytes(p)) for offset, p in iter_payloads(path)] == list(
        zip(offsets, payloads, strict=True)
    )
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_a_failing_writer_leaves_no_file(tmp_path):
    def payloads():
        yield b"first"
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError):
        write_payloads(tmp_path / "out.tfrecord", payloads())
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def shard(tmp_path):
    """Two records; returns (path, bytes, offset of the second record)."""
    data = framed(b"first record") + framed(b"second record, a little longer")
    path = tmp_path / "shard.tfrecord"
    path.write_bytes(data)
    return path, data, len(framed(b"first record"))


def flip(path, data: bytes, position: int) -> None:
    damaged = bytearray(data)
    damaged[position] ^= 0x01
    path.write_bytes(bytes(damaged))


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (0, "length CRC mismatch"),  # a bit of the length
        (8, "length CRC mismatch"),  # a bit of the length's CRC
        (12 + 3, "payload CRC mismatch"),  # a bit of the payload
        (-1, "payload CRC mismatch"),  # a bit of the payload's CRC
    ],
)
def test_every_damaged_byte_is_named_by_file_and_offset(shard, where, message):
    path, data, second = shard
    flip(path, data, second + where if where >= 0 else len(data) + where)
    records = iter_payloads(path)
    assert next(records)[0] == 0  # the first record is intact
    with pytest.raises(
        CorruptRecordError, match=rf"^{path}: record at byte offset {second}: {message}"
    ) as info:
        next(records)
    assert (info.value.path, info.value.offset) == (str(path), second)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (5, r"file ends inside a record header \(5 bytes\)"),
        (12, "file ends inside the record: 30 payload bytes announced, 0 left"),
        (12 + 30 + 2, "file ends inside the record: 30 payload bytes announced, 32 left"),
    ],
)
def test_truncated_files_are_named_by_file_and_offset(shard, keep, message):
    path, data, second = shard
    path.write_bytes(data[: second + keep])
    with pytest.raises(CorruptRecordError, match=rf"offset {second}: {message}"):
        list(iter_payloads(path))


def test_a_file_that_is_not_a_tfrecord_is_rejected_at_offset_0(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is plain text, not a record file\n")
    with pytest.raises(CorruptRecordError, match="offset 0: length CRC mismatch"):
        list(iter_payloads(path))

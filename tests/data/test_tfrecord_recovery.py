"""Reading damaged shards with skip_corrupt: exactly the intact records come back, each skip is named.

Shards are written by the project's writer (and framed by hand in test_tfrecord.py's way), then damaged
on disk: payload and header flips, garbage between records, truncation, zero-length and absurd-length
headers with valid CRCs. The intact records are known independently: those whose framed bytes the
damage did not touch, read back from the undamaged file.
"""

import re
import struct

import crc32c
import numpy as np
import pytest

from compactvideo.data import CorruptRecordError, ReadStats, TooManySkippedError
from compactvideo.data.tfrecord import SCAN_BYTES, iter_payloads, length_crcs
from compactvideo.data.yt8m import FrameRecord, read_records, write_records

RECORDS = 8


def mask(crc: int) -> int:
    return ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF


def header(length: int) -> bytes:
    """A record header announcing ``length`` bytes, with a valid length CRC."""
    encoded = struct.pack("<Q", length)
    return encoded + struct.pack("<I", mask(crc32c.crc32c(encoded)))


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """(bytes of a clean 8-video shard, the start offset of each record and the end, the clean records)."""
    rng = np.random.default_rng(5)
    videos = []
    for index in range(RECORDS):
        frames = int(rng.integers(2, 9))
        rgb, audio = rng.uniform(-2, 2, (frames, 1024)), rng.uniform(-2, 2, (frames, 128))
        videos.append(FrameRecord(f"video{index}", np.array([index, index + 10]), rgb, audio))
    path = tmp_path_factory.mktemp("clean") / "clean.tfrecord"
    write_records(path, videos)
    data = path.read_bytes()
    offsets = [offset for offset, _ in iter_payloads(path)] + [len(data)]
    return data, offsets, list(read_records(path))


def read_damaged(tmp_path, data: bytes, **options):
    path = tmp_path / "damaged.tfrecord"
    path.write_bytes(data)
    stats = ReadStats()
    records = list(read_records(path, skip_corrupt=True, stats=stats, warn=False, **options))
    return path, records, stats


def assert_same_records(got, expected):
    assert [r.id for r in got] == [r.id for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert np.array_equal(mine.labels, theirs.labels)
        assert np.array_equal(mine.rgb, theirs.rgb) and np.array_equal(mine.audio, theirs.audio)


def damaged_shards(data: bytes, offsets: list[int]) -> dict[str, tuple[bytes, list[int], list[tuple]]]:
    """name -> (damaged bytes, indices of the records left intact, expected skips (offset, bytes, reason))."""
    third, fourth, last = offsets[3], offsets[4], offsets[RECORDS - 1]
    size3 = fourth - third
    garbage = np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8).tobytes()

    def flip(*positions: int) -> bytes:
        damaged = bytearray(data)
        for position in positions:
            damaged[position] ^= 0x10
        return bytes(damaged)

    everything_but_3 = [i for i in range(RECORDS) if i != 3]
    return {
        "payload flip": (flip(third + 12 + 100), everything_but_3, [(third, size3, "payload CRC mismatch")]),
        "payload CRC flip": (flip(fourth - 2), everything_but_3, [(third, size3, "payload CRC mismatch")]),
        "length flip": (flip(third + 1), everything_but_3, [(third, size3, "length CRC mismatch")]),
        "length CRC flip": (flip(third + 9), everything_but_3, [(third, size3, "length CRC mismatch")]),
        "garbage between records": (
            data[:third] + garbage + data[third:],
            list(range(RECORDS)),
            [(third, len(garbage), "length CRC mismatch")],
        ),
        "truncated in the last payload": (
            data[: last + 500],
            list(range(RECORDS - 1)),
            [(last, 500, "file ends inside the record")],
        ),
        "truncated in the last header": (
            data[: last + 5],
            list(range(RECORDS - 1)),
            [(last, 5, r"file ends inside a record header \(5 bytes\)")],
        ),
        "zero-length header": (
            data[:third] + header(0) + data[third + 12 :],
            everything_but_3,
            [(third, size3, "payload CRC mismatch")],  # the 16 bytes it frames fail their CRC, then resync
        ),
        "absurd-length header": (
            data[:third] + header(2**40) + data[third + 12 :],
            everything_but_3,
            [(third, size3, "file ends inside the record: 1099511627776 payload bytes announced")],
        ),
        "first record's header and a later payload": (
            flip(2, offsets[5] + 20),
            [1, 2, 3, 4, 6, 7],
            [
                (0, offsets[1], "length CRC mismatch"),
                (offsets[5], offsets[6] - offsets[5], "payload CRC mismatch"),
            ],
        ),
        "a damaged header, then a damaged payload": (  # the resynchronising search passes record 4
            flip(third + 1, fourth + 40),
            [0, 1, 2, 5, 6, 7],
            [(third, offsets[5] - third, "length CRC mismatch")],
        ),
    }


CASES = [
    "payload flip",
    "payload CRC flip",
    "length flip",
    "length CRC flip",
    "garbage between records",
    "truncated in the last payload",
    "truncated in the last header",
    "zero-length header",
    "absurd-length header",
    "first record's header and a later payload",
    "a damaged header, then a damaged payload",
]


@pytest.mark.parametrize("case", CASES)
def test_exactly_the_intact_records_come_back_and_each_skip_is_named(tmp_path, shard, case):
    data, offsets, clean = shard
    damaged, intact, skips = damaged_shards(data, offsets)[case]
    path, records, stats = read_damaged(tmp_path, damaged)
    assert_same_records(records, [clean[i] for i in intact])
    listed = stats.files[str(path)].first_skips
    assert [(s.offset, s.length) for s in listed] == [(offset, length) for offset, length, _ in skips]
    for skip, (_, _, reason) in zip(listed, skips, strict=True):
        assert re.match(reason, skip.reason), skip.reason
    # every byte is accounted for: returned records plus skipped stretches make the file
    returned = sum(offsets[i + 1] - offsets[i] for i in intact)
    assert returned + stats.skipped_bytes == len(damaged)
    assert (stats.records, stats.skipped) == (len(intact), len(skips))

    with pytest.raises(CorruptRecordError, match=rf"^{path}: record at byte offset {skips[0][0]}: "):
        list(read_records(path))  # without skip_corrupt, the first damage raises


def test_random_edits_lose_only_the_records_they_touch(tmp_path):
    """Hand-framed records of random bytes, then random flips, insertions, deletions and a cut: the
    records whose framed bytes no edit touched are exactly those read back, and every byte is counted."""
    rng = np.random.default_rng(0)
    path = tmp_path / "random.tfrecord"
    for trial in range(60):
        payloads = [
            rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes() for _ in range(12)
        ]
        framed = [header(len(p)) + p + struct.pack("<I", mask(crc32c.crc32c(p))) for p in payloads]
        starts = np.cumsum([0] + [len(f) for f in framed])
        data = bytearray(b"".join(framed))
        touched = set()
        if trial % 4 == 0:  # cut the file inside the last record
            del data[len(data) - int(rng.integers(1, len(framed[-1]) + 1)) :]
            touched.add(len(framed) - 1)
        edits = sorted(rng.choice(len(data), int(rng.integers(1, 4)), replace=False), reverse=True)
        for position in edits:  # from the end, so that positions before stay those of the clean file
            record = int(np.searchsorted(starts, position, side="right")) - 1
            edit = rng.integers(3)
            if edit == 0:
                data[position] ^= int(rng.integers(1, 256))
            elif edit == 1:
                del data[position]
            else:
                data[position:position] = rng.integers(
                    0, 256, int(rng.integers(1, 40)), dtype=np.uint8
                ).tobytes()
            if edit != 2 or position != starts[record]:  # garbage inserted between records touches none
                touched.add(record)
        path.write_bytes(bytes(data))
        stats = ReadStats()
        got = [bytes(payload) for _, payload in iter_payloads(path, stats)]
        assert got == [p for i, p in enumerate(payloads) if i not in touched], trial
        intact_bytes = sum(len(f) for i, f in enumerate(framed) if i not in touched)
        assert intact_bytes + stats.skipped_bytes == len(data)
        assert 1 <= stats.skipped <= len(edits) + 1


def test_a_long_stretch_of_garbage_is_searched_past_scan_windows(tmp_path):
    """Records separated by several scan windows of zeros and random bytes (zeros announce length 0 at
    every position, the hardest case for the search's length filter)."""
    payloads = [b"first", b"second", b"third"]
    framed = [header(len(p)) + p + struct.pack("<I", mask(crc32c.crc32c(p))) for p in payloads]
    noise = np.random.default_rng(2).integers(0, 256, SCAN_BYTES + 7, dtype=np.uint8).tobytes()
    zeros = bytes(2 * SCAN_BYTES + 3)
    path = tmp_path / "gaps.tfrecord"
    path.write_bytes(framed[0] + zeros + framed[1] + noise + framed[2])
    stats = ReadStats()
    assert [bytes(p) for _, p in iter_payloads(path, stats)] == payloads
    first = stats.files[str(path)].first_skips
    assert [(s.offset, s.length) for s in first] == [
        (len(framed[0]), len(zeros)),
        (len(framed[0]) + len(zeros) + len(framed[1]), len(noise)),
    ]


def test_a_file_that_is_not_a_tfrecord_is_one_skip(tmp_path):
    path = tmp_path / "notes.tfrecord"
    path.write_bytes(b"plain text, not records\n" * 1000)
    stats = ReadStats()
    assert list(iter_payloads(path, stats)) == []
    assert (stats.skipped, stats.skipped_bytes) == (1, 24000)


def test_the_vectorised_length_crcs_equal_crc32c():
    data = np.random.default_rng(3).integers(0, 256, 600, dtype=np.uint8)
    data[:20] = 0
    expected = [mask(crc32c.crc32c(data[p : p + 8].tobytes())) for p in range(len(data) - 7)]
    assert length_crcs(data).tolist() == expected
    positions = np.array([0, 5, 17, 300, 592])
    assert length_crcs(data, positions).tolist() == [expected[p] for p in positions]


def test_labels_outside_the_classes_are_damaged_records(tmp_path, shard):
    data, offsets, clean = shard  # labels of video i: i and i + 10
    path = tmp_path / "labels.tfrecord"
    path.write_bytes(data)
    with pytest.raises(
        CorruptRecordError,
        match=rf"offset {offsets[6]}: video video6: labels \[6, 16\] outside the 16 classes",
    ):
        list(read_records(path, num_classes=16))
    stats = ReadStats()
    records = list(read_records(path, skip_corrupt=True, stats=stats, warn=False, num_classes=16))
    assert_same_records(records, clean[:6])
    assert [(s.offset, s.length) for s in stats.files[str(path)].first_skips] == [
        (offsets[6], offsets[7] - offsets[6]),
        (offsets[7], offsets[8] - offsets[7]),
    ]
    with pytest.raises(
        TooManySkippedError, match=rf"(?s)skipped 2 damaged .* offset {offsets[6]}: video video6"
    ):
        list(read_records(path, skip_corrupt=True, warn=False, num_classes=16, max_skipped=1))


def test_max_skipped_stops_a_read_damaged_beyond_the_threshold(tmp_path, shard):
    data, offsets, clean = shard
    damaged = bytearray(data)
    for index in (1, 4, 6):
        damaged[offsets[index] + 40] ^= 0xFF
    path = tmp_path / "three.tfrecord"
    path.write_bytes(bytes(damaged))
    assert len(list(read_records(path, skip_corrupt=True, warn=False, max_skipped=3))) == RECORDS - 3
    read = []
    with pytest.raises(TooManySkippedError, match=r"skipped 3 damaged records .* more than the 2") as info:
        read += read_records(path, skip_corrupt=True, warn=False, max_skipped=2)
    assert f"record at byte offset {offsets[1]}: payload CRC mismatch" in str(info.value)
    assert f"record at byte offset {offsets[4]}" in str(info.value)
    with pytest.raises(TooManySkippedError):  # a damaged header counts the same way
        list(read_records(path, skip_corrupt=True, warn=False, max_skipped=0))

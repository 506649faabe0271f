"""TFRecord framing and YouTube-8M parsing, checked against records built by hand from the wire formats."""

import struct

import crc32c
import numpy as np
import pytest

from compactvideo.data.tfrecord import CorruptRecordError, ReadStats, iter_payloads, masked_crc
from compactvideo.data.yt8m import FrameRecord, VideoRecord, read_records, write_records

# ---- an independent protobuf encoder: just enough of the wire format for tf.train messages ----


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def bytes_feature(*values: bytes) -> bytes:
    return field(1, b"".join(field(1, v) for v in values))  # Feature.bytes_list.value


def int64_feature(*values: int) -> bytes:
    return field(3, field(1, b"".join(varint(v) for v in values)))  # Feature.int64_list, packed


def float_feature(*values: float) -> bytes:
    return field(2, field(1, struct.pack(f"<{len(values)}f", *values)))  # Feature.float_list, packed


def features(**named: bytes) -> bytes:
    """A Features message: map<string, Feature> entries."""
    return b"".join(field(1, field(1, name.encode()) + field(2, value)) for name, value in named.items())


def sequence_example(context: bytes, **lists: list[bytes]) -> bytes:
    entries = b"".join(
        field(1, field(1, name.encode()) + field(2, b"".join(field(1, f) for f in frames)))
        for name, frames in lists.items()
    )
    return field(1, context) + field(2, entries)


def frame(payload: bytes) -> bytes:
    """TFRecord framing, with the masked CRC written out from its definition."""

    def mask(data: bytes) -> int:
        crc = crc32c.crc32c(data)
        return ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF

    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", mask(length)) + payload + struct.pack("<I", mask(payload))


def dequantized(q: np.ndarray) -> np.ndarray:
    return q.astype(np.float64) * 4 / 255 - 1.9921875


def hand_built_video(video_id=b"ab12", labels=(3, 7), frames=3, id_key="id", rgb_width=1024) -> bytes:
    rng = np.random.default_rng(len(video_id) + frames)
    rgb = rng.integers(0, 256, (frames, rgb_width), dtype=np.uint8)
    audio = rng.integers(0, 256, (frames, 128), dtype=np.uint8)
    context = features(**{id_key: bytes_feature(video_id), "labels": int64_feature(*labels)})
    payload = sequence_example(
        context,
        rgb=[bytes_feature(row.tobytes()) for row in rgb],
        audio=[bytes_feature(row.tobytes()) for row in audio],
    )
    return payload, rgb, audio


# ---- tests ----


def test_masked_crc32c_of_the_standard_check_vector():
    assert crc32c.crc32c(b"123456789") == 0xE3069283
    crc = 0xE3069283
    assert masked_crc(b"123456789") == ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF


def test_hand_built_frame_level_records_are_decoded(tmp_path):
    first, rgb, audio = hand_built_video()
    second, rgb2, _ = hand_built_video(b"zz99", labels=(0,), frames=5, id_key="video_id")  # 2017 layout
    path = tmp_path / "hand.tfrecord"
    path.write_bytes(frame(first) + frame(second))
    records = list(read_records(path))
    assert [r.id for r in records] == ["ab12", "zz99"]
    assert records[0].labels.tolist() == [3, 7] and records[1].labels.tolist() == [0]
    np.testing.assert_allclose(records[0].rgb, dequantized(rgb), atol=1e-6)
    np.testing.assert_allclose(records[0].audio, dequantized(audio), atol=1e-6)
    np.testing.assert_allclose(records[1].rgb, dequantized(rgb2), atol=1e-6)
    assert records[0].num_frames == 3 and records[0].rgb.dtype == np.float32
    assert len(list(read_records(path, max_frames=2))[1].rgb) == 2


def test_hand_built_video_level_record_with_segments(tmp_path):
    rgb, audio = np.linspace(-1, 1, 1024), np.linspace(0, 1, 128)
    video = features(
        id=bytes_feature(b"v1"),
        labels=int64_feature(5),
        mean_rgb=float_feature(*rgb),
        mean_audio=float_feature(*audio),
    )
    path = tmp_path / "video.tfrecord"
    path.write_bytes(frame(field(1, video)))  # Example.features
    (record,) = read_records(path)
    assert isinstance(record, VideoRecord) and record.id == "v1" and record.labels.tolist() == [5]
    np.testing.assert_allclose(record.mean_rgb, rgb, atol=1e-7)
    np.testing.assert_allclose(record.mean_audio, audio, atol=1e-7)

    payload, _, _ = hand_built_video(frames=2)
    segments = features(
        id=bytes_feature(b"s1"),
        labels=int64_feature(1),
        segment_labels=int64_feature(4, 9),
        segment_start_times=int64_feature(0, 5),
        segment_scores=float_feature(1.0, 0.0),
    )
    path.write_bytes(frame(sequence_example(segments, **_lists(payload))))
    (record,) = read_records(path)
    assert record.segment_labels.tolist() == [4, 9] and record.segment_start_times.tolist() == [0, 5]
    assert record.segment_scores.tolist() == [1.0, 0.0]


def _lists(payload: bytes) -> dict:
    from compactvideo.data.yt8m import SequenceExample

    message = SequenceExample.FromString(payload)
    return {
        name: [f.SerializeToString() for f in message.feature_lists.feature_list[name].feature]
        for name in ("rgb", "audio")
    }


def test_write_then_read_round_trips_through_the_quantiser(tmp_path):
    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, (4, 1024), dtype=np.uint8)
    written = [
        FrameRecord("a", np.array([1, 2]), dequantized(q).astype(np.float32), np.zeros((4, 128), np.float32)),
        FrameRecord(
            "b", np.array([], np.int64), np.full((1, 1024), 9.0, np.float32), np.ones((1, 128), np.float32)
        ),
    ]
    path = tmp_path / "out.tfrecord"
    assert write_records(path, written) == 2
    first, second = read_records(path)
    np.testing.assert_allclose(first.rgb, dequantized(q), atol=1e-6)  # quantise(dequantise(q)) == q
    assert first.labels.tolist() == [1, 2] and second.labels.tolist() == []
    np.testing.assert_allclose(second.rgb, dequantized(np.array(255)), atol=1e-6)  # 9.0 is clipped to 2
    assert [offset for offset, _ in iter_payloads(path)][0] == 0

    videos = [
        VideoRecord("v", np.array([3]), np.arange(1024, dtype=np.float32) / 1024, np.ones(128, np.float32))
    ]
    write_records(tmp_path / "v.tfrecord", videos)
    (back,) = read_records(tmp_path / "v.tfrecord")
    np.testing.assert_array_equal(back.mean_rgb, videos[0].mean_rgb)


@pytest.fixture
def two_records(tmp_path):
    first, _, _ = hand_built_video()
    second, _, _ = hand_built_video(b"cd34")
    path = tmp_path / "shard.tfrecord"
    data = frame(first) + frame(second)
    path.write_bytes(data)
    return path, data, len(frame(first))


def damage(path, data, position, value=None):
    damaged = bytearray(data)
    damaged[position] ^= 0xFF if value is None else value
    path.write_bytes(bytes(damaged))


def test_payload_crc_mismatch_names_file_and_offset(two_records):
    path, data, second_offset = two_records
    damage(path, data, second_offset + 12 + 40)
    with pytest.raises(
        CorruptRecordError, match=rf"shard.tfrecord: record at byte offset {second_offset}: payload CRC"
    ):
        list(read_records(path))


def test_length_crc_mismatch_and_truncation(two_records):
    path, data, second_offset = two_records
    damage(path, data, second_offset + 1)
    with pytest.raises(CorruptRecordError, match=rf"offset {second_offset}: length CRC mismatch"):
        list(read_records(path))
    path.write_bytes(data[:-10])
    with pytest.raises(CorruptRecordError, match=rf"offset {second_offset}: file ends inside the record"):
        list(read_records(path))
    path.write_bytes(data[: second_offset + 5])
    with pytest.raises(CorruptRecordError, match="file ends inside a record header"):
        list(read_records(path))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (hand_built_video(rgb_width=1000)[0], "frame 0 of 'rgb' has 1000 bytes, expected 1024 bytes"),
        (
            sequence_example(features(labels=int64_feature(1))),
            "missing feature 'id' \\(2018 layout\\) or 'video_id'",
        ),
        (
            sequence_example(features(id=int64_feature(4))),
            "feature 'id' holds int64_list, expected bytes_list",
        ),
        (
            sequence_example(features(id=bytes_feature(b"x")), rgb=[bytes_feature(bytes(1024))]),
            "missing feature list 'audio'",
        ),
    ],
)
def test_malformed_records_are_named(tmp_path, payload, message):
    good, _, _ = hand_built_video()
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(frame(good) + frame(payload))
    with pytest.raises(CorruptRecordError, match=rf"offset {len(frame(good))}: .*{message}"):
        list(read_records(path, level="frame"))


def test_skip_corrupt_counts_and_reports(two_records, tmp_path):
    path, data, second_offset = two_records
    damage(path, data, second_offset + 12 + 40)
    stats = ReadStats()
    with pytest.warns(UserWarning, match="read 2 records, skipped 2 damaged"):
        records = list(read_records([path, path], skip_corrupt=True, stats=stats))
    assert [r.id for r in records] == ["ab12", "ab12"] and stats.skipped == 2
    assert str(stats.errors[0]).startswith(f"{path}: record at byte offset {second_offset}")

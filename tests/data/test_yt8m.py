"""YouTube-8M parsing and writing, checked against records built by hand from the protobuf wire format."""

import struct

import numpy as np
import pytest

from compactvideo.data import CorruptRecordError, ReadStats
from compactvideo.data.tfrecord import frame_record as frame  # checked against hand framing in test_tfrecord
from compactvideo.data.tfrecord import iter_payloads
from compactvideo.data.yt8m import (
    FrameRecord,
    InvalidRecordError,
    VideoRecord,
    dequantize,
    quantize,
    read_records,
    write_records,
)
from compactvideo.errors import CompactVideoError

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


def test_dequantisation_is_the_starter_codes_formula_and_the_quantiser_inverts_it():
    q = np.arange(256, dtype=np.uint8)
    x = dequantize(q)
    assert x.dtype == np.float32
    # float32 q * float32(4/255) + float32(-1.9921875), as the starter code computes it: within 3 ulp
    np.testing.assert_allclose(x, np.arange(256.0) * 4 / 255 - 1.9921875, rtol=0, atol=4e-7)
    assert x[0] == -1.9921875 and abs(x[255] - 2.0078125) < 1e-6  # bin centres, half a bin past +-2
    np.testing.assert_array_equal(quantize(x), q)
    np.testing.assert_array_equal(quantize(np.array([-9.0, -2.0, 0.0, 2.0, 9.0])), [0, 0, 128, 255, 255])


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


def video_level(**named: bytes) -> bytes:
    """An Example (field 1: features) holding ``named`` features."""
    return field(1, features(**named))


def good_video_level(key: str = "id") -> dict[str, bytes]:
    return {
        key: bytes_feature(b"v9"),
        "labels": int64_feature(2, 4),
        "mean_rgb": float_feature(*np.zeros(1024)),
        "mean_audio": float_feature(*np.zeros(128)),
    }


def test_the_2017_video_level_layout_is_read(tmp_path):
    path = tmp_path / "video.tfrecord"
    path.write_bytes(frame(video_level(**good_video_level("video_id"))))
    (record,) = read_records(path)
    assert record.id == "v9" and record.labels.tolist() == [2, 4] and record.mean_audio.shape == (128,)


def test_a_record_read_at_the_wrong_level_is_named(tmp_path):
    payload, _, _ = hand_built_video()
    path = tmp_path / "frames.tfrecord"
    path.write_bytes(frame(payload))
    with pytest.raises(CorruptRecordError, match="offset 0: missing feature 'mean_rgb'"):
        list(read_records(path, level="video"))
    with pytest.raises(CompactVideoError, match="level must be 'frame', 'video' or None"):
        list(read_records(path, level="frames"))


@pytest.fixture
def two_records(tmp_path):
    first, _, _ = hand_built_video()
    second, _, _ = hand_built_video(b"cd34")
    path = tmp_path / "shard.tfrecord"
    data = frame(first) + frame(second)
    path.write_bytes(data)
    return path, data, len(frame(first))


def damage(path, data, position):
    damaged = bytearray(data)
    damaged[position] ^= 0xFF
    path.write_bytes(bytes(damaged))


def test_framing_errors_reach_the_reader_with_file_and_offset(two_records):
    path, data, second_offset = two_records
    damage(path, data, second_offset + 12 + 40)
    with pytest.raises(
        CorruptRecordError, match=rf"shard.tfrecord: record at byte offset {second_offset}: payload CRC"
    ):
        list(read_records(path))
    damage(path, data, second_offset + 1)
    with pytest.raises(CorruptRecordError, match=rf"offset {second_offset}: length CRC mismatch"):
        list(read_records(path))
    path.write_bytes(data[:-10])
    with pytest.raises(CorruptRecordError, match=rf"offset {second_offset}: file ends inside the record"):
        list(read_records(path))


def _with_bad_audio_frame() -> bytes:
    rgb = [bytes_feature(bytes(1024))] * 3
    audio = [bytes_feature(bytes(128)), bytes_feature(bytes(127)), bytes_feature(bytes(128))]
    return sequence_example(features(id=bytes_feature(b"ef56")), rgb=rgb, audio=audio)


FRAME_LEVEL_DAMAGE = [
    (hand_built_video(rgb_width=1000)[0], "video ab12: frame 0 of 'rgb' has 1000 bytes, expected 1024 bytes"),
    (_with_bad_audio_frame(), "video ef56: frame 1 of 'audio' has 127 bytes, expected 128 bytes"),
    (
        sequence_example(
            features(id=bytes_feature(b"x")),
            rgb=[field(1, field(1, bytes(1024)) + field(1, bytes(1024)))],
            audio=[bytes_feature(bytes(128))],
        ),
        "video x: frame 0 of 'rgb' has 2 byte strings, expected 1024 bytes",
    ),
    (
        sequence_example(
            features(id=bytes_feature(b"x")),
            rgb=[bytes_feature(bytes(1024))] * 2,
            audio=[bytes_feature(bytes(128))],
        ),
        "video x: 2 rgb frames but 1 audio frames",
    ),
    (
        sequence_example(features(labels=int64_feature(1))),
        "missing feature 'id' \\(2018 layout\\) or 'video_id'",
    ),
    (sequence_example(features(id=int64_feature(4))), "feature 'id' holds int64_list, expected bytes_list"),
    (
        sequence_example(features(id=bytes_feature(b"x")), rgb=[bytes_feature(bytes(1024))]),
        "video x: missing feature list 'audio'",
    ),
    (
        sequence_example(
            features(
                id=bytes_feature(b"s"),
                segment_labels=int64_feature(1, 2),
                segment_start_times=int64_feature(0),
            ),
            **_lists(hand_built_video(frames=1)[0]),
        ),
        "video s: segment fields of different lengths",
    ),
    (b"\xff\xff\xff", "not a valid SequenceExample \\(Error parsing message"),
]

VIDEO_LEVEL_DAMAGE = [
    (
        video_level(**{**good_video_level(), "mean_rgb": float_feature(*np.zeros(1000))}),
        "video v9: 'mean_rgb' has 1000 values, expected 1024",
    ),
    (
        video_level(**{**good_video_level(), "mean_audio": bytes_feature(b"a")}),
        "feature 'mean_audio' holds bytes_list, expected float_list",
    ),
    (
        video_level(**{k: v for k, v in good_video_level().items() if k != "mean_audio"}),
        "missing feature 'mean_audio'",
    ),
]


@pytest.mark.parametrize(
    ("level", "payload", "message"),
    [("frame", *case) for case in FRAME_LEVEL_DAMAGE] + [("video", *case) for case in VIDEO_LEVEL_DAMAGE],
)
def test_malformed_records_are_named_by_file_offset_and_problem(tmp_path, level, payload, message):
    good = hand_built_video()[0] if level == "frame" else video_level(**good_video_level())
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(frame(good) + frame(payload) + frame(good))
    with pytest.raises(
        CorruptRecordError, match=rf"^{path}: record at byte offset {len(frame(good))}: {message}"
    ):
        list(read_records(path, level=level))
    stats = ReadStats()
    kept = list(read_records(path, level=level, skip_corrupt=True, stats=stats, warn=False))
    assert len(kept) == 2 and (stats.records, stats.skipped) == (2, 1)  # reading goes on after the record


def test_skip_corrupt_counts_and_reports(two_records, tmp_path):
    path, data, second_offset = two_records
    damage(path, data, second_offset + 12 + 40)
    stats = ReadStats()
    with pytest.warns(UserWarning, match="read 2 records, skipped 2 damaged"):
        records = list(read_records([path, path], skip_corrupt=True, stats=stats))
    assert [r.id for r in records] == ["ab12", "ab12"] and stats.skipped == 2
    assert stats.messages() == [
        f"{path}: record at byte offset {second_offset}: payload CRC mismatch ({len(data) - second_offset:,} "
        "bytes skipped)"
    ]
    assert (stats.files[str(path)].records, stats.files[str(path)].skipped) == (2, 2)  # read twice


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            FrameRecord("a", np.array([1]), np.zeros((2, 1024)), np.zeros((3, 128))),
            "2 rgb and 3 audio frames",
        ),
        (FrameRecord("b", np.array([1]), np.zeros((2, 1000)), np.zeros((2, 128))), "rgb frames must be"),
        (FrameRecord("c", np.array([1]), np.zeros((0, 1024)), np.zeros((0, 128))), "at least 1"),
        (VideoRecord("d", np.array([1]), np.zeros(1024), np.zeros(127)), "mean_audio must be \\[128\\]"),
    ],
)
def test_records_that_would_make_a_bad_file_are_refused(tmp_path, record, message):
    good = FrameRecord("ok", np.array([0]), np.zeros((1, 1024)), np.zeros((1, 128)))
    if isinstance(record, VideoRecord):
        good = VideoRecord("ok", np.array([0]), np.zeros(1024), np.zeros(128))
    with pytest.raises(InvalidRecordError, match=rf"video {record.id}: .*{message}") as info:
        write_records(tmp_path / "out.tfrecord", [good, record])
    assert isinstance(info.value, CompactVideoError)
    assert list(tmp_path.iterdir()) == []


def _outcome(path, payload: bytes):
    """What reading one record gives: (id, labels, rgb, audio) or the word 'corrupt'."""
    path.write_bytes(frame(payload))
    try:
        (record,) = read_records(path, level="frame")
    except CorruptRecordError:
        return "corrupt"
    return record.id, record.labels.tolist(), record.rgb.tobytes(), record.audio.tobytes()


def test_the_hand_walked_wire_format_agrees_with_protobuf_on_damaged_records(tmp_path, monkeypatch):
    """Random edits (mostly in the message structure) read the same with and without the fast walker."""
    payload, _, _ = hand_built_video(frames=3)
    rng = np.random.default_rng(0)
    damaged = []
    for _ in range(400):
        edited = bytearray(payload)
        position = int(rng.integers(80)) if rng.random() < 0.6 else int(rng.integers(len(payload)))
        edit = rng.integers(3)
        if edit == 0:
            edited[position] = int(rng.integers(256))
        elif edit == 1:
            del edited[position]
        else:
            edited.insert(position, int(rng.integers(256)))
        damaged.append(bytes(edited))
    fast = [_outcome(tmp_path / "a.tfrecord", p) for p in damaged]
    monkeypatch.setattr("compactvideo.data.yt8m._walk_sequence_example", lambda payload: None)
    slow = [_outcome(tmp_path / "a.tfrecord", p) for p in damaged]
    assert fast == slow
    assert 50 < fast.count("corrupt") < 350  # both kinds of outcome were exercised


def test_unusual_but_valid_layouts_read_like_the_usual_one(tmp_path):
    rgb = [bytes_feature(bytes([7]) * 1024)] * 2
    audio = [bytes_feature(bytes([9]) * 128)] * 2
    id_part, labels_part = features(id=bytes_feature(b"u1")), features(labels=int64_feature(5))
    lists = sequence_example(b"", rgb=rgb, audio=audio)[2:]  # field 1 (empty context) dropped
    usual = field(1, id_part + labels_part) + lists
    expected = _outcome(tmp_path / "a.tfrecord", usual)
    assert expected[:2] == ("u1", [5])
    for layout in (
        lists + field(1, id_part + labels_part),  # feature lists first
        field(1, id_part) + lists + field(1, labels_part),  # the context in two parts, merged
        field(1, id_part + labels_part) + varint(3 << 3) + varint(1) + lists,  # an unknown varint field
        field(1, id_part + labels_part) + field(9, b"\xff\xff") + lists,  # an unknown length-delimited one
    ):
        assert _outcome(tmp_path / "a.tfrecord", layout) == expected

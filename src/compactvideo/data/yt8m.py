"""YouTube-8M records: the protobuf messages, parsing, dequantisation, reading and writing.

Video-level records are ``tf.train.Example`` with context ``id`` (2018; ``video_id`` in 2017), ``labels``
(int64) and float features ``mean_rgb`` [1024] and ``mean_audio`` [128]. Frame-level records are
``tf.train.SequenceExample`` with the same context and feature lists ``rgb`` and ``audio`` holding one
byte string per frame (1024 and 128 quantised bytes). Frames are dequantised as the starter code does:

    x = q * (max - min) / 255 + (max - min) / 512 + min = q * 4/255 - 1.9921875   (max 2, min -2),

the inverse of the quantiser q = round((clip(x, -2, 2) + 2) * 255 / 4). The 2019 segment fields
(``segment_labels``, ``segment_start_times``, ``segment_scores``) are read when present.

The messages are declared under our own protobuf package ``compactvideo.yt8m`` in a private descriptor
pool, so TensorFlow (which registers ``tensorflow.Example``) can be imported in the same process. The
wire format is TensorFlow's, field for field. Frame-level records are read without decoding each frame
as a message: the SequenceExample's few enclosing fields are walked by hand, and a feature list of T
well-formed frames, which is T rows of (the same 9-byte field prefix, the frame), is checked row
by row and read with one ``frombuffer``; any other layout goes through protobuf. The frames are
uint8 views of the record's bytes until someone asks for numbers: :func:`read_records` dequantises them
(the float32 frames users expect) unless ``quantized=True``, which the training loader uses to draw the
frames it keeps first and turn only those into numbers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from compactvideo.data.damage import CorruptRecordError, ReadStats
from compactvideo.data.tfrecord import FRAMING_BYTES, iter_payloads, write_payloads
from compactvideo.errors import CompactVideoError

RGB_SIZE, AUDIO_SIZE = 1024, 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
_SCALE = (QUANTIZE_MAX - QUANTIZE_MIN) / 255.0
# x = q * DEQUANTIZE_SCALE + DEQUANTIZE_OFFSET, both float32: what every dequantisation computes (the
# numpy one below, and a model's input transform on its device), so that all agree bit for bit.
DEQUANTIZE_SCALE = np.float32(_SCALE)
DEQUANTIZE_OFFSET = np.float32((QUANTIZE_MAX - QUANTIZE_MIN) / 512 + QUANTIZE_MIN)


def dequantize(quantized: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 -> float32: q * 4/255 - 1.9921875, computed as the starter code does, float32(q) * float32(4/255)
    + float32(-1.9921875), so within 3e-7 of the exact value (q = 0 gives -1.9921875, q = 255 2.0078125).

    ``out``: a float32 array of the same shape to write into (a slice of a batch), else a new one.
    """
    out = np.multiply(quantized, DEQUANTIZE_SCALE, out=out, dtype=np.float32)
    out += DEQUANTIZE_OFFSET
    return out


def quantize(values: np.ndarray) -> np.ndarray:
    """float -> uint8: round((clip(x, -2, 2) + 2) * 255 / 4), the official quantiser."""
    return np.rint((np.clip(values, QUANTIZE_MIN, QUANTIZE_MAX) - QUANTIZE_MIN) / _SCALE).astype(np.uint8)


def _message_classes() -> dict[str, type]:
    """Example / SequenceExample and their parts, declared from a FileDescriptorProto (proto3)."""
    P = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="compactvideo/yt8m.proto", package="compactvideo.yt8m", syntax="proto3"
    )

    def message(name: str, *fields: tuple, oneof: str | None = None, entries: Sequence = ()) -> None:
        descriptor = proto.message_type.add(name=name)
        if oneof:
            descriptor.oneof_decl.add(name=oneof)
        for number, field_name, kind, label, type_name in fields:
            added = descriptor.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                added.type_name = type_name
            if oneof:
                added.oneof_index = 0
        for entry_name, value_type in entries:  # map<string, value_type> fields
            entry = descriptor.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=P.TYPE_STRING, label=P.LABEL_OPTIONAL)
            entry.field.add(
                name="value", number=2, type=P.TYPE_MESSAGE, label=P.LABEL_OPTIONAL, type_name=value_type
            )

    repeated, optional = P.LABEL_REPEATED, P.LABEL_OPTIONAL
    message("BytesList", (1, "value", P.TYPE_BYTES, repeated, None))
    message("FloatList", (1, "value", P.TYPE_FLOAT, repeated, None))
    message("Int64List", (1, "value", P.TYPE_INT64, repeated, None))
    message(
        "Feature",
        (1, "bytes_list", P.TYPE_MESSAGE, optional, ".compactvideo.yt8m.BytesList"),
        (2, "float_list", P.TYPE_MESSAGE, optional, ".compactvideo.yt8m.FloatList"),
        (3, "int64_list", P.TYPE_MESSAGE, optional, ".compactvideo.yt8m.Int64List"),
        oneof="kind",
    )
    message(
        "Features",
        (1, "feature", P.TYPE_MESSAGE, repeated, ".compactvideo.yt8m.Features.FeatureEntry"),
        entries=[("FeatureEntry", ".compactvideo.yt8m.Feature")],
    )
    message("FeatureList", (1, "feature", P.TYPE_MESSAGE, repeated, ".compactvideo.yt8m.Feature"))
    message(
        "FeatureLists",
        (1, "feature_list", P.TYPE_MESSAGE, repeated, ".compactvideo.yt8m.FeatureLists.FeatureListEntry"),
        entries=[("FeatureListEntry", ".compactvideo.yt8m.FeatureList")],
    )
    message("Example", (1, "features", P.TYPE_MESSAGE, optional, ".compactvideo.yt8m.Features"))
    message(
        "SequenceExample",
        (1, "context", P.TYPE_MESSAGE, optional, ".compactvideo.yt8m.Features"),
        (2, "feature_lists", P.TYPE_MESSAGE, optional, ".compactvideo.yt8m.FeatureLists"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"compactvideo.yt8m.{name}"))
        for name in ("Example", "SequenceExample", "Features", "Feature", "FeatureList")
    }


_MESSAGES = _message_classes()
Example, SequenceExample = _MESSAGES["Example"], _MESSAGES["SequenceExample"]


@dataclass
class FrameRecord:
    """A frame-level video: frames [T, 1024] and [T, 128], T <= max_frames, dequantised to float32, or the
    quantised uint8 bytes as stored (read-only views of the record) when read with ``quantized=True``."""

    id: str
    labels: np.ndarray
    rgb: np.ndarray
    audio: np.ndarray
    segment_labels: np.ndarray | None = None
    segment_start_times: np.ndarray | None = None
    segment_scores: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.rgb)


@dataclass
class VideoRecord:
    """A video-level record: mean features and labels."""

    id: str
    labels: np.ndarray
    mean_rgb: np.ndarray
    mean_audio: np.ndarray


class _Problem(Exception):
    """A parsing problem; turned into CorruptRecordError with the file and offset by the reader."""


class InvalidRecordError(CompactVideoError, ValueError):
    """A record handed to :func:`write_records` that would not make a valid file (names the video id)."""


def _feature(features, name: str, kind: str, required: bool = True):
    if name not in features.feature:
        if required:
            raise _Problem(f"missing feature {name!r}")
        return None
    feature = features.feature[name]
    if feature.WhichOneof("kind") != kind:
        raise _Problem(f"feature {name!r} holds {feature.WhichOneof('kind')}, expected {kind}")
    return getattr(feature, kind).value


def _context(features) -> tuple[str, np.ndarray]:
    key = "id" if "id" in features.feature else "video_id"  # 2018 layout, 2017 layout
    if key not in features.feature:
        raise _Problem("missing feature 'id' (2018 layout) or 'video_id' (2017 layout)")
    ids = _feature(features, key, "bytes_list")
    if len(ids) != 1:
        raise _Problem(f"feature {key!r} has {len(ids)} values, expected 1")
    labels = _feature(features, "labels", "int64_list", required=False)
    return ids[0].decode("utf-8", "replace"), np.asarray(labels if labels is not None else [], dtype=np.int64)


def _frame_prefix(width: int) -> bytes:
    """The wire bytes that precede each frame's data in a serialised FeatureList of ``width``-byte frames."""
    feature = _MESSAGES["Feature"]()
    feature.bytes_list.value.append(bytes(width))
    return _MESSAGES["FeatureList"](feature=[feature]).SerializeToString()[:-width]


_PREFIXES = {width: np.frombuffer(_frame_prefix(width), dtype=np.uint8) for width in (RGB_SIZE, AUDIO_SIZE)}


def _varint(data: memoryview, position: int, end: int) -> tuple[int, int] | None:
    """(value, next position) of the base-128 varint at ``position``; None if it runs past ``end``."""
    value = shift = 0
    while position < end and shift < 64:
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return value, position
        shift += 7
    return None


def _submessages(data: memoryview) -> list[tuple[int, memoryview]] | None:
    """(field number, bytes) of every field of a message whose fields are all length-delimited.

    None for anything else (another wire type, a length past the end): the caller then lets protobuf
    parse the message, which handles every valid encoding and rejects invalid ones.
    """
    fields, position, end = [], 0, len(data)
    while position < end:
        tag = _varint(data, position, end)
        if tag is None or tag[0] & 7 != 2:
            return None
        length = _varint(data, tag[1], end)
        if length is None or length[1] + length[0] > end:
            return None
        fields.append((tag[0] >> 3, data[length[1] : length[1] + length[0]]))
        position = length[1] + length[0]
    return fields


def _walk_sequence_example(payload: memoryview) -> tuple[memoryview, dict[str, memoryview]] | None:
    """The serialised context and feature lists of a SequenceExample in the usual layout, else None.

    SequenceExample = {1: context (Features), 2: feature_lists {1: entry {1: key, 2: FeatureList}}},
    each part once: the wire format is walked by hand, without decoding the frames.
    """
    top = _submessages(payload)
    numbers = [number for number, _ in top or ()]
    if top is None or numbers.count(1) > 1 or numbers.count(2) > 1:
        return None
    parts = dict(top)
    entries = _submessages(parts.get(2, payload[:0]))
    if entries is None:
        return None
    lists = {}
    for number, entry in entries:
        fields = _submessages(entry)
        if number != 1 or fields is None or [n for n, _ in fields] != [1, 2]:
            return None
        key = bytes(fields[0][1]).decode("utf-8", "replace")
        if key in lists:
            return None
        lists[key] = fields[1][1]
    return parts.get(1, payload[:0]), lists


def _sequence_parts(payload: memoryview) -> tuple[bytes | memoryview, dict[str, bytes | memoryview]]:
    """The serialised context and feature lists of a SequenceExample: walked by hand in the usual layout;
    any other layout, valid or not, is parsed by protobuf (which raises DecodeError for invalid ones)."""
    parts = _walk_sequence_example(payload)
    if parts is not None:
        return parts
    message = SequenceExample.FromString(payload)
    lists = {name: value.SerializeToString() for name, value in message.feature_lists.feature_list.items()}
    return message.context.SerializeToString(), lists


def _frames(
    lists: dict[str, bytes | memoryview], name: str, width: int, max_frames: int, video_id: str
) -> np.ndarray:
    """[T, width] quantised uint8 frames of a serialised FeatureList, T <= max_frames.

    Fast path: a FeatureList of T well-formed frames is T rows of (the constant field prefix, the
    frame's bytes); checking every row's prefix proves it, and the frames are a strided view of those
    bytes (no copy). Anything else is parsed by protobuf, frame by frame, which names the first bad frame.
    """
    if name not in lists:
        raise _Problem(f"video {video_id}: missing feature list {name!r}")
    wire = np.frombuffer(lists[name], dtype=np.uint8)
    prefix = _PREFIXES[width]
    stride = len(prefix) + width
    if len(wire) % stride == 0:
        rows = wire.reshape(-1, stride)
        if (rows[:, : len(prefix)] == prefix).all():
            return rows[:max_frames, len(prefix) :]
    features = _MESSAGES["FeatureList"].FromString(lists[name]).feature[:max_frames]
    for index, frame in enumerate(features):
        values = frame.bytes_list.value
        if len(values) != 1 or len(values[0]) != width:
            size = f"{len(values[0])} bytes" if len(values) == 1 else f"{len(values)} byte strings"
            raise _Problem(f"video {video_id}: frame {index} of {name!r} has {size}, expected {width} bytes")
    return np.frombuffer(b"".join([f.bytes_list.value[0] for f in features]), np.uint8).reshape(-1, width)


def parse_frame_record(
    payload: bytes | memoryview, max_frames: int = 300, quantized: bool = False
) -> FrameRecord:
    """A SequenceExample's id, labels, frames (at most ``max_frames``) and segment fields.

    The frames are dequantised to float32, or with ``quantized`` left as the uint8 bytes of the record
    (read-only views: the record's bytes stay alive as long as the frames do).
    """
    serialised_context, lists = _sequence_parts(memoryview(payload))
    context = _MESSAGES["Features"].FromString(serialised_context)
    video_id, labels = _context(context)
    rgb = _frames(lists, "rgb", RGB_SIZE, max_frames, video_id)
    audio = _frames(lists, "audio", AUDIO_SIZE, max_frames, video_id)
    if len(rgb) != len(audio):
        raise _Problem(f"video {video_id}: {len(rgb)} rgb frames but {len(audio)} audio frames")
    if len(rgb) == 0:
        raise _Problem(f"video {video_id} has no frames")
    if not quantized:
        rgb, audio = dequantize(rgb), dequantize(audio)
    segments = {}
    for name, kind, dtype in (
        ("segment_labels", "int64_list", np.int64),
        ("segment_start_times", "int64_list", np.int64),
        ("segment_scores", "float_list", np.float32),
    ):
        values = _feature(context, name, kind, required=False)
        segments[name] = None if values is None else np.asarray(values, dtype=dtype)
    lengths = {name: len(values) for name, values in segments.items() if values is not None}
    if len(set(lengths.values())) > 1:
        raise _Problem(f"video {video_id}: segment fields of different lengths {lengths}")
    return FrameRecord(video_id, labels, rgb, audio, **segments)


def parse_video_record(payload: bytes | memoryview) -> VideoRecord:
    features = Example.FromString(payload).features
    video_id, labels = _context(features)
    arrays = []
    for name, width in (("mean_rgb", RGB_SIZE), ("mean_audio", AUDIO_SIZE)):
        values = np.asarray(_feature(features, name, "float_list"), dtype=np.float32)
        if len(values) != width:
            raise _Problem(f"video {video_id}: {name!r} has {len(values)} values, expected {width}")
        arrays.append(values)
    return VideoRecord(video_id, labels, *arrays)


def read_records(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    max_frames: int = 300,
    skip_corrupt: bool = False,
    level: str | None = None,
    stats: ReadStats | None = None,
    warn: bool = True,
    num_classes: int | None = None,
    max_skipped: int | None = None,
    quantized: bool = False,
) -> Iterator[FrameRecord | VideoRecord]:
    """Yield the records of one or more shards (local paths or fsspec URLs), in order.

    ``level`` is "frame" or "video"; by default each file's first record decides. With ``num_classes``,
    a record with a label outside 0 .. num_classes - 1 is damaged too. A damaged record raises
    :class:`CorruptRecordError` naming the file and byte offset. With ``skip_corrupt=True`` only the
    damaged bytes are lost (see :mod:`compactvideo.data.tfrecord`): reading goes on at the next intact
    record, and what was read and skipped is counted per file in ``stats``, reported as a warning
    when the files are exhausted (unless ``warn=False``). ``max_skipped`` bounds the skips counted in
    ``stats`` (by this read and earlier ones into the same ``stats``): one more raises
    :class:`TooManySkippedError` naming the count and the first damaged offsets. Frames are float32;
    ``quantized=True`` keeps them as the stored uint8 bytes (read-only views, no copy).
    """
    if level not in (None, "frame", "video"):
        raise CompactVideoError(f"level must be 'frame', 'video' or None (from the file), got {level!r}")
    if max_skipped is not None and max_skipped < 0:
        raise CompactVideoError(f"max_skipped must be at least 0 (or None: unlimited), got {max_skipped}")
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        stats.file(path)  # listed even if it holds no record
        file_level = level
        for offset, payload in iter_payloads(path, stats if skip_corrupt else None, max_skipped):
            try:
                if file_level is None:
                    file_level = _guess_level(payload)
                record = _parse(payload, file_level, max_frames, num_classes, quantized)
            except DecodeError as problem:
                expected = {"frame": "SequenceExample", "video": "Example"}.get(file_level, "protobuf")
                error = CorruptRecordError(path, offset, f"not a valid {expected} ({problem})")
            except _Problem as problem:
                error = CorruptRecordError(path, offset, str(problem))
            else:
                stats.file(path).records += 1  # looked up each time: a reader may take() the counts
                yield record
                continue
            if not skip_corrupt:
                raise error from None
            stats.skip(error, len(payload) + FRAMING_BYTES)
            stats.check(max_skipped)
    if stats.skipped and warn:
        warnings.warn(stats.summary(), stacklevel=2)


def _parse(
    payload: memoryview, level: str, max_frames: int, num_classes: int | None, quantized: bool
) -> FrameRecord | VideoRecord:
    if level == "frame":
        record = parse_frame_record(payload, max_frames, quantized)
    else:
        record = parse_video_record(payload)
    labels = record.labels
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise _Problem(
            f"video {record.id}: labels {labels.tolist()} outside the {num_classes} classes "
            "(0 .. num_classes - 1); pass --num-classes to match the data"
        )
    return record


def _guess_level(payload: bytes | memoryview) -> str:
    sequence = SequenceExample.FromString(payload)
    return "frame" if len(sequence.feature_lists.feature_list) else "video"


def _serialise(record: FrameRecord | VideoRecord) -> bytes:
    if isinstance(record, FrameRecord):
        message = SequenceExample()
        context = message.context.feature
        if len(record.rgb) != len(record.audio) or len(record.rgb) == 0:
            raise InvalidRecordError(
                f"video {record.id}: {len(record.rgb)} rgb and {len(record.audio)} audio frames, "
                "expected the same number, at least 1"
            )
        for name, frames, width in (("rgb", record.rgb, RGB_SIZE), ("audio", record.audio, AUDIO_SIZE)):
            quantised = frames if frames.dtype == np.uint8 else quantize(frames)
            if quantised.ndim != 2 or quantised.shape[1] != width:
                raise InvalidRecordError(
                    f"video {record.id}: {name} frames must be [T, {width}], got {quantised.shape}"
                )
            feature_list = message.feature_lists.feature_list[name].feature
            for row in quantised:
                feature_list.add().bytes_list.value.append(row.tobytes())
        for name in ("segment_labels", "segment_start_times"):
            if getattr(record, name) is not None:
                context[name].int64_list.value.extend(getattr(record, name).tolist())
        if record.segment_scores is not None:
            context["segment_scores"].float_list.value.extend(record.segment_scores.tolist())
    else:
        message = Example()
        context = message.features.feature
        for name, values, width in (
            ("mean_rgb", record.mean_rgb, RGB_SIZE),
            ("mean_audio", record.mean_audio, AUDIO_SIZE),
        ):
            values = np.asarray(values, dtype=np.float32)
            if values.shape != (width,):
                raise InvalidRecordError(f"video {record.id}: {name} must be [{width}], got {values.shape}")
            context[name].float_list.value.extend(values.tolist())
    context["id"].bytes_list.value.append(record.id.encode())
    context["labels"].int64_list.value.extend(np.asarray(record.labels, dtype=np.int64).tolist())
    return message.SerializeToString()


def write_records(path: str | os.PathLike, records: Iterable[FrameRecord | VideoRecord]) -> int:
    """Write a TFRecord file that TensorFlow reads (float frames are quantised); return the count.

    Raises :class:`InvalidRecordError` for a record of the wrong shape; the file is then not created.
    """
    return write_payloads(Path(path), (_serialise(record) for record in records))

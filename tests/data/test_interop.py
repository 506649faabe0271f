"""Interop with an independent implementation: the ``tfrecord`` package (in the ``dev`` extra).

It frames records and encodes protobufs with its own code and registers ``tensorflow.Example`` in the
default descriptor pool, as TensorFlow does; compactvideo's messages live in a private pool beside it.
"""

import numpy as np
from tfrecord.reader import sequence_loader, tfrecord_loader
from tfrecord.writer import TFRecordWriter

from compactvideo.data.yt8m import FrameRecord, VideoRecord, dequantize, read_records, write_records


def test_files_written_by_the_tfrecord_package_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 1024), dtype=np.uint8)
    audio = rng.integers(0, 256, (5, 128), dtype=np.uint8)
    mean_rgb, mean_audio = rng.normal(size=1024).astype(np.float32), rng.normal(size=128).astype(np.float32)
    frames, videos = tmp_path / "frames.tfrecord", tmp_path / "videos.tfrecord"
    writer = TFRecordWriter(str(frames))
    writer.write(
        {"id": (b"Ab9z", "byte"), "labels": ([3, 3861], "int")},
        {
            "rgb": ([row.tobytes() for row in rgb], "byte"),
            "audio": ([row.tobytes() for row in audio], "byte"),
        },
    )
    writer.close()
    writer = TFRecordWriter(str(videos))
    writer.write(
        {
            "id": (b"Qq00", "byte"),
            "labels": ([7], "int"),
            "mean_rgb": (mean_rgb, "float"),
            "mean_audio": (mean_audio, "float"),
        }
    )
    writer.close()

    (video,) = read_records(frames)  # CRCs checked, so the package's framing agrees too
    assert (video.id, video.labels.tolist()) == ("Ab9z", [3, 3861])
    np.testing.assert_array_equal(video.rgb, dequantize(rgb))
    np.testing.assert_array_equal(video.audio, dequantize(audio))
    (mean,) = read_records(videos)
    assert (mean.id, mean.labels.tolist()) == ("Qq00", [7])
    np.testing.assert_array_equal(mean.mean_rgb, mean_rgb)
    np.testing.assert_array_equal(mean.mean_audio, mean_audio)


def test_files_written_by_compactvideo_are_read_by_the_tfrecord_package(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (4, 1024), dtype=np.uint8)
    audio = rng.integers(0, 256, (4, 128), dtype=np.uint8)
    write_records(tmp_path / "f.tfrecord", [FrameRecord("v1", np.array([2, 9]), rgb, audio)])
    description = {"id": "byte", "labels": "int"}
    ((context, lists),) = sequence_loader(
        str(tmp_path / "f.tfrecord"), None, description, {"rgb": "byte", "audio": "byte"}
    )
    assert bytes(context["id"]) == b"v1" and context["labels"].tolist() == [2, 9]
    assert [bytes(frame) for frame in lists["rgb"]] == [row.tobytes() for row in rgb]
    assert [bytes(frame) for frame in lists["audio"]] == [row.tobytes() for row in audio]

    means = np.linspace(-1, 1, 1024, dtype=np.float32), np.linspace(0, 1, 128, dtype=np.float32)
    write_records(tmp_path / "v.tfrecord", [VideoRecord("v2", np.array([5]), *means)])
    (example,) = tfrecord_loader(
        str(tmp_path / "v.tfrecord"), None, {**description, "mean_rgb": "float", "mean_audio": "float"}
    )
    np.testing.assert_array_equal(example["mean_rgb"], means[0])
    np.testing.assert_array_equal(example["mean_audio"], means[1])

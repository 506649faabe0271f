"""Reading frame-level YouTube-8M records: compactvideo's reader against the ``tfrecord`` package.

1000 videos of 300 frames (1024 + 128 quantised bytes each) are written to a temporary file, then read
from the page cache on 1 thread by both readers, alternately, each producing what training needs:
id, labels and dequantised float32 rgb [300, 1024] and audio [300, 128]. compactvideo also checks
both CRCs of every record; ``tfrecord`` checks none. Target (issue 3): at least 2x its videos/s.

    pip install -c constraints.txt -e ".[bench]"   # the tfrecord package, for this benchmark only
    python benchmarks/read_tfrecord.py [--videos 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from compactvideo.data.yt8m import FrameRecord, dequantize, read_records, write_records
from compactvideo.profile import describe_machine


def write_videos(path: Path, videos: int, frames: int = 300) -> int:
    rng = np.random.default_rng(0)
    records = (
        FrameRecord(
            f"{index:06d}",
            np.sort(rng.choice(3862, 3, replace=False)),
            rng.integers(0, 256, (frames, 1024), dtype=np.uint8),
            rng.integers(0, 256, (frames, 128), dtype=np.uint8),
        )
        for index in range(videos)
    )
    return write_records(path, records)


def read_with_compactvideo(path: Path) -> int:
    return sum(record.rgb.shape[0] > 0 for record in read_records(path))


def read_with_tfrecord_package(path: Path) -> int:
    from tfrecord.reader import sequence_loader

    count = 0
    loader = sequence_loader(
        str(path), None, {"id": "byte", "labels": "int"}, {"rgb": "byte", "audio": "byte"}
    )
    for context, features in loader:
        video_id = bytes(context["id"]).decode()
        rgb = dequantize(np.frombuffer(b"".join(features["rgb"]), np.uint8).reshape(-1, 1024))
        audio = dequantize(np.frombuffer(b"".join(features["audio"]), np.uint8).reshape(-1, 128))
        count += bool(video_id) and rgb.shape == (300, 1024) and audio.shape == (300, 128)
    return count


def best_rate(read, path: Path, videos: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        assert read(path) == videos
        times.append(time.perf_counter() - start)
    return videos / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frames.tfrecord"
        write_videos(path, args.videos)
        megabytes = path.stat().st_size / 2**20
        ours = best_rate(read_with_compactvideo, path, args.videos, args.repeats)
        theirs = best_rate(read_with_tfrecord_package, path, args.videos, args.repeats)
    print(f"{args.videos} videos of 300 frames, {megabytes:.0f} MiB, best of {args.repeats} reads")
    print(f"{'reader':<34} {'videos/s':>9} {'MiB/s':>7}")
    for name, rate in (("tfrecord 1.14 sequence_loader", theirs), ("compactvideo read_records", ours)):
        print(f"{name:<34} {rate:>9.0f} {rate * megabytes / args.videos:>7.0f}")
    print(f"speed-up: {ours / theirs:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()

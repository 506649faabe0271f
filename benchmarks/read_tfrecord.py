"""Reading frame-level YouTube-8M records: compactvideo's reader against the ``tfrecord`` package.

1000 synthetic videos of 300 frames (1024 + 128 quantised bytes each, written by
:mod:`compactvideo.data.synthetic` in the real format) go to a temporary file, then are read from the
page cache on 1 thread by both readers, one after the other, each producing what training needs:
id, labels and dequantised float32 rgb [300, 1024] and audio [300, 128]. compactvideo also checks
both CRCs of every record; ``tfrecord`` checks none. Target (issue 3): at least 2x its videos/s.

Then the resynchronising search (issue 12): the same shard with 64 MiB of random bytes inserted after
its first record is read with ``skip_corrupt``; its MiB/s over the garbage is compared with the MiB/s
of reading intact records in the same run.

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

from compactvideo.data import ReadStats
from compactvideo.data.synthetic import synthesize
from compactvideo.data.tfrecord import iter_payloads
from compactvideo.data.yt8m import dequantize, read_records
from compactvideo.profiling import describe_machine


def read_with_compactvideo(path: Path) -> int:
    count = 0
    for record in read_records(path):
        count += bool(record.id) and record.rgb.shape == (300, 1024) and record.audio.shape == (300, 128)
    return count


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


def best_rates(readers: dict, path: Path, videos: int, repeats: int) -> dict[str, float]:
    """videos/s of each reader, best of ``repeats`` reads, the readers taking turns within each repeat."""
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeats):
        for name, read in readers.items():
            start = time.perf_counter()
            count = read(path)
            times[name].append(time.perf_counter() - start)
            if count != videos:
                raise RuntimeError(f"{name} read {count} complete videos, expected {videos}")
    return {name: videos / min(seconds) for name, seconds in times.items()}


def resync_rate(path: Path, garbage_mib: int) -> float:
    """MiB/s of the search through ``garbage_mib`` MiB of random bytes inserted after the first record."""
    data = path.read_bytes()
    first = next(iter(iter_payloads(path)))[1].nbytes + 16
    garbage = np.random.default_rng(0).integers(0, 256, garbage_mib * 2**20, dtype=np.uint8).tobytes()
    damaged = path.with_name("damaged.tfrecord")
    damaged.write_bytes(data[:first] + garbage + data[first:])
    stats = ReadStats()
    start = time.perf_counter()
    for _ in iter_payloads(damaged, stats):
        pass
    seconds = time.perf_counter() - start
    if stats.skipped_bytes != len(garbage):
        raise RuntimeError(f"skipped {stats.skipped_bytes} bytes, expected {len(garbage)}")
    return garbage_mib / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    with tempfile.TemporaryDirectory() as folder:
        (path,) = synthesize(
            folder, "frame", args.videos, classes=3862, shards=1, min_frames=300, max_frames=300
        )
        megabytes = path.stat().st_size / 2**20
        readers = {
            "tfrecord 1.14 sequence_loader": read_with_tfrecord_package,
            "compactvideo read_records": read_with_compactvideo,
        }
        rates = best_rates(readers, path, args.videos, args.repeats)
        search = resync_rate(path, 64)
    print(f"{args.videos} videos of 300 frames, {megabytes:.0f} MiB, best of {args.repeats} reads each")
    print(f"{'reader':<34} {'videos/s':>9} {'MiB/s':>7}")
    for name, rate in rates.items():
        print(f"{name:<34} {rate:>9.0f} {rate * megabytes / args.videos:>7.0f}")
    ratio = rates["compactvideo read_records"] / rates["tfrecord 1.14 sequence_loader"]
    print(f"speed-up: {ratio:.2f}x (target >= 2x)")
    reading = rates["compactvideo read_records"] * megabytes / args.videos
    print(
        f"resynchronising search through 64 MiB of garbage: {search:.0f} MiB/s, "
        f"{search / reading:.2f}x the MiB/s of reading intact records"
    )


if __name__ == "__main__":
    main()

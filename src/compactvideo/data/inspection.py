"""What a set of YouTube-8M record files holds: counts, frame counts, labels and damaged records.

:func:`inspect_records` reads every file once (local paths or fsspec URLs; damaged records are skipped
and counted, not fatal) and returns a plain dict, printed as text by :func:`format_inspection` or as
JSON by the CLI.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from compactvideo.data.damage import ReadStats
from compactvideo.data.yt8m import FrameRecord, read_records

FRAME_BINS = (1, 30, 60, 120, 180, 240, 300, 301)


def inspect_records(
    paths: list[str | os.PathLike], top_labels: int = 10, max_skipped: int | None = None
) -> dict[str, Any]:
    """Statistics of the records in ``paths``; more than ``max_skipped`` damaged records raise
    :class:`~compactvideo.data.damage.TooManySkippedError` (naming the count and the first offsets).

    Returns {"records", "skipped", "skipped_bytes" (totals), "files": [{"path", "level", "records",
    "skipped", "skipped_bytes", "first_skips": [{"offset", "bytes", "reason"}]}] (as
    :meth:`ReadStats.to_dict`, the first skips of each file by byte offset), "levels", "frames" (min /
    mean / max and a histogram over ``FRAME_BINS``, frame level only), "labels" (distinct, per video min
    / mean / max, videos without labels, the most frequent)}, and "segments" (videos with 2019 segment
    labels, segments) when any.
    """
    frame_counts, label_counts = [], Counter()
    labels_per_video: list[int] = []
    segment_videos = segments = 0
    stats = ReadStats()
    levels: dict[str, set[str]] = {}
    for path in tqdm(paths, desc="inspecting", unit="file", leave=False):
        file_levels = levels.setdefault(str(path), set())
        records = read_records([path], skip_corrupt=True, stats=stats, warn=False, max_skipped=max_skipped)
        for record in records:
            file_levels.add("frame" if isinstance(record, FrameRecord) else "video")
            if isinstance(record, FrameRecord):
                frame_counts.append(record.num_frames)
                if record.segment_labels is not None:
                    segment_videos += 1
                    segments += len(record.segment_labels)
            labels_per_video.append(len(record.labels))
            label_counts.update(record.labels.tolist())
    report: dict[str, Any] = stats.to_dict()
    for entry in report["files"]:
        entry["level"] = "/".join(sorted(levels[entry["path"]]))
    per_video = np.array(labels_per_video or [0])
    report["levels"] = sorted({entry["level"] for entry in report["files"] if entry["level"]})
    report["labels"] = {
        "distinct": len(label_counts),
        "per_video_min": int(per_video.min()),
        "per_video_mean": float(per_video.mean()),
        "per_video_max": int(per_video.max()),
        "videos_without_labels": int((per_video == 0).sum()) if labels_per_video else 0,
        "most_frequent": [[int(label), count] for label, count in label_counts.most_common(top_labels)],
    }
    if frame_counts:
        counts = np.array(frame_counts)
        histogram, _ = np.histogram(counts, bins=FRAME_BINS)
        report["frames"] = {
            "min": int(counts.min()),
            "mean": float(counts.mean()),
            "max": int(counts.max()),
            "histogram": {
                f"{low}-{high - 1}": int(n)
                for low, high, n in zip(FRAME_BINS[:-1], FRAME_BINS[1:], histogram, strict=True)
            },
        }
    if segment_videos:
        report["segments"] = {"videos": segment_videos, "segments": segments}
    return report


def format_inspection(report: dict[str, Any]) -> str:
    """A readable summary of :func:`inspect_records`."""
    levels = ", ".join(report["levels"]) or "-"
    lines = [
        f"{len(report['files'])} files, {report['records']:,} records ({levels}), "
        f"{report['skipped']} damaged ({report['skipped_bytes']:,} bytes skipped)"
    ]
    if "frames" in report:
        frames = report["frames"]
        lines.append(f"frames per video: min {frames['min']}, mean {frames['mean']:.1f}, max {frames['max']}")
        lines += [f"  {span:>9}: {count:,}" for span, count in frames["histogram"].items()]
    labels = report["labels"]
    lines.append(
        f"labels: {labels['distinct']:,} distinct; per video min {labels['per_video_min']}, "
        f"mean {labels['per_video_mean']:.2f}, max {labels['per_video_max']}; "
        f"{labels['videos_without_labels']} videos without labels"
    )
    lines.append(
        "most frequent: " + ", ".join(f"{label} ({count})" for label, count in labels["most_frequent"])
    )
    if "segments" in report:
        lines.append(
            f"segment labels: {report['segments']['segments']:,} in {report['segments']['videos']:,} videos"
        )
    damaged = [entry for entry in report["files"] if entry["skipped"]]
    if damaged:
        lines.append("damaged records (the first of each file):")
        lines += [f"  {message}" for message in ReadStats.from_dict({"files": damaged}).messages()]
    return "\n".join(lines)

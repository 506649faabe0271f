import numpy as np

from compactvideo.data.inspection import format_inspection, inspect_records
from compactvideo.data.yt8m import FrameRecord, VideoRecord, write_records


def frames(video_id: str, count: int, labels: list[int], segments: list[int] | None = None) -> FrameRecord:
    extra = {}
    if segments is not None:
        extra = {
            "segment_labels": np.array(segments),
            "segment_start_times": np.arange(len(segments)) * 5,
            "segment_scores": np.ones(len(segments), np.float32),
        }
    return FrameRecord(video_id, np.array(labels), np.zeros((count, 1024)), np.zeros((count, 128)), **extra)


def test_counts_frames_labels_segments_and_damage(tmp_path):
    write_records(tmp_path / "a.tfrecord", [frames("a", 10, [1, 2]), frames("b", 250, [2], [2, 2, 7])])
    write_records(
        tmp_path / "b.tfrecord", [VideoRecord("c", np.array([], np.int64), np.zeros(1024), np.zeros(128))]
    )
    damaged = tmp_path / "c.tfrecord"
    write_records(damaged, [frames("d", 30, [2]), frames("e", 40, [3])])
    data = bytearray(damaged.read_bytes())
    data[-30] ^= 0xFF  # inside the second record's payload
    damaged.write_bytes(bytes(data))

    report = inspect_records([tmp_path / "a.tfrecord", tmp_path / "b.tfrecord", damaged])
    assert (report["records"], report["skipped"], report["levels"]) == (4, 1, ["frame", "video"])
    assert [f["records"] for f in report["files"]] == [2, 1, 1]
    assert (
        report["frames"]["min"] == 10
        and report["frames"]["max"] == 250
        and report["frames"]["mean"] == 290 / 3
    )
    assert report["frames"]["histogram"] == {
        "1-29": 1,
        "30-59": 1,
        "60-119": 0,
        "120-179": 0,
        "180-239": 0,
        "240-299": 1,
        "300-300": 0,
    }
    labels = report["labels"]
    assert labels["distinct"] == 2 and labels["most_frequent"][0] == [2, 3]
    assert (labels["per_video_min"], labels["per_video_max"], labels["videos_without_labels"]) == (0, 2, 1)
    assert report["segments"] == {"videos": 1, "segments": 3}
    written = write_records(tmp_path / "first" / "only.tfrecord", [frames("d", 30, [2])])
    offset = (tmp_path / "first" / "only.tfrecord").stat().st_size  # where the damaged record starts
    size = damaged.stat().st_size
    assert written == 1 and report["files"][2] == {
        "path": str(damaged),
        "level": "frame",
        "records": 1,
        "skipped": 1,
        "skipped_bytes": size - offset,
        "first_skips": [{"offset": offset, "bytes": size - offset, "reason": "payload CRC mismatch"}],
    }
    assert report["skipped_bytes"] == size - offset

    text = format_inspection(report)
    assert f"3 files, 4 records (frame, video), 1 damaged ({size - offset:,} bytes skipped)" in text
    assert f"{damaged}: record at byte offset {offset}: payload CRC mismatch" in text
    assert "segment labels: 3 in 1 videos" in text and "payload CRC mismatch" in text

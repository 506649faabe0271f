"""ReadStats: per-file counts of what a read skipped, merged across readers, through pickle and JSON."""

import json
import pickle

import pytest

from compactvideo.data import CorruptRecordError, ReadStats, TooManySkippedError
from compactvideo.data.damage import LISTED


def read(path: str, records: int, skips: list[tuple[int, int]]) -> ReadStats:
    """The statistics of a reader that read ``records`` and skipped (offset, bytes) stretches of ``path``."""
    stats = ReadStats()
    stats.file(path).records += records
    for offset, length in skips:
        stats.skip(CorruptRecordError(path, offset, f"damage at {offset}"), length)
    return stats


def test_counts_per_file_and_lists_the_first_skips_by_offset():
    stats = read("a.tfrecord", 7, [(offset, 10 + offset) for offset in range(300, 0, -20)])  # 15 skips
    stats.file("b.tfrecord").records += 3
    skipped = stats.files["a.tfrecord"]
    assert (stats.records, stats.skipped, stats.skipped_bytes) == (10, 15, sum(range(30, 320, 20)))
    assert [skip.offset for skip in skipped.first_skips] == list(range(20, 20 * LISTED + 1, 20))
    assert stats.files["b.tfrecord"].skipped == 0 and list(stats.files) == ["a.tfrecord", "b.tfrecord"]
    assert stats.messages()[0] == "a.tfrecord: record at byte offset 20: damage at 20 (30 bytes skipped)"
    lines = stats.summary(lines=3).splitlines()
    assert lines[0] == f"read 10 records, skipped 15 damaged ({sum(range(30, 320, 20)):,} bytes)"
    assert lines[1:4] == [f"  {message}" for message in stats.messages()[:3]]
    assert lines[4] == "  ... and 12 more" and len(lines) == 5


def test_merging_disjoint_reads_equals_one_read_of_everything():
    skips = [(100, 40), (900, 7), (400, 12), (50, 1), (700, 3)]
    whole = read("a", 9, skips)
    whole.update(read("b", 4, [(0, 16)]))
    parts = [read("a", 5, skips[:2]), read("b", 4, [(0, 16)]), read("a", 4, skips[2:])]
    assert ReadStats.merged(parts) == whole
    assert ReadStats.merged(reversed(parts)).to_dict() == whole.to_dict()  # order does not matter


def test_pickle_and_json_round_trips():
    stats = read("gs://bucket/train0001.tfrecord", 12, [(31, 2048), (5000, 16)])
    stats.file("train0002.tfrecord").records += 1
    assert pickle.loads(pickle.dumps(stats)) == stats
    text = json.dumps(stats.to_dict())
    assert ReadStats.from_dict(json.loads(text)) == stats
    assert json.loads(text)["files"][0] == {
        "path": "gs://bucket/train0001.tfrecord",
        "records": 12,
        "skipped": 2,
        "skipped_bytes": 2064,
        "first_skips": [
            {"offset": 31, "bytes": 2048, "reason": "damage at 31"},
            {"offset": 5000, "bytes": 16, "reason": "damage at 5000"},
        ],
    }


def test_the_skip_limit_names_the_count_and_the_first_offsets():
    stats = read("a.tfrecord", 2, [(10, 5), (99, 6), (400, 7)])
    stats.check(None)
    stats.check(3)
    with pytest.raises(TooManySkippedError, match=r"skipped 3 damaged records \(18 bytes\), more than the 2"):
        stats.check(2)
    with pytest.raises(TooManySkippedError, match="a.tfrecord: record at byte offset 99: damage at 99"):
        stats.check(0)


def test_take_hands_over_the_counts_and_starts_again():
    stats = read("a", 3, [(10, 5)])
    taken = stats.take()
    assert taken == read("a", 3, [(10, 5)]) and stats == ReadStats()
    stats.file("b").records += 1  # counts after the take land in a fresh entry
    assert taken.files.keys() == {"a"} and stats == read("b", 1, [])


def test_a_run_report_lists_only_the_damaged_files_sorted_by_path():
    stats = read("z.tfrecord", 4, [(0, 9)])
    stats.update(read("m.tfrecord", 6, []))
    stats.update(read("b.tfrecord", 2, [(30, 3), (7, 1)]))
    report = stats.report()
    assert {name: report[name] for name in ("records", "skipped", "skipped_bytes", "files_read")} == {
        "records": 12,
        "skipped": 3,
        "skipped_bytes": 13,
        "files_read": 3,
    }
    assert [entry["path"] for entry in report["damaged_files"]] == ["b.tfrecord", "z.tfrecord"]
    assert report["damaged_files"] == [e for e in stats.to_dict()["files"] if e["path"] != "m.tfrecord"][::-1]


def test_a_corrupt_record_error_crosses_processes_intact():
    error = pickle.loads(pickle.dumps(CorruptRecordError("gs://b/a.tfrecord", 1234, "payload CRC mismatch")))
    assert type(error) is CorruptRecordError
    assert (error.path, error.offset, error.reason) == ("gs://b/a.tfrecord", 1234, "payload CRC mismatch")
    assert str(error) == "gs://b/a.tfrecord: record at byte offset 1234: payload CRC mismatch"

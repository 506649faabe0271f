import importlib.util
import json

import fsspec
import pytest

from compactvideo.cli import main
from compactvideo.data.tfrecord import iter_payloads
from compactvideo.data.yt8m import read_records


def test_synth_then_inspect(tmp_path, capsys):
    out = tmp_path / "synth"
    assert (
        main(
            [
                "data",
                "synth",
                str(out),
                "--videos",
                "12",
                "--classes",
                "6",
                "--shards",
                "2",
                "--max-frames",
                "20",
            ]
        )
        == 0
    )
    records = list(read_records(sorted(out.glob("*.tfrecord"))))
    assert len(records) == 12
    capsys.readouterr()
    assert main(["data", "inspect", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == 12 and report["skipped"] == 0 and report["levels"] == ["frame"]
    lengths = [r.num_frames for r in records]
    assert report["frames"]["min"] == min(lengths) and report["frames"]["max"] == max(lengths)
    assert sum(report["frames"]["histogram"].values()) == 12
    counts = {}
    for record in records:
        for label in record.labels.tolist():
            counts[label] = counts.get(label, 0) + 1
    assert report["labels"]["distinct"] == len(counts)
    assert report["labels"]["most_frequent"][0][1] == max(counts.values())


def test_inspect_reports_damaged_records_and_fails(tmp_path, capsys):
    out = tmp_path / "synth"
    main(["data", "synth", str(out), "--videos", "3", "--classes", "4", "--shards", "1", "--max-frames", "5"])
    path = out / "train0000.tfrecord"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # inside the last record's payload
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["data", "inspect", str(path)]) == 1
    text = capsys.readouterr().out
    assert "2 records (frame), 1 damaged" in text
    assert f"{path}: record at byte offset" in text and "payload CRC mismatch" in text


def test_inspect_reads_globbed_urls_and_reports_skips_per_file_in_json(tmp_path, capsys):
    out = tmp_path / "synth"
    main(["data", "synth", str(out), "--videos", "6", "--classes", "4", "--shards", "2", "--max-frames", "5"])
    fs = fsspec.filesystem("memory")
    damaged = bytearray((out / "train0001.tfrecord").read_bytes())
    offsets = [offset for offset, _ in iter_payloads(out / "train0001.tfrecord")]
    damaged[offsets[1] + 30] ^= 0xFF  # inside the second record's payload
    try:
        fs.pipe("/cv-cli/train0000.tfrecord", (out / "train0000.tfrecord").read_bytes())
        fs.pipe("/cv-cli/train0001.tfrecord", bytes(damaged))
        capsys.readouterr()
        assert main(["data", "inspect", "memory://cv-cli/train*.tfrecord", "--json"]) == 1
    finally:
        fs.rm("/cv-cli", recursive=True)
    report = json.loads(capsys.readouterr().out)
    assert (report["records"], report["skipped"], report["skipped_bytes"]) == (5, 1, offsets[2] - offsets[1])
    assert [(f["path"], f["records"], f["skipped"]) for f in report["files"]] == [
        ("memory:///cv-cli/train0000.tfrecord", 3, 0),
        ("memory:///cv-cli/train0001.tfrecord", 2, 1),
    ]
    assert report["files"][1]["first_skips"] == [
        {"offset": offsets[1], "bytes": offsets[2] - offsets[1], "reason": "payload CRC mismatch"}
    ]


def test_inspect_names_the_extra_a_url_needs(capsys):
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    assert main(["data", "inspect", "gs://bucket/train*.tfrecord"]) == 2
    assert "compactvideo: error: gs://bucket/train*.tfrecord: reading gs:// URLs needs the 'gcs' extra" in (
        capsys.readouterr().err
    )

import json

from compactvideo.cli import main
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

"""Damaged shards through train, eval, predict and data inspect: what each reports (files, byte offsets,
counts) is the damage planted, gathered over DataLoader workers and torchrun ranks, in the JSON output
and log.jsonl; a budget-stopped run reports what it read; a run killed with SIGKILL and resumed reports
the totals of an uninterrupted one; ``--max-skipped`` stops a run with a one-line error; shards are read
from fsspec's memory:// filesystem and over HTTP.

The damage (tests/data/test_dataset_reads.py's ``write_damaged``): 3 shards of 13, 7 and 5 videos; a
payload flip and a label outside the classes in shard 0, a length-header flip in shard 1 (resynchronised),
100 bytes of garbage after shard 2's last record: 4 skips, 22 intact records.
"""

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import fsspec
import pytest
from tests.data.test_dataset_reads import write_damaged
from tests.data.test_shards import http_root  # noqa: F401 (a fixture: an HTTP server on 127.0.0.1)
from tests.processes import TIMEOUT, cli, environment, kill_at_step, run, torchrun
from tests.test_resume import read_log
from tests.test_train import TINY

from compactvideo import evaluate as evaluate_module
from compactvideo.cli import main
from compactvideo.data import TooManySkippedError
from compactvideo.loaders import LoaderOptions
from compactvideo.train import TrainOptions, train

INTACT, SKIPS = 22, 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """(folder, pattern of the damaged shards, {path: (intact ids, [(offset, bytes)] skipped)}, model)."""
    root = tmp_path_factory.mktemp("damaged")
    _, expected = write_damaged(root, [13, 7, 5])
    (root / "model.json").write_text(json.dumps(TINY.to_dict()))
    return root, str(root / "train*.tfrecord"), expected, str(root / "model.json")


@pytest.fixture(scope="module")
def checkpoint(shards, tmp_path_factory) -> str:
    """A checkpoint of the tiny model, one step on the damaged shards."""
    out = tmp_path_factory.mktemp("trained")
    train(
        TINY,
        shards[1],
        out,
        TrainOptions(batch_size=4, max_examples=4, data=LoaderOptions(skip_corrupt=True)),
    )
    return str(out / "checkpoint.pt")


def planted(expected, times: int = 1) -> dict:
    """{path: (records, [(offset, bytes)] of the skips)} of ``times`` passes over the damaged shards."""
    return {path: (times * len(ids), skips) for path, (ids, skips) in expected.items()}


def reported(read: dict) -> dict:
    """The same, from a run's ``read`` report (the skips listed are all of them: fewer than 10 a file)."""
    files = read["damaged_files"]
    assert read["skipped"] == sum(f["skipped"] for f in files)
    return {f["path"]: (f["records"], [(s["offset"], s["bytes"]) for s in f["first_skips"]]) for f in files}


def test_training_reports_every_skip_in_its_summary_and_log(shards, tmp_path, capsys):
    root, pattern, expected, model = shards
    args = ["train", "--model", model, "--train", pattern, "--valid", pattern, "--out", str(tmp_path / "run")]
    args += ["--epochs", "2", "--batch-size", "4", "--num-workers", "2", "--split-half", "--skip-corrupt"]
    args += ["--valid-every", "5", "--shuffle-buffer", "4"]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    read = summary["read"]
    skipped_bytes = sum(length for _, skips in expected.values() for _, length in skips)
    assert (read["records"], read["skipped"], read["skipped_bytes"]) == (
        2 * INTACT,
        2 * SKIPS,
        2 * skipped_bytes,
    )
    assert reported(summary["read"]) == planted(expected, times=2) and summary["read"]["files_read"] == 3
    assert f"compactvideo: warning: read {2 * INTACT} records, skipped {2 * SKIPS} damaged" in captured.err
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    epochs = [line for line in log if line["kind"] == "epoch"]
    assert [reported(line["read"]) for line in epochs] == [planted(expected)] * 2
    validations = [line for line in log if line["kind"] == "valid"]
    assert len(validations) > 2 and all(reported(line["read"]) == planted(expected) for line in validations)
    train_reads = [line["train_read"]["records"] for line in validations]
    assert train_reads == sorted(train_reads) and train_reads[-1] == 2 * INTACT
    assert log[-1] == {
        "kind": "end",
        "step": summary["steps"],
        "examples": 4 * INTACT,
        "read": summary["read"],
    }
    assert summary["valid"]["read"] == validations[-1]["read"]


def test_a_run_stopped_by_its_budget_reports_what_it_read(shards, tmp_path):
    root, _, expected, _ = shards
    first = str(root / "train0.tfrecord")
    data = LoaderOptions(shuffle_buffer=1, skip_corrupt=True)
    summary = train(TINY, first, tmp_path / "run", TrainOptions(batch_size=4, max_examples=8, data=data))
    # 2 steps of 4 videos, in file order: records 0-3 and 5-8; the payload flip of record 4 came before
    # them, the bad label of record 9 did not
    assert (summary["steps"], summary["read"]["records"], summary["read"]["skipped"]) == (2, 8, 1)
    assert reported(summary["read"]) == {first: (8, expected[first][1][:1])}


def test_a_run_killed_and_resumed_reports_the_totals_of_an_uninterrupted_one(shards, tmp_path):
    root, pattern, expected, model = shards
    args = ["train", "--model", model, "--train", pattern, "--epochs", "3", "--batch-size", "4"]
    args += ["--num-workers", "2", "--shuffle-buffer", "5", "--split-half", "--skip-corrupt"]
    args += ["--log-every", "1", "--checkpoint-every", "3"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*args, "--out", str(whole)]) == 0
    expected_log = read_log(whole)
    assert reported(expected_log[-1]["read"]) == planted(expected, times=3)
    steps = expected_log[-1]["step"]
    step = random.randrange(4, steps - 4)
    kill_at_step(cli(*args, "--out", str(cut)), cut, step)
    assert main([*args, "--out", str(cut), "--resume"]) == 0
    assert read_log(cut) == expected_log, f"killed at step {step}"


def test_two_ranks_report_the_skips_of_both(shards, tmp_path):
    root, pattern, expected, model = shards
    args = ["train", "--model", model, "--train", pattern, "--valid", pattern, "--out", str(tmp_path / "run")]
    args += ["--epochs", "1", "--batch-size", "4", "--num-workers", "1", "--skip-corrupt", "--device", "cpu"]
    run(torchrun(*args))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    epoch, valid, end = (
        next(line for line in log if line["kind"] == kind) for kind in ("epoch", "valid", "end")
    )
    assert sorted(rank["records"] for rank in epoch["ranks"]) == [11, 11]  # shard 0 | shards 1 + 2
    assert reported(epoch["read"]) == reported(valid["read"]) == reported(end["read"]) == planted(expected)


def test_eval_predict_and_inspect_report_the_damage_planted(shards, checkpoint, tmp_path, capsys):
    root, pattern, expected, _ = shards
    common = ["--checkpoint", checkpoint, "--data", pattern, "--num-workers", "2", "--skip-corrupt"]
    assert main(["eval", *common, "--out", str(tmp_path / "metrics.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert reported(printed["read"]) == planted(expected) and printed["videos"] == INTACT
    assert json.loads((tmp_path / "metrics.json").read_text())["read"] == printed["read"]
    assert main(["predict", *common, "--out", str(tmp_path / "p.csv"), "--batch-size", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["predictions"] == INTACT and reported(report["read"]) == planted(expected)
    assert main(["data", "inspect", pattern, "--json"]) == 1
    inspected = json.loads(capsys.readouterr().out)
    # inspect knows no number of classes: the video with label 12 is intact there
    first = str(root / "train0.tfrecord")
    skips = {**planted(expected), first: (len(expected[first][0]) + 1, expected[first][1][:1])}
    assert (inspected["records"], inspected["skipped"]) == (INTACT + 1, SKIPS - 1)
    files = {
        f["path"]: (f["records"], [(s["offset"], s["bytes"]) for s in f["first_skips"]])
        for f in inspected["files"]
    }
    assert files == skips


def test_max_skipped_stops_each_command_with_a_one_line_error(shards, checkpoint, tmp_path, capsys):
    root, pattern, expected, model = shards
    offsets = {(path, offset) for path, (_, skips) in expected.items() for offset, _ in skips}

    def check_error(command: list[str], allowed: int) -> None:
        capsys.readouterr()
        assert main([*command, "--max-skipped", str(allowed)]) == 2
        stderr = capsys.readouterr().err  # after training's progress bar, which the error interrupts
        error = stderr[stderr.index("compactvideo: error: ") :].splitlines()
        count = int(re.match(r"compactvideo: error: skipped (\d+) damaged records \(", error[0]).group(1))
        assert count > allowed and f"more than the {allowed} allowed (max_skipped)" in error[0]
        listed = [re.match(r"  (.*): record at byte offset (\d+): ", line) for line in error[2:]]
        listed = [(match[1], int(match[2])) for match in listed if match]
        assert listed and set(listed) <= offsets

    train_args = ["train", "--model", model, "--train", pattern, "--epochs", "1", "--batch-size", "4"]
    train_args += ["--log-every", "1", "--skip-corrupt", "--num-workers", "2"]
    check_error([*train_args, "--out", str(tmp_path / "run")], 2)
    assert main([*train_args, "--out", str(tmp_path / "ok"), "--max-skipped", "4"]) == 0
    # the ranks add up their skips at every step: the run stopped inside its epoch
    epoch_steps = next(line for line in read_log(tmp_path / "ok") if line["kind"] == "epoch")["epoch_steps"]
    assert len(read_log(tmp_path / "run")) < epoch_steps
    common = ["--checkpoint", checkpoint, "--data", pattern, "--skip-corrupt"]
    check_error(["eval", *common], 1)
    check_error(["predict", *common, "--out", str(tmp_path / "p.csv")], 3)
    assert not (tmp_path / "p.csv").exists()  # no submission from data damaged beyond the limit
    check_error(["data", "inspect", pattern], 0)
    # without --skip-corrupt the first damage stops the run, from a DataLoader worker too
    capsys.readouterr()
    assert main(["eval", "--checkpoint", checkpoint, "--data", pattern, "--num-workers", "2"]) == 2
    error = capsys.readouterr().err.split("\r")[-1]  # after the erased progress bar
    assert re.fullmatch(r"compactvideo: error: .*train\d.tfrecord: record at byte offset \d+: .*\n", error)


def test_shards_from_memory_and_http_train_and_evaluate(shards, tmp_path, http_root, capsys):  # noqa: F811
    """--train from fsspec's memory:// filesystem (globbed), --valid over HTTP from a server on 127.0.0.1
    (globbed from its folder index); eval of memory:// shards, and over HTTP by 2 DataLoader workers.
    memory:// shards with workers are refused: the workers start from a fork server and cannot see them."""
    root, _, expected, model = shards
    url, served = http_root
    memory = fsspec.filesystem("memory")
    for shard in range(3):
        name = f"train{shard}.tfrecord"
        memory.pipe(f"/cv-skips/{name}", (root / name).read_bytes())
        shutil.copy(root / name, served / name)

    def at(prefix: str) -> dict:
        return {f"{prefix}/{Path(path).name}": value for path, value in planted(expected).items()}

    try:
        args = ["train", "--model", model, "--train", "memory://cv-skips/train*.tfrecord"]
        args += ["--valid", f"{url}/train*.tfrecord", "--out", str(tmp_path / "run"), "--epochs", "1"]
        args += ["--batch-size", "4", "--skip-corrupt"]
        capsys.readouterr()
        assert main(args) == 0
        summary = json.loads(capsys.readouterr().out)
        assert reported(summary["read"]) == at("memory:///cv-skips")
        assert reported(summary["valid"]["read"]) == at(url) and summary["valid"]["videos"] == INTACT
        checkpoint = str(tmp_path / "run" / "checkpoint.pt")
        evaluate_memory = [
            "eval",
            "--checkpoint",
            checkpoint,
            "--data",
            "memory://cv-skips",
            "--skip-corrupt",
        ]
        assert main(evaluate_memory) == 0
        evaluated = json.loads(capsys.readouterr().out)
        assert reported(evaluated["read"]) == at("memory:///cv-skips")
        assert {k: v for k, v in evaluated.items() if k != "read"} == {
            k: v for k, v in summary["valid"].items() if k != "read"
        }  # the same videos, the same model: the same metrics from memory:// as over HTTP
        over_http = ["eval", "--checkpoint", checkpoint, "--data", f"{url}/train*.tfrecord", "--skip-corrupt"]
        assert main([*over_http, "--num-workers", "2"]) == 0
        assert json.loads(capsys.readouterr().out) == summary["valid"]
        assert main([*evaluate_memory, "--num-workers", "2"]) == 2
        assert "memory:// files live in this process only" in capsys.readouterr().err
    finally:
        memory.rm("/cv-skips", recursive=True)


def test_evaluation_stops_at_the_batch_that_passes_the_limit(shards, checkpoint, monkeypatch):
    """The videos evaluated are those up to the batch carrying the second skip (record 10 of shard 0,
    in file order), not every video: a rank stops as soon as its own count passes the limit."""
    evaluated = []
    outputs = evaluate_module.model_outputs
    monkeypatch.setattr(
        evaluate_module, "model_outputs", lambda *a: evaluated.append(a[2]["ids"]) or outputs(*a)
    )
    data = LoaderOptions(skip_corrupt=True, max_skipped=1)
    with pytest.raises(TooManySkippedError, match="skipped 2 damaged records"):
        evaluate_module.evaluate(checkpoint, shards[1], batch_size=1, data=data)
    assert evaluated[-1] == ["s0-10"] and len(evaluated) == 9  # records 0-3, 5-8 and 10


def test_ranks_past_the_limit_stop_together_with_the_same_error(shards, checkpoint):
    """Under torchrun, each rank stops at the end of its share with the error of all ranks' counts;
    none stops alone (which left the other waiting for it, then failing with a traceback)."""
    _, pattern, _, _ = shards
    args = ["eval", "--checkpoint", checkpoint, "--data", pattern, "--skip-corrupt", "--max-skipped", "1"]
    completed = subprocess.run(
        torchrun(*args, "--batch-size", "1"),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert completed.returncode != 0
    errors = re.findall(r"compactvideo: error: (.*)", completed.stderr)
    assert len(errors) == 2 and errors[0] == errors[1], completed.stderr
    assert errors[0].startswith(f"skipped {SKIPS} damaged records"), completed.stderr
    assert "[rank" not in completed.stderr  # no rank's traceback

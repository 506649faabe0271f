"""kill -9 in the middle of training, then --resume: the weights and the log of an uninterrupted run.

The killed run is a real ``compactvideo train`` process, killed with SIGKILL at a random step after
its log shows that step (a checkpoint every 3 steps, so the killed run has usually written log lines
past its last checkpoint, which the resumed run must not repeat).
"""

import json
import random

import pytest
import torch
from tests.conftest import write_shards
from tests.processes import cli, kill_at_step

from compactvideo.checkpoint import load_checkpoint
from compactvideo.cli import main
from compactvideo.data.synthetic_clips import synthesize_clips

TINY_FRAME_MODEL = {
    "family": "frame",
    "num_classes": 10,
    "embeddings": [{"kind": "dbof", "clusters": 16, "pooling": "robust", "samples": 2}],
    "hidden_size": 8,
    "head": {"mixtures": 2},
}
TINY_CLIP_MODEL = {  # batch norm and dropout
    "family": "clip",
    "arch": "c3d",
    "num_classes": 2,
    "in_channels": 3,
    "frames": 4,
    "height": 16,
    "width": 16,
    "dropout": 0.5,
    "channels": [4, 8],
}


def comparable(log_line: dict) -> dict:
    """A log line without its wall-clock rate."""
    return {name: value for name, value in log_line.items() if name != "examples_per_s"}


def read_log(run_dir) -> list[dict]:
    return [comparable(json.loads(line)) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def check_kill_and_resume(tmp_path, model: dict, train_args: list[str], last_step: int) -> None:
    (tmp_path / "model.json").write_text(json.dumps(model))
    args = ["train", "--model", str(tmp_path / "model.json"), *train_args, "--log-every", "1"]
    args += ["--checkpoint-every", "3", "--learning-rate", "0.01"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*args, "--out", str(whole)]) == 0
    expected_log = read_log(whole)
    assert max(line["step"] for line in expected_log) == last_step

    step = random.randrange(4, last_step - 4)
    kill_at_step(cli(*args, "--out", str(cut)), cut, step)
    assert main([*args, "--out", str(cut), "--resume"]) == 0

    expected = load_checkpoint(whole / "checkpoint.pt")["state_dict"]
    actual = load_checkpoint(cut / "checkpoint.pt")["state_dict"]
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        assert torch.equal(actual[name], value), f"{name} differs after a kill at step {step}"
    assert read_log(cut) == expected_log, f"killed at step {step}"


def test_a_frame_model_killed_at_a_random_step_resumes_exactly(tmp_path):
    pattern = str(tmp_path / "train*.tfrecord")
    write_shards(tmp_path, [13, 7, 5])
    # split-half: 50 examples an epoch, read by 2 workers (13 | 7 + 5 videos): 7 + 6 batches of about 4
    train_args = ["--train", pattern, "--epochs", "3", "--batch-size", "4", "--num-workers", "2"]
    train_args += ["--shuffle-buffer", "6", "--split-half", "--frames-per-sample", "3"]
    check_kill_and_resume(tmp_path, TINY_FRAME_MODEL, train_args, last_step=39)


@pytest.mark.slow
def test_a_clip_model_with_dropout_killed_at_a_random_step_resumes_exactly(tmp_path):
    synthesize_clips(tmp_path / "clips", videos_per_class=5, frames=6, size=(16, 16), depth=False)
    train_args = ["--train", str(tmp_path / "clips"), "--epochs", "4", "--batch-size", "2"]
    check_kill_and_resume(tmp_path, TINY_CLIP_MODEL, train_args, last_step=20)

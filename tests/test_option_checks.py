"""Every numeric option of train, eval and predict is checked: a one-line error naming the flag."""

import subprocess
import sys

import pytest
import torch
from tests.conftest import write_shards

from compactvideo.cli import main

TRAIN = ["train", "--model", "video-moe", "--train", "missing*.tfrecord", "--out", "run", "--epochs", "1"]
EVAL = ["eval", "--checkpoint", "missing.pt", "--data", "missing*.tfrecord"]
PREDICT = ["predict", "--checkpoint", "missing.pt", "--data", "missing*.tfrecord", "--out", "p.csv"]


@pytest.mark.parametrize(
    "command, flag, value, expected",
    [
        (TRAIN, "--log-every", "0", "at least 1, got 0"),
        (TRAIN, "--checkpoint-every", "0", "at least 1, got 0"),
        (TRAIN, "--lr-decay-examples", "0", "at least 1, got 0"),
        (TRAIN, "--batch-size", "0", "at least 1, got 0"),
        (TRAIN, "--max-examples", "-5", "at least 1, got -5"),
        (TRAIN, "--epochs", "0", "at least 1, got 0"),
        (TRAIN, "--valid-every", "0", "at least 1, got 0"),
        (TRAIN, "--valid-max-videos", "0", "at least 1, got 0"),
        (TRAIN, "--seed", "-1", "at least 0, got -1"),
        (TRAIN, "--learning-rate", "0", "greater than 0, got 0.0"),
        (TRAIN, "--lr-decay", "-0.5", "greater than 0, got -0.5"),
        (TRAIN, "--clip-norm", "-1", "greater than 0, got -1.0"),
        (TRAIN, "--num-classes", "0", "at least 1, got 0"),
        (TRAIN, "--frames", "0", "at least 1, got 0"),
        (TRAIN, "--samples", "0", "at least 1, got 0"),
        (TRAIN, "--frames-per-sample", "0", "at least 1, got 0"),
        (TRAIN, "--max-frames", "0", "at least 1, got 0"),
        (TRAIN, "--shuffle-buffer", "0", "at least 1, got 0"),
        (TRAIN, "--num-workers", "-1", "at least 0, got -1"),
        (TRAIN, "--max-skipped", "-1", "at least 0, got -1"),
        (
            TRAIN,
            "--max-skipped",
            "3",
            "given with skip_corrupt (--skip-corrupt); without it the first "
            "damaged record stops the run, got 3",
        ),
        (TRAIN, "--device", "gpu", "one of auto, cpu, cuda, got 'gpu'"),
        (TRAIN, "--precision", "fp8", "one of 32, bf16-mixed, 16-mixed, got 'fp8'"),
        (TRAIN, "--prefetch-factor", "0", "at least 1, got 0"),
        (
            TRAIN,
            "--prefetch-factor",
            "4",
            "left unset with --num-workers 0 (no worker process prefetches), got 4",
        ),
        (EVAL, "--device", "tpu", "one of auto, cpu, cuda, got 'tpu'"),
        (EVAL, "--batch-size", "0", "at least 1, got 0"),
        (EVAL, "--num-workers", "-2", "at least 0, got -2"),
        (EVAL, "--max-skipped", "-3", "at least 0, got -3"),
        (["data", "inspect", "missing*.tfrecord"], "--max-skipped", "-1", "at least 0, got -1"),
        (PREDICT, "--batch-size", "0", "at least 1, got 0"),
        (PREDICT, "--top-k", "0", "at least 1, got 0"),
        (PREDICT, "--max-skipped", "-1", "at least 0, got -1"),
    ],
)
def test_an_out_of_range_option_is_a_one_line_error_naming_its_flag(capsys, command, flag, value, expected):
    assert main([*command, flag, value]) == 2
    assert capsys.readouterr().err == f"compactvideo: error: {flag} must be {expected}\n"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            ["--persistent-workers"],
            "--persistent-workers must be off with --num-workers 0 (there is no worker process to keep), "
            "got True",
        ),
        (
            ["--pin-memory", "--device", "cpu"],
            "--pin-memory must be off for a model on cpu (it speeds up copies to a GPU), got True",
        ),
        (
            ["--frame-dtype", "uint8"],  # TRAIN's model reads video-level records
            "--frame-dtype must be auto or float32 for a model that reads video-records "
            "(only frame-records hold uint8 frames), got 'uint8'",
        ),
    ],
)
def test_loader_options_that_cannot_apply_are_one_line_errors(tmp_path, monkeypatch, capsys, flags, expected):
    monkeypatch.chdir(tmp_path)
    assert main([*TRAIN, *flags]) == 2
    assert capsys.readouterr().err == f"compactvideo: error: {expected}\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there")
def test_device_cuda_without_a_gpu_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*TRAIN, "--device", "cuda"]) == 2
    assert (
        capsys.readouterr().err == "compactvideo: error: --device cuda was asked for, but torch sees no GPU\n"
    )


def test_batch_norm_needs_two_examples_per_batch(tmp_path, capsys):
    write_shards(tmp_path, [4])
    train = [
        "train",
        "--model",
        "small-dbof-dense",
        "--num-classes",
        "10",
        "--epochs",
        "1",
        "--batch-size",
        "1",
    ]
    assert main([*train, "--train", str(tmp_path / "train*.tfrecord"), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        "compactvideo: error: --batch-size must be at least 2 for a model with batch norm, got 1\n"
    )


def test_the_command_shows_no_traceback():
    completed = subprocess.run(
        [sys.executable, "-m", "compactvideo.cli", *TRAIN, "--log-every", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr == "compactvideo: error: --log-every must be at least 1, got 0\n"

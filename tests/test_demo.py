"""The demo end to end at a tiny size: the trained twins beat the popularity baseline of the demo's own
validation data, and a demo killed (SIGKILL) in the middle of training resumes to exactly the results and
weights of an uninterrupted run."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.oracles import multi_hot, popularity_gap

from compactvideo.checkpoint import load_checkpoint
from compactvideo.data.yt8m import read_records
from compactvideo.demo import DemoOptions, format_results, plot_size_vs_gap, run_demo
from compactvideo.models import build_model, resolve_model_spec
from compactvideo.profiling import count_parameters

# 64 steps of 16 examples per model: checkpoints every 50 steps (the demo's), validations every 16.
TINY = DemoOptions(
    train_videos=200,
    valid_videos=100,
    classes=10,
    max_frames=12,
    examples=1024,
    batch_size=16,
    models=("small-netvlad-dense", "small-netvlad-circulant"),
)
TINY_ARGS = [
    *("--train-videos", "200", "--valid-videos", "100", "--classes", "10", "--max-frames", "12"),
    *("--examples", "1024", "--batch-size", "16", "--models", *TINY.models),
]
TIMINGS = ("train_examples_per_s", "inference_ms_per_video")

# Runs the demo command, and kills its own process with SIGKILL at the N-th training step (argv[1]).
KILLED_AT_STEP = """
import os, signal, sys
import compactvideo.train as training
from compactvideo.cli import main

kill_at, steps, train_step = int(sys.argv[1]), [], training.train_step

def train_step_or_die(*args, **kwargs):
    steps.append(1)
    if len(steps) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return train_step(*args, **kwargs)

training.train_step = train_step_or_die
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, TINY)


def labels_of(folder: Path):
    return multi_hot([r.labels for r in read_records(sorted(folder.glob("*.tfrecord")))], TINY.classes)


def test_the_twins_learn_beyond_the_popularity_baseline(uninterrupted):
    out, rows = uninterrupted
    assert [row["model"] for row in rows] == list(TINY.models)
    baseline = popularity_gap(labels_of(out / "data" / "train"), labels_of(out / "data" / "valid"))
    # Measured: baseline 0.402, dense 0.559, circulant 0.529 (over data seeds 0-3 the twins gain
    # 0.10-0.18 GAP on the baseline, the circulant twin 0.01-0.08 below the dense one).
    for row in rows:
        assert row["gap"] > baseline + 0.05, row
        config = resolve_model_spec(row["model"], num_classes=TINY.classes)
        assert row["parameters"] == count_parameters(build_model(config), convention="paper")
    dense, circulant = rows
    assert circulant["gap"] > dense["gap"] - 0.1
    assert circulant["parameters"] < dense["parameters"] / 40
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"] == rows and saved["options"]["examples"] == TINY.examples
    assert (out / "size_vs_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_results(rows)
    assert all(f"{row['gap']:.3f}" in table and f"{row['parameters']:,}" in table for row in rows)


def test_a_killed_demo_resumes_to_the_uninterrupted_results(uninterrupted, tmp_path):
    reference, rows = uninterrupted
    first, second = TINY.models
    # Killed 56 steps into the second model: after its checkpoint at step 50 and its validation at 48.
    kill_at = load_checkpoint(reference / first / "checkpoint.pt")["step"] + 56
    command = [sys.executable, "-c", KILLED_AT_STEP, str(kill_at), "--threads", "1", "demo"]
    killed = subprocess.run(
        [*command, "--out", str(tmp_path), *TINY_ARGS], capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / first / "result.json").exists() and not (tmp_path / second / "result.json").exists()
    assert load_checkpoint(tmp_path / second / "checkpoint.pt")["step"] == 50
    finished = json.loads((tmp_path / first / "result.json").read_text())

    resumed = run_demo(tmp_path, TINY)
    assert resumed[0] == finished  # the finished model is kept, not trained again
    for row, expected in zip(resumed, rows, strict=True):
        assert {k: v for k, v in row.items() if k not in TIMINGS} == {
            k: v for k, v in expected.items() if k not in TIMINGS
        }
    for name in ("checkpoint.pt", "best.pt"):
        actual = load_checkpoint(tmp_path / second / name)
        expected = load_checkpoint(reference / second / name)
        assert actual["step"] == expected["step"]
        for key, value in expected["state_dict"].items():
            torch.testing.assert_close(actual["state_dict"][key], value, rtol=0, atol=0, msg=f"{name} {key}")


def test_plot_draws_every_kind_of_twin(tmp_path, monkeypatch):
    # dense, circulant FC, every layer circulant, and a preset of no known kind: each point with its
    # kind's marker, and a line from each twin to its dense model (none for the preset of no kind)
    from matplotlib.axes import Axes

    points, lines = [], []
    scatter, plot = Axes.scatter, Axes.plot

    def record_scatter(self, x, y, *args, marker=None, **kwargs):
        if len(np.atleast_1d(x)):  # legend entries are drawn empty
            points.append((float(x), float(y), marker))
        return scatter(self, x, y, *args, marker=marker, **kwargs)

    def record_plot(self, x, y, *args, **kwargs):
        lines.append((tuple(x), tuple(y)))
        return plot(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", record_scatter)
    monkeypatch.setattr(Axes, "plot", record_plot)
    names = ["small-dbof-dense", "small-dbof-circulant", "small-dbof-compact-all", "video-moe"]
    rows = [{"model": name, "megabytes": 10.0 / (i + 1), "gap": 0.5 + i / 10} for i, name in enumerate(names)]
    plot_size_vs_gap(rows, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [marker for _, _, marker in points] == ["s", "o", "^", "D"]
    assert [(row["megabytes"], row["gap"]) for row in rows] == [(x, y) for x, y, _ in points]
    assert lines == [((10.0, 5.0), (0.5, 0.6)), ((10.0, 10.0 / 3), (0.5, 0.7))]

"""Pieces of the cheng2015 and rasmussen2022 experiments, on tiny inputs."""

import json
from dataclasses import replace

import numpy as np
import pytest

from compactvideo.models import PRESETS
from compactvideo.reproduce import ReproduceOptions, figures, rasmussen2022, reproduce
from compactvideo.reproduce.cheng2015 import growth_exponent, measure_speed


def test_speed_measures_every_layer_pass_size_and_batch(tmp_path):
    measurements = measure_speed(sizes=(16, 64), batches=(1, 3), repeats=1)
    cases = {(m["n"], m["batch"], m["layer"], m["pass"]) for m in measurements}
    assert cases == {
        (n, batch, layer, kind)
        for n in (16, 64)
        for batch in (1, 3)
        for layer in ("dense", "circulant")
        for kind in ("forward", "forward+backward")
    }
    assert all(m["ms"] > 0 for m in measurements)
    path = tmp_path / "speed.png"
    figures.speed_curves(measurements, path, "tiny")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_growth_exponent_is_the_power_of_a_power_law():
    sizes = [2**k for k in range(8, 15)]
    assert growth_exponent([(n, 3e-6 * n**2) for n in sizes]) == pytest.approx(2.0, abs=1e-9)
    slope = growth_exponent([(n, n * np.log2(n)) for n in sizes])
    # d log(n log n) / d log n = 1 + 1 / ln n, between its values at the ends of the range
    assert 1 + 1 / np.log(sizes[-1]) < slope < 1 + 1 / np.log(sizes[0])


def test_accuracy_trains_compresses_and_fine_tunes_each_seed(tmp_path, monkeypatch):
    tiny_clips = {"train_per_class": 4, "test_per_class": 2, "video_frames": 8, "video_size": (32, 32)}
    tiny_run = {
        "config": replace(PRESETS["thetis"], frames=8, height=32, width=32),
        "epochs": 1,
        "finetune_epochs": 1,
    }
    monkeypatch.setattr(rasmussen2022, "DEMO_CLIPS", tiny_clips)
    monkeypatch.setattr(rasmussen2022, "DEMO_ACCURACY", tiny_run)
    monkeypatch.setattr(rasmussen2022, "CLIP_TRAINING", {"learning_rate": 1e-3, "batch_size": 4})
    out = tmp_path / "repro"
    rows = reproduce("rasmussen2022", out, ReproduceOptions(seeds=2), experiments=["accuracy"])
    results = [
        json.loads((out / "runs" / f"thetis-demo-seed{s}" / "result.json").read_text()) for s in (0, 1)
    ]
    accuracy = {(row.row, row.metric): row for row in rows}
    for point, published in (("original", 0.92), ("compressed", 0.68), ("fine-tuned", 0.90)):
        row = accuracy[point, "test accuracy"]
        assert row.ours == pytest.approx(np.mean([r["accuracy"][point] for r in results]))
        assert (row.published, row.seeds) == (published, 2)
    fine_tuned = accuracy["fine-tuned", "test accuracy - original"]
    assert fine_tuned.ours == pytest.approx(
        np.mean([r["accuracy"]["fine-tuned"] - r["accuracy"]["original"] for r in results])
    )
    assert fine_tuned.published == pytest.approx(0.90 - 0.92)
    # the paper's ranks, on this input size: c1 (2, 2) and c2 (3, 2) Tucker-2 as in the paper
    layers = {layer["name"]: layer for layer in results[0]["compression"]["layers"]}
    assert (layers["c1"]["ranks"], layers["c2"]["ranks"]) == ([2, 2], [3, 2])
    assert (out / "runs" / "thetis-demo-seed1" / "finetuned" / "checkpoint.pt").exists()

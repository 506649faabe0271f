"""A fourth model family, registered in a few lines, goes through every part of compactvideo."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from compactvideo.cli import main
from compactvideo.data.yt8m import VideoRecord, write_records
from compactvideo.evaluate import evaluate
from compactvideo.models import FAMILIES, Family, Input, ModelConfig, VideoData, load_model, register_family
from compactvideo.pipelines import export_checkpoint
from compactvideo.profiling import count_flops
from compactvideo.tasks import MultiLabelTask
from compactvideo.train import TrainOptions, train


# The whole family: a config, a module, and its spec.
@dataclass(frozen=True)
class LinearProbeConfig(ModelConfig):
    family: str = "linear-probe"
    num_classes: int = 5
    data: VideoData = VideoData()


class LinearProbe(nn.Module):
    def __init__(self, config: LinearProbeConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(1024, config.num_classes)

    def forward(self, mean_rgb: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(mean_rgb))


LINEAR_PROBE = Family(
    name="linear-probe",
    config=LinearProbeConfig,
    build=LinearProbe,
    inputs=lambda config: (Input("mean_rgb", (1024,)),),
    task=MultiLabelTask,
    reader="video-records",
)


@pytest.fixture
def registered():
    register_family(LINEAR_PROBE)
    yield
    del FAMILIES["linear-probe"]


def _video_records(folder, videos: int = 40) -> str:
    rng = np.random.default_rng(0)
    records = []
    for index in range(videos):
        label = index % 5
        mean_rgb = rng.normal(0, 1, 1024).astype(np.float32)
        mean_rgb[label] += 4.0  # learnable: one feature per class
        records.append(VideoRecord(f"v{index}", np.array([label]), mean_rgb, np.zeros(128, np.float32)))
    write_records(folder / "videos.tfrecord", records)
    return str(folder / "videos.tfrecord")


def test_a_new_family_trains_evaluates_profiles_and_exports(registered, tmp_path, capsys):
    data = _video_records(tmp_path)
    options = TrainOptions(batch_size=8, learning_rate=0.05, epochs=10, log_every=5)
    summary = train(LinearProbeConfig(), data, tmp_path / "run", options, valid_pattern=data)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert summary["valid"]["hit_at_one"] == 1.0
    assert evaluate(checkpoint, data) == summary["valid"]

    model = load_model(checkpoint)
    assert isinstance(model, LinearProbe) and model.config == LinearProbeConfig()
    assert count_flops(model, torch.zeros(1, 1024)) == 2 * 1024 * 5
    assert main(["profile", str(checkpoint), "--json", "--rounds", "1", "--repeats", "1"]) == 0
    profile = json.loads(capsys.readouterr().out)["model"]
    assert profile["inputs"] == [[1, 1024]] and profile["flops"] == 2 * 1024 * 5

    for format in ("onnx", "pt2"):
        report = export_checkpoint(checkpoint, tmp_path / f"probe.{format}", format, verify_data=data)
        assert report.input_names == ["mean_rgb"] and report.max_abs_error < 1e-5
        assert len(report.checks) == 3 + 3  # random batches and the first batches of the data

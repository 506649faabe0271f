"""Dynamic int8 quantization: only plain dense Linear layers change, checkpoints reload, outputs close."""

import pytest
import torch
from tests.conftest import write_frame_shards
from torch import nn

from compactvideo.checkpoint import CheckpointError, save_checkpoint
from compactvideo.cli import main
from compactvideo.models import build_model, load_model
from compactvideo.models.config import EmbeddingConfig, FrameLevelConfig, HeadConfig
from compactvideo.nn.circulant import CirculantLinear
from compactvideo.nn.linear import Projection
from compactvideo.nn.quantized import quantize_model
from compactvideo.nn.tucker import TuckerLinear
from compactvideo.pipelines import quantize_checkpoint

QUANTIZED_LINEAR = torch.ao.nn.quantized.dynamic.Linear


def _model():
    embedding = EmbeddingConfig(kind="dbof", clusters=256, samples=2, fc=Projection("circulant"))
    config = FrameLevelConfig(
        num_classes=10, embeddings=(embedding,), hidden_size=64, head=HeadConfig(kind="moe", mixtures=2)
    )
    return build_model(config).eval()


def test_only_dense_linear_layers_become_int8():
    model = _model()
    dense = {name for name, m in model.named_modules() if type(m) is nn.Linear}
    circulant = {name for name, m in model.named_modules() if isinstance(m, CirculantLinear)}
    quantized = quantize_model(model)
    modules = dict(quantized.named_modules())
    assert dense and circulant
    assert all(isinstance(modules[name], QUANTIZED_LINEAR) for name in dense)
    assert all(type(modules[name]) is CirculantLinear for name in circulant)
    assert all(
        type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear)
    )  # copy, not in place
    x = (torch.randn(3, 20, 1024), torch.randn(3, 20, 128), torch.tensor([20, 4, 11]))
    with torch.no_grad():
        difference = (quantized(*x) - model(*x)).abs().max()
    assert 0 < difference < 0.02  # int8 rounding moves the probabilities a little, not much


def test_tucker_factors_stay_float():
    model = build_model("thetis-small")
    model.l2 = TuckerLinear(128, 84, rank_out=84, rank_in=4)
    quantized = quantize_model(model)
    assert isinstance(quantized.l_out, QUANTIZED_LINEAR)
    assert all(type(step) is nn.Linear for step in quantized.l2.steps())


def test_quantized_checkpoint_reloads_shrinks_and_reports_gap(tmp_path, capsys):
    model = _model()
    checkpoint = save_checkpoint(
        tmp_path / "float.pt", config=model.config.to_dict(), state_dict=model.state_dict()
    )
    write_frame_shards(tmp_path, shards=1, videos=16, classes=10)
    out = tmp_path / "int8.pt"
    report = quantize_checkpoint(checkpoint, out, str(tmp_path / "train*.tfrecord"))
    assert report.bytes_after < report.bytes_before / 2
    assert report.metric == "gap" and abs(report.before - report.after) < 0.05
    reloaded = load_model(out)
    expected = quantize_model(model)
    x = (torch.randn(2, 8, 1024), torch.randn(2, 8, 128), torch.tensor([8, 3]))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(*x), expected(*x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="already quantized"):
        quantize_checkpoint(out, tmp_path / "twice.pt")
    assert main(["quantize", str(checkpoint), "--out", str(tmp_path / "cli.pt")]) == 0
    assert "dense Linear layers in int8" in capsys.readouterr().out

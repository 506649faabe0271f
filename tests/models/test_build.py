"""build_model rebuilds quantized and compressed models from their configs; format-1 checkpoints load."""

import dataclasses

import pytest
import torch
from torch import nn

from compactvideo.checkpoint import CheckpointError, save_checkpoint
from compactvideo.models import (
    FrameData,
    HeadConfig,
    TuckerLayer,
    VideoLevelConfig,
    build_model,
    load_model,
)
from compactvideo.nn import CirculantLinear, Projection, TuckerLinear, quantize_model

QUANTIZED_LINEAR = torch.ao.nn.quantized.dynamic.Linear
FORMAT_1_LOADER_OPTIONS = {  # compactvideo.loaders.LoaderOptions as format 1 saved it in "options"
    "frame_sampling": "random",
    "frames": 7,
    "samples": 3,
    "frames_per_sample": 15,
    "max_frames": 40,
    "split_half": True,
    "l2_normalize": False,
    "shuffle_buffer": 8,
    "num_workers": 0,
    "skip_corrupt": False,
    "clip_sampling": "center",
    "clip_cache": None,
}


def _format_1(path, model: nn.Module, **fields) -> None:
    """Write ``model`` as format 1 did: no data contract, quantization or tucker in the config."""
    config = model.config.to_dict()
    for key in ("data", "quantization", "tucker"):
        config.pop(key)
    if "head" in config:
        config["head"]["experts"] = config["head"].pop("logistic")
        config["head"]["kind"] = (
            "logistic" if config["head"]["kind"] == "logistic" else config["head"]["kind"]
        )
    torch.save({"format_version": 1, "config": config, "state_dict": model.state_dict(), **fields}, path)


def test_quantization_and_tucker_layers_in_the_config_rebuild_the_model():
    float_model = build_model(
        VideoLevelConfig(num_classes=5, tucker=(TuckerLayer("head.classifier.experts", 10, 4),))
    )
    assert isinstance(float_model.head.classifier.experts, TuckerLinear)
    quantized = quantize_model(float_model)
    rebuilt = build_model(dataclasses.replace(float_model.config, quantization="int8-dynamic"))
    assert isinstance(rebuilt.head.classifier.gates, QUANTIZED_LINEAR)
    assert all(
        type(step) is nn.Linear for step in rebuilt.head.classifier.experts.steps()
    )  # Tucker stays float
    rebuilt.load_state_dict(quantized.state_dict())
    x = torch.randn(3, 1024), torch.randn(3, 128)
    torch.testing.assert_close(rebuilt(*x), quantized.eval()(*x), rtol=0, atol=0)


def test_a_format_1_training_checkpoint_gets_the_contract_it_was_trained_with(tmp_path):
    model = build_model("small-dbof-dense", num_classes=4)
    _format_1(tmp_path / "checkpoint.pt", model, options={"data": FORMAT_1_LOADER_OPTIONS}, step=7)
    loaded = load_model(tmp_path / "checkpoint.pt")
    # format 1 used the model's pooling groups whatever options["samples"] said: samples stays unset
    assert loaded.config.data == FrameData(
        frame_sampling="random", frames=7, max_frames=40, l2_normalize=False
    )
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)


def test_a_format_1_quantized_logistic_checkpoint_loads(tmp_path):
    config = VideoLevelConfig(num_classes=5, head=HeadConfig(kind="logistic", context_gating=False))
    quantized = quantize_model(build_model(config))
    _format_1(tmp_path / "int8.pt", quantized, quantized=True)  # best.pt-like: no training options
    loaded = load_model(tmp_path / "int8.pt")
    assert loaded.config.quantization == "int8-dynamic" and loaded.config.data == config.data
    assert isinstance(loaded.head.classifier.linear, QUANTIZED_LINEAR)
    x = torch.randn(2, 1024), torch.randn(2, 128)
    torch.testing.assert_close(loaded(*x), quantized.eval()(*x), rtol=0, atol=0)
    circulant = build_model(
        VideoLevelConfig(num_classes=5, head=HeadConfig(kind="logistic", logistic=Projection("circulant")))
    )
    _format_1(tmp_path / "circulant.pt", circulant)  # format 1 kept this projection in "experts"
    assert isinstance(load_model(tmp_path / "circulant.pt").head.classifier.linear, CirculantLinear)


def test_weights_that_do_not_fit_the_config_are_reported(tmp_path):
    model = build_model("video-moe", num_classes=5)
    path = save_checkpoint(
        tmp_path / "model.pt",
        config=build_model("video-moe", num_classes=6).config.to_dict(),
        state_dict=model.state_dict(),
    )
    with pytest.raises(
        CheckpointError, match="model.pt: the weights do not fit the model its config describes"
    ):
        load_model(path)

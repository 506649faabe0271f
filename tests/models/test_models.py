"""Presets, configs and whole models."""

import json

import pytest
import torch

from compactvideo.models import (
    PAPER_PARAMETERS,
    PRESETS,
    ConfigError,
    build_model,
    config_from_dict,
    resolve_model_spec,
)
from compactvideo.models.presets import SMALL_PRESETS
from compactvideo.nn import CirculantLinear
from compactvideo.profiling import count_parameters


@pytest.mark.parametrize("name", PAPER_PARAMETERS)
def test_paper_presets_have_the_published_parameter_counts(name):
    with torch.device("meta"):  # the shapes alone; nothing is allocated
        model = build_model(name)
    assert count_parameters(model, convention="paper") == PAPER_PARAMETERS[name]


def frame_inputs(batch=3, frames=12, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randn(batch, frames, 1024, generator=generator, dtype=dtype)
    audio = torch.randn(batch, frames, 128, generator=generator, dtype=dtype)
    return rgb, audio, torch.tensor([frames, 5, 9][:batch])


@pytest.mark.parametrize("name", [n for n, c in SMALL_PRESETS.items() if c.family == "frame"])
def test_small_frame_models_give_probabilities_and_ignore_padding(name):
    model = build_model(name, num_classes=7).double()
    rgb, audio, num_frames = frame_inputs(dtype=torch.float64)
    padded = [
        torch.cat([x, torch.randn(3, 6, x.shape[-1], dtype=torch.float64)], dim=1) for x in (rgb, audio)
    ]
    for training in (True, False):
        model.train(training)
        out = model(rgb, audio, num_frames)
        assert out.shape == (3, 7) and bool(((out > 0) & (out < 1)).all())
        torch.testing.assert_close(model(*padded, num_frames), out, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", SMALL_PRESETS)
def test_gradients_reach_every_parameter(name):
    model = build_model(name, num_classes=5)
    if model.config.family == "frame":
        inputs = frame_inputs()
    else:
        inputs = (torch.randn(3, 1024), torch.randn(3, 128))
    model(*inputs).sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize(
    ("dense", "compact", "changed"),
    [
        ("paper-video-dense", "paper-video-compact-dbof", ["pooling.projection"]),
        ("paper-video-dense", "paper-video-compact-fc", ["fc.linear"]),
        ("paper-video-dense", "paper-video-compact-moe", ["head."]),
        ("paper-netvlad-dense", "paper-netvlad-compact-fc", ["fc.linear"]),
    ],
)
def test_dense_and_circulant_twins_differ_only_where_configured(dense, compact, changed):
    with torch.device("meta"):
        a, b = build_model(dense), build_model(compact)
    shapes_a = {k: tuple(v.shape) for k, v in a.state_dict().items()}
    shapes_b = {k: tuple(v.shape) for k, v in b.state_dict().items()}
    differing = {k for k in shapes_a.keys() | shapes_b.keys() if shapes_a.get(k) != shapes_b.get(k)}
    assert differing and all(any(part in key for part in changed) for key in differing), differing
    circulant = [name for name, m in b.named_modules() if isinstance(m, CirculantLinear)]
    assert circulant and all(any(part in name + "." for part in changed) for name in circulant)


def test_configs_round_trip_through_plain_dicts(tmp_path):
    for name, config in PRESETS.items():
        assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config, name
    path = tmp_path / "model.json"
    path.write_text(json.dumps(PRESETS["small-netfv-circulant"].to_dict()))
    assert resolve_model_spec(path, num_classes=11) == resolve_model_spec(
        "small-netfv-circulant", num_classes=11
    )


def test_bad_configs_are_reported_with_their_path():
    data = PRESETS["small-dbof-dense"].to_dict()
    data["embeddings"][0]["clusterz"] = 3
    with pytest.raises(ConfigError, match=r"config.embeddings\[0\]: unknown keys \['clusterz'\]"):
        config_from_dict(data)
    with pytest.raises(ConfigError, match="family"):
        config_from_dict({"family": "audio"})
    with pytest.raises(ConfigError, match="neither a preset"):
        build_model("paper-lstm")
    data = PRESETS["small-dbof-dense"].to_dict()
    data["embeddings"][0]["fc"]["kind"] = "toeplitz"
    with pytest.raises(ConfigError, match="unknown projection kind 'toeplitz'"):
        config_from_dict(data)

"""Clip models: the THETIS network against the published fixture weights, C3D shapes, Tucker configs."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from tests.conftest import thetis_state_dict

from compactvideo.checkpoint import save_checkpoint
from compactvideo.models import (
    ClipConfig,
    ConfigError,
    TuckerLayer,
    build_model,
    config_from_dict,
    load_model,
)
from compactvideo.nn.tucker import TuckerConv, TuckerLinear
from compactvideo.profiling import count_parameters


def reference_net2(state, clips):
    """Net2 written out with torch.nn.functional from the fixture README's layer list, eval mode."""
    x = F.max_pool3d(
        F.relu(F.conv3d(clips, state["c1.weight"], state["c1.bias"], padding=(2, 5, 5))), (2, 4, 4)
    )
    x = F.max_pool3d(F.relu(F.conv3d(x, state["c2.weight"], state["c2.bias"])), (2, 4, 4))
    x = F.relu(F.conv3d(x, state["l1.weight"], state["l1.bias"]).flatten(1))
    x = F.relu(F.linear(x, state["l2.weight"], state["l2.bias"]))
    return F.linear(x, state["l_out.weight"], state["l_out.bias"])


def test_thetis_network_has_the_published_parameter_count():
    assert count_parameters(build_model("thetis")) == 14_526 + 7_216 + 663_680 + 10_836 + 170 == 696_428


def test_thetis_network_loads_the_published_weights_and_matches_their_layer_list():
    state = thetis_state_dict()
    model = build_model("thetis")
    model.load_state_dict(state)
    clips = torch.randn(1, 4, 28, 120, 160)
    with torch.no_grad():
        expected = reference_net2(state, clips)
        # The same convolutions in the same order: measured difference 0; 4 float32 ulps of the largest
        # logit allowed.
        torch.testing.assert_close(
            model.eval()(clips), expected, rtol=0, atol=4 * 2**-23 * expected.abs().max().item()
        )


def test_thetis_last_conv_spans_the_remaining_volume():
    assert build_model("thetis").l1.kernel_size == (6, 6, 9)
    small = build_model("thetis-small")
    assert small(torch.randn(2, 4, 16, 64, 64)).shape == (2, 2)
    with pytest.raises(ConfigError, match="at least 8x32x32"):
        build_model(ClipConfig(frames=7, height=32, width=32))


def test_c3d_blocks_pool_space_first_then_time_and_give_logits():
    config = ClipConfig(
        arch="c3d", num_classes=5, in_channels=3, frames=4, height=16, width=16, channels=(8, 16, 16)
    )
    model = build_model(config)
    assert [block.pool.kernel_size for block in model.blocks] == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert model(torch.randn(2, 3, 4, 16, 16)).shape == (2, 5)
    assert build_model("c3d-small").config.block_channels == (64, 128, 256, 256)


def test_bad_clip_configs_are_reported():
    with pytest.raises(ConfigError, match="arch"):
        ClipConfig(arch="i3d")
    with pytest.raises(ConfigError, match="channels are fixed"):
        ClipConfig(channels=(8,))
    with pytest.raises(ConfigError, match="listed twice"):
        ClipConfig(tucker=(TuckerLayer("c1", 2, 2), TuckerLayer("c1", 3, 2)))
    with pytest.raises(ConfigError, match="'c9': no such layer"):
        build_model(ClipConfig(tucker=(TuckerLayer("c9", 2, 2),)))
    with pytest.raises(ConfigError, match=r"'c1': ranks .* must lie in \[1, 6\] x \[1, 4\]"):
        build_model(ClipConfig(tucker=(TuckerLayer("c1", 2, 5),)))


def test_tucker_layers_in_the_config_rebuild_the_compressed_architecture(tmp_path):
    config = dataclasses.replace(
        build_model("thetis-small").config,
        tucker=(TuckerLayer("c1", 2, 2), TuckerLayer("c2", 3, 2), TuckerLayer("l2", 84, 1)),
    )
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    model = build_model(config)
    assert isinstance(model.c1, TuckerConv) and isinstance(model.l2, TuckerLinear)
    assert model.l2.last is None and model.l2.first.out_features == 1  # Tucker-1: 128 -> 1 -> 84
    path = save_checkpoint(tmp_path / "model.pt", config=config.to_dict(), state_dict=model.state_dict())
    reloaded = load_model(path)
    clips = torch.randn(1, 4, 16, 64, 64)
    torch.testing.assert_close(reloaded(clips), model.eval()(clips), rtol=0, atol=0)

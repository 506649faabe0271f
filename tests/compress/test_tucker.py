"""Tucker decomposition of layers and models: the paper's figures, exactness, configs and reports."""

import numpy as np
import pytest
import torch
from tests.conftest import thetis_state_dict
from tests.oracles import low_multilinear_rank_kernel
from torch import nn

from compactvideo.compress.tucker import (
    CompressionError,
    compress_model,
    resolve_ranks,
    tucker_decompose,
    tucker_ranks,
)
from compactvideo.models import build_model
from compactvideo.models.clip import ClipConfig
from compactvideo.nn.tucker import TuckerConv, TuckerLinear

PAPER_RANKS = {"c1": (2, 2), "c2": (3, 2), "l1": (7, 4), "l2": (1, 1)}


def thetis():
    """The trained THETIS network (the published fixture; EVBMF ranks depend on its weights)."""
    model = build_model("thetis")
    model.load_state_dict(thetis_state_dict())
    return model.eval()


def test_evbmf_ranks_of_the_thetis_network():
    model = thetis()
    ranks = {name: tucker_ranks(model.get_submodule(name).weight.detach()) for name in PAPER_RANKS}
    assert ranks == {"c1": (2, 2), "c2": (3, 2), "l1": (2, 4), "l2": (1, 1)}
    # Weakening moves halfway back to the channel counts (rounded up); min_rank floors.
    assert tucker_ranks(model.c2.weight.detach(), weaken=0.5) == (3 + 7, 2 + 2)
    assert tucker_ranks(model.c2.weight.detach(), min_rank=8) == (8, 6)


def conv_flops(out_channels, positions, in_channels, taps):
    """Rasmussen et al.: T F'H'W' (2 S k_F k_H k_W - 1)."""
    return out_channels * positions * (2 * in_channels * taps - 1)


def test_paper_ranks_give_the_published_parameters_and_flops():
    # Parameters and FLOPs at given ranks do not depend on the weights: random ones, in every run.
    model = build_model("thetis").eval()
    report = compress_model(model, ranks=PAPER_RANKS)
    assert report.params_before == 696_428 and report.params_after == 13_598
    assert round(report.params_before / report.params_after, 2) == 51.22
    assert round(report.flops_before / 1e9, 3) == 15.772 and round(report.flops_after / 1e9, 3) == 2.630
    # c1 by hand: 28x120x160 positions, 4 -> 2 -> 2 (5x11x11) -> 6.
    positions = 28 * 120 * 160
    c1 = {layer.name: layer for layer in report.layers}["c1"]
    assert c1.flops_before == conv_flops(6, positions, 4, 5 * 11 * 11)
    assert c1.flops_after == conv_flops(2, positions, 4, 1) + conv_flops(2, positions, 2, 605) + conv_flops(
        6, positions, 2, 1
    )
    assert round(c1.flops_after / 1e9, 3) == 2.618
    actions = {layer.name: (layer.action, layer.params_after) for layer in report.layers}
    assert actions == {
        "c1": ("tucker-2", 2_446),
        "c2": ("tucker-2", 526),
        "l1": ("tucker-2", 10_160),
        "l2": ("tucker-1", 296),
        "l_out": ("skipped", 170),
    }
    assert "696,428->13,598" in str(report) and "x51.22" in str(report)


def test_vbmf_ranks_compress_the_thetis_network_107_fold():
    model = thetis()
    report = compress_model(model, ranks="vbmf")  # the output layer is skipped by default
    assert report.params_after == 6_478
    assert [layer.action for layer in report.layers][-1] == "skipped"
    assert [(t.name, t.rank_out, t.rank_in) for t in model.config.tucker] == [
        ("c1", 2, 2),
        ("c2", 3, 2),
        ("l1", 2, 4),
        ("l2", 84, 1),
    ]
    # The config alone rebuilds the compressed architecture; the weights load into it.
    rebuilt = build_model(model.config)
    rebuilt.load_state_dict(model.state_dict())
    clips = torch.randn(1, 4, 28, 120, 160)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(clips), model(clips), rtol=0, atol=0)


def low_multilinear_rank_conv(out_channels, in_channels, kernel, rank_out, rank_in, **kwargs):
    """A float64 Conv3d whose kernel has multilinear rank (rank_out, rank_in): Tucker-2 there is exact."""
    conv = nn.Conv3d(in_channels, out_channels, kernel, **kwargs).double()
    with torch.no_grad():
        conv.weight.copy_(low_multilinear_rank_kernel(out_channels, in_channels, kernel, rank_out, rank_in))
    return conv


@pytest.mark.parametrize(
    "kwargs", [{}, {"padding": 1}, {"stride": (2, 1, 2), "padding": (1, 0, 1), "dilation": (1, 2, 1)}]
)
def test_decomposition_at_the_kernels_multilinear_rank_reproduces_the_layer(kwargs):
    conv = low_multilinear_rank_conv(12, 8, (3, 3, 3), 3, 5, **kwargs)
    factored = tucker_decompose(conv, (3, 5))
    assert isinstance(factored, TuckerConv) and factored.first is not None and factored.last is not None
    x = torch.randn(2, 8, 7, 9, 10, dtype=torch.float64)
    with torch.no_grad():
        expected = conv(x)
        # float64 throughout: measured error 1.6e-15 of the largest output (7 ulps); 45 ulps allowed.
        torch.testing.assert_close(factored(x), expected, rtol=0, atol=1e-14 * expected.abs().max().item())


def test_full_rank_keeps_the_layer_and_one_full_side_gives_tucker_1():
    conv = nn.Conv3d(4, 6, 3, padding=1)
    full = tucker_decompose(conv, (6, 4))
    assert full.first is None and full.last is None
    x = torch.randn(1, 4, 5, 6, 7)
    with torch.no_grad():  # the kernel itself is the core: the same convolution, exactly
        torch.testing.assert_close(full.eval()(x), conv(x), rtol=0, atol=0)
    one_sided = tucker_decompose(conv, (6, 2))  # the output mode keeps all 6 channels
    assert one_sided.first is not None and one_sided.last is None and one_sided.core.bias is not None


def test_linear_layers_get_the_truncated_svd():
    linear = nn.Linear(30, 20).double()
    factored = tucker_decompose(linear, (3, 5))
    assert isinstance(factored, TuckerLinear) and (factored.rank_out, factored.rank_in) == (20, 3)
    u, s, vt = np.linalg.svd(linear.weight.detach().numpy())
    best = (u[:, :3] * s[:3]) @ vt[:3]
    x = torch.randn(4, 30, dtype=torch.float64)
    expected = x.numpy() @ best.T + linear.bias.detach().numpy()
    # Outputs of order 1 in float64: measured error 6e-15; 5e-14 allowed.
    np.testing.assert_allclose(factored(x).detach().numpy(), expected, rtol=0, atol=5e-14)


def test_rank_specs():
    conv = nn.Conv3d(64, 32, 3)
    assert resolve_ranks(conv, 0.25) == (8, 16)
    assert resolve_ranks(conv, (100, 10)) == (32, 10)  # capped at the channel counts
    assert resolve_ranks(nn.Conv3d(64, 32, 1), (8, 16)) == (32, 8)  # pointwise: truncated SVD
    for bad in (0.0, 1.5, (0, 3), (3,), "svd", (2.0, 3)):
        with pytest.raises(CompressionError, match="ranks|fraction"):
            resolve_ranks(conv, bad)
    with pytest.raises(CompressionError, match="Conv1d/2d/3d and Linear"):
        tucker_decompose(nn.BatchNorm3d(4))


def test_compress_model_options_and_errors():
    config = ClipConfig(
        arch="c3d", num_classes=3, in_channels=3, frames=4, height=16, width=16, channels=(8, 16)
    )
    model = build_model(config)
    norm = model.blocks[0].norm
    norm.train()
    statistics = norm.running_mean.clone()
    report = compress_model(model, ranks=0.5, skip=())
    assert torch.equal(norm.running_mean, statistics)  # FLOPs were counted in eval mode
    actions = {layer.name: layer.action for layer in report.layers}
    # blocks.0.conv 3 -> 8 at (4, 2): 3*2 + 2*4*27 + 4*8 = 254 < 648 parameters; fc: 16 -> 2 -> 3.
    assert actions == {"blocks.0.conv": "tucker-2", "blocks.1.conv": "tucker-2", "fc": "tucker-1"}
    assert model.training  # the model's mode is left alone
    with pytest.raises(CompressionError, match=r"no conv or linear layers named \['c9'\]"):
        compress_model(build_model(config), skip=("c9",))
    with pytest.raises(CompressionError, match="unknown compression method"):
        compress_model(build_model(config), method="cp")
    # Every family's config records its factored layers: a video-level model rebuilds from its config.
    video = build_model("video-logistic", num_classes=10).eval()
    compress_model(video, ranks=(8, 8), skip=())
    assert [layer.name for layer in video.config.tucker] == ["head.classifier.linear"]
    rebuilt = build_model(video.config).eval()
    rebuilt.load_state_dict(video.state_dict())
    features = torch.randn(3, 1024), torch.randn(3, 128)
    torch.testing.assert_close(rebuilt(*features), video(*features), rtol=0, atol=0)
    # A mapping compresses only the layers it names; a factorisation without gain is reported and kept.
    model = build_model(config)
    report = compress_model(model, ranks={"blocks.0.conv": (8, 3), "blocks.1.conv": (15, 8)})
    actions = {layer.name: layer.action for layer in report.layers}
    assert actions == {"blocks.0.conv": "kept: full rank", "blocks.1.conv": "kept: no gain", "fc": "skipped"}
    assert model.config.tucker == () and report.params_after == report.params_before

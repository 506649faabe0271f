"""TuckerConv / TuckerLinear against dense layers with the reconstructed kernel; fast path against plain."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compactvideo.nn.tucker import (
    FAST_PATH_MIN_POSITIONS,
    TuckerConv,
    TuckerLinear,
    TuckerRankError,
    _use_frame_taps,
    fast_conv,
    plain_path,
    set_fast_path,
    tucker_like,
)
from compactvideo.profiling import count_flops

# (in, out, kernel, rank_out, rank_in, stride, padding, dilation, input shape)
CASES = [
    (4, 6, (5, 11, 11), 2, 2, 1, (2, 5, 5), 1, (1, 4, 10, 40, 48)),  # THETIS c1-like: frame taps
    (32, 32, 3, 16, 16, 1, 1, 1, (1, 32, 6, 28, 28)),  # wide core: one 3-D oneDNN conv
    (6, 16, (3, 5, 5), 3, 6, 1, 0, 1, (2, 6, 8, 30, 40)),  # Tucker-1 (input mode kept)
    (8, 12, 3, 12, 3, (2, 1, 2), (1, 2, 0), (2, 1, 1), (2, 8, 17, 40, 33)),  # Tucker-1, strides, dilation
    (8, 12, (3, 3), 3, 5, 2, 1, 1, (2, 8, 70, 64)),  # Conv2d
    (8, 12, 5, 4, 5, 1, 2, 2, (2, 8, 5000)),  # Conv1d
]


def make_tucker(case, dtype=torch.float32):
    in_channels, out_channels, kernel, rank_out, rank_in, stride, padding, dilation, shape = case
    torch.manual_seed(0)
    layer = TuckerConv(
        in_channels, out_channels, kernel, rank_out, rank_in, stride, padding, dilation, dims=len(shape) - 2
    )
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_()
    return layer.to(dtype).eval(), torch.randn(shape, dtype=dtype)


def reconstructed_kernel(layer: TuckerConv) -> torch.Tensor:
    """W = G x_0 U_out x_1 U_in, with identities for unfactored modes."""
    kernel = layer.core.weight
    if layer.first is not None:
        kernel = torch.einsum("ab...,bs->as...", kernel, layer.first.weight.flatten(1))
    if layer.last is not None:
        kernel = torch.einsum("ts,sb...->tb...", layer.last.weight.flatten(1), kernel)
    return kernel


@pytest.mark.parametrize("case", CASES)
def test_plain_path_is_the_conv_with_the_reconstructed_kernel(case):
    layer, x = make_tucker(case, torch.float64)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[layer.dims]
    bias = (layer.last or layer.core).bias
    core = layer.core
    expected = conv(x, reconstructed_kernel(layer), bias, core.stride, core.padding, core.dilation)
    with torch.no_grad(), plain_path(layer):
        torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())


@pytest.mark.parametrize("case", CASES)
def test_fast_path_equals_plain_path(case):
    layer, x = make_tucker(case)
    with torch.no_grad():
        fast = layer(x)
        with plain_path(layer):
            plain = layer(x)
    assert layer.fast_path  # restored
    assert fast.shape == plain.shape and fast.is_contiguous()
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * plain.abs().max().item())


def test_both_core_formulations_are_exercised():
    def frame_taps(case):
        layer, x = make_tucker(case)
        core = layer.core
        return _use_frame_taps(x.shape, core.weight, core.stride, core.padding, core.dilation)

    assert frame_taps(CASES[0]) and not frame_taps(CASES[1])


def test_fast_conv_is_a_dense_conv3d():
    x, weight, bias = torch.randn(2, 3, 9, 20, 21), torch.randn(5, 3, 3, 5, 5), torch.randn(5)
    for stride, padding, dilation in [((1, 1, 1), (1, 2, 2), (1, 1, 1)), ((2, 1, 2), (2, 0, 1), (2, 1, 1))]:
        expected = F.conv3d(x, weight, bias, stride, padding, dilation)
        got = fast_conv(x, weight, bias, stride, padding, dilation)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_fast_path_is_used_in_eval_mode_only_and_can_be_switched_off(monkeypatch):
    layer, x = make_tucker(CASES[0])
    calls = []
    original = TuckerConv.fast_forward
    monkeypatch.setattr(TuckerConv, "fast_forward", lambda self, x: calls.append(1) or original(self, x))
    with torch.no_grad():
        layer(x)
        assert calls == [1]
        layer.train()(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer.eval()(x).dtype == torch.bfloat16
        layer.eval()(x[:, :, :, :8, :8])  # fewer positions than FAST_PATH_MIN_POSITIONS
        assert FAST_PATH_MIN_POSITIONS > 10 * 8 * 8
        model = nn.Sequential(layer)
        assert set_fast_path(model, False) == 1
        model(x)
        layer.double()(x.double())
        assert calls == [1]


def test_flop_counting_and_tracing_see_the_plain_path():
    layer, x = make_tucker(CASES[0])
    plain = nn.Conv3d(4, 2, 1, bias=False), nn.Conv3d(2, 2, (5, 11, 11), padding=(2, 5, 5), bias=False)
    expected = count_flops(plain[0], x) + count_flops(plain[1], torch.zeros(1, 2, *x.shape[2:]))
    expected += count_flops(nn.Conv3d(2, 6, 1), torch.zeros(1, 2, *x.shape[2:]))
    assert count_flops(layer, x) == expected
    with torch.no_grad():
        traced = torch.jit.trace(layer, x, check_trace=False)
    graph = str(traced.inlined_graph)
    assert "mkldnn_convolution" not in graph and graph.count("aten::_convolution") == 3
    torch.testing.assert_close(traced(x), layer(x), rtol=1e-5, atol=1e-3)


def test_gradients_flow_through_both_paths_and_agree():
    layer, x = make_tucker(CASES[0])
    x.requires_grad_(True)
    grads = []
    for fast in (True, False):
        set_fast_path(layer, fast)
        layer.zero_grad()
        x.grad = None
        (layer(x) ** 2).mean().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in layer.parameters()])
    assert all(g.abs().sum() > 0 for g in grads[1])
    for fast_grad, plain_grad in zip(*grads, strict=True):
        torch.testing.assert_close(
            fast_grad, plain_grad, rtol=1e-4, atol=1e-4 * plain_grad.abs().max().item()
        )
    layer.train()
    layer.zero_grad()
    layer(x).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_tucker_linear_is_the_product_of_its_factors():
    layer = TuckerLinear(30, 20, 4, 3).double()
    x = torch.randn(5, 30, dtype=torch.float64)
    matrix = layer.last.weight @ layer.core.weight @ layer.first.weight
    torch.testing.assert_close(layer(x), x @ matrix.T + layer.last.bias, rtol=1e-12, atol=1e-12)
    assert TuckerLinear(30, 20, 20, 3).last is None and TuckerLinear(30, 20, 20, 3).core.bias is not None


def test_shapes_and_rank_errors():
    assert isinstance(tucker_like(nn.Linear(8, 4), 2, 3), TuckerLinear)
    like = tucker_like(nn.Conv3d(8, 4, 3, stride=2, padding=1, dilation=1, bias=False), 2, 3)
    assert like.core.stride == (2, 2, 2) and like.last.bias is None
    with pytest.raises(TuckerRankError, match=r"must lie in \[1, 4\] x \[1, 8\]"):
        tucker_like(nn.Conv3d(8, 4, 3), 5, 3)
    with pytest.raises(TuckerRankError, match="groups=2"):
        tucker_like(nn.Conv3d(8, 4, 3, groups=2), 2, 2)
    with pytest.raises(TuckerRankError, match="BatchNorm3d"):
        tucker_like(nn.BatchNorm3d(4), 2, 2)

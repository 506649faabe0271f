"""Parameter, byte and FLOP counts against hand computation."""

import math

import pytest
import torch
from torch import nn

from compactvideo.nn import BlockCirculantLinear, CirculantLinear
from compactvideo.profiling import count_flops, count_parameters, measure_latency, megabytes, model_bytes


def rfft_flops(n: int) -> float:
    return 2.5 * n * math.log2(n)


def test_dense_layer_flops_are_two_per_multiply_add():
    assert count_flops(nn.Linear(64, 32), torch.randn(8, 64)) == 2 * 8 * 64 * 32
    conv = nn.Conv3d(4, 6, kernel_size=3)
    assert count_flops(conv, torch.randn(1, 4, 5, 6, 7)) == 2 * (6 * 3 * 4 * 5) * (4 * 27)


def test_circulant_flops_count_ffts_and_complex_products():
    batch, n = 8, 1024
    # rfft of each input row and of the column, one complex product per row, one irfft per row.
    expected = (2 * batch + 1) * rfft_flops(n) + 6 * (n // 2 + 1) * batch
    assert count_flops(CirculantLinear(n, n), torch.randn(batch, n)) == round(expected)


def test_circulant_flops_with_blocks_and_factors():
    batch, n, m, factors = 4, 256, 600, 2  # 3 blocks of 256
    blocks = 3
    per_factor = (2 * batch * blocks + blocks) * rfft_flops(n) + 6 * (n // 2 + 1) * batch * blocks
    assert count_flops(CirculantLinear(n, m, factors=factors), torch.randn(batch, n)) == round(
        factors * per_factor
    )


def test_block_circulant_flops():
    batch, n, m, b = 2, 64, 32, 16  # q=4 input blocks, p=2 output blocks, f=9 frequencies
    q, p, f = 4, 2, b // 2 + 1
    ffts = (batch * q + p * q + batch * p) * rfft_flops(b)
    # The frequency-domain sum is a complex matmul: batch*p*q*f complex multiply-adds of 8 real flops.
    products = 8 * batch * p * q * f
    assert count_flops(BlockCirculantLinear(n, m, b), torch.randn(batch, n)) == round(ffts + products)


def test_paper_convention_adds_batch_norm_statistics():
    model = nn.Sequential(nn.Linear(10, 5), nn.BatchNorm1d(5), nn.Linear(5, 3, bias=False))
    assert count_parameters(model) == 55 + 10 + 15
    assert count_parameters(model, convention="paper") == 55 + 10 + 15 + 10
    frozen = nn.Linear(4, 4)
    frozen.weight.requires_grad_(False)
    assert count_parameters(frozen) == 4
    with pytest.raises(ValueError, match="convention"):
        count_parameters(model, convention="tf")


def test_bytes_and_megabytes():
    model = nn.Sequential(nn.Linear(10, 5), nn.BatchNorm1d(5))
    # 55 + 10 float32 parameters, running mean and var (float32) and num_batches_tracked (int64).
    assert model_bytes(model) == (55 + 10 + 10) * 4 + 8
    assert megabytes(45_359_764) == pytest.approx(173.03, abs=0.01)  # the paper's "173 MB"


def test_measure_latency_counts_calls():
    calls = []
    latency = measure_latency(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and latency.repeats == 5 and latency.min_ms <= latency.median_ms

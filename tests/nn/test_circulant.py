"""CirculantLinear and BlockCirculantLinear against dense matrices built entry by entry in float64."""

import itertools

import numpy as np
import pytest
import torch

from compactvideo.nn import BlockCirculantLinear, CirculantLinear

SHAPES = [(16, 16), (16, 5), (8, 21), (6, 12)]  # square, shrinking, expanding (uneven), expanding (even)
MODES = ["learned", "sign", "none"]


def oracle_dense(layer: CirculantLinear) -> np.ndarray:
    """The layer's matrix from its definition, with Python loops: C[i, j] = c[(i - j) mod n]."""
    n, m = layer.in_features, layer.out_features
    columns = layer.columns.detach().double().numpy()
    diagonals = None if layer.diagonals is None else layer.diagonals.detach().double().numpy()
    rows = []
    for block in range(layer.blocks):
        product = np.eye(n)
        for k in range(layer.factors):
            circulant = np.empty((n, n))
            for i, j in itertools.product(range(n), range(n)):
                circulant[i, j] = columns[block, k, (i - j) % n]
            diagonal = np.eye(n) if diagonals is None else np.diag(diagonals[block, k])
            product = circulant @ diagonal @ product
        rows.append(product)
    return np.concatenate(rows)[:m]


def block_oracle_dense(layer: BlockCirculantLinear) -> np.ndarray:
    b = layer.block_size
    columns = layer.columns.detach().double().numpy()
    dense = np.zeros((layer.block_rows * b, layer.block_cols * b))
    for p, q, i, j in itertools.product(range(layer.block_rows), range(layer.block_cols), range(b), range(b)):
        dense[p * b + i, q * b + j] = columns[p, q, (i - j) % b]
    return dense[: layer.out_features, : layer.in_features]


def make_layer(n, m, factors, mode):
    layer = CirculantLinear(n, m, factors=factors, diagonal=mode).double()
    with torch.no_grad():
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize(("n", "m"), SHAPES)
@pytest.mark.parametrize("factors", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_forward_equals_dense_product(n, m, factors, mode):
    layer = make_layer(n, m, factors, mode)
    x = torch.randn(2, 3, n, dtype=torch.float64)
    expected = x.numpy() @ oracle_dense(layer).T + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.to_dense().detach().numpy(), oracle_dense(layer), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n", "m"), SHAPES)
@pytest.mark.parametrize("factors", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_the_dense_equivalent(n, m, factors, mode):
    layer = make_layer(n, m, factors, mode)
    x = torch.randn(4, n, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, m, dtype=torch.float64)
    params = [p for p in layer.parameters()]

    (layer(x) * upstream).sum().backward()
    fft_grads = [p.grad.clone() for p in params] + [x.grad.clone()]
    for p in params:
        p.grad = None
    x.grad = None
    # The dense route differentiates through the explicit matrix (gathered entries, no FFT).
    ((x @ layer.to_dense().T + layer.bias) * upstream).sum().backward()
    dense_grads = [p.grad for p in params] + [x.grad]
    for fft_grad, dense_grad in zip(fft_grads, dense_grads, strict=True):
        torch.testing.assert_close(fft_grad, dense_grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode):
    layer = make_layer(6, 9, 2, mode)
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    names = ["columns", "bias"] + (["diagonals"] if mode == "learned" else [])
    params = [getattr(layer, name).detach().clone().requires_grad_(True) for name in names]

    def run(x, *values):
        return torch.func.functional_call(layer, dict(zip(names, values, strict=True)), (x,))

    inputs = (x, *params)
    assert torch.autograd.gradcheck(run, inputs)


def test_parameter_counts_follow_the_authors_code():
    def weights(layer):
        return sum(p.numel() for p in layer.parameters())

    assert weights(CirculantLinear(8192, 512, bias=False)) == 16_384
    assert weights(CirculantLinear(1024, 8192, bias=False)) == 8 * 2 * 1024
    assert weights(CirculantLinear(1024, 512, factors=3)) == 3 * 2 * 1024 + 512
    sign = CirculantLinear(1024, 512, diagonal="sign", bias=False)
    assert weights(sign) == 1024 and torch.equal(sign.diagonals.abs(), torch.ones(1, 1, 1024))
    assert weights(CirculantLinear(1024, 512, diagonal="none", bias=False)) == 1024
    assert weights(BlockCirculantLinear(1000, 300, block_size=64, bias=False)) == 5 * 16 * 64


@pytest.mark.parametrize(("n", "m"), SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_from_dense_is_the_frobenius_projection(n, m, mode):
    linear = torch.nn.Linear(n, m).double()
    layer = CirculantLinear.from_dense(linear, diagonal=mode)
    residual = linear.weight.detach().numpy() - oracle_dense(layer)
    # The residual is orthogonal to every matrix of the layer's set {C D}: each basis circulant of
    # each block, times the layer's (fixed) diagonal.
    signs = np.ones((layer.blocks, n)) if layer.diagonals is None else layer.diagonals[:, 0].detach().numpy()
    for block, k in itertools.product(range(layer.blocks), range(n)):
        basis = np.zeros((layer.blocks * n, n))
        for i in range(n):
            basis[block * n + i, (i - k) % n] = signs[block, (i - k) % n]
        assert abs(np.sum(residual * basis[:m])) < 1e-12
    torch.testing.assert_close(layer.bias, linear.bias)


def test_from_dense_recovers_a_circulant_exactly():
    source = CirculantLinear(12, 12, diagonal="none").double()
    linear = torch.nn.Linear(12, 12).double()
    with torch.no_grad():
        linear.weight.copy_(source.to_dense())
    recovered = CirculantLinear.from_dense(linear, diagonal="none")
    torch.testing.assert_close(recovered.columns, source.columns, rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_upcast_and_cast_back(dtype):
    layer = CirculantLinear(64, 32, factors=2)
    x = torch.randn(5, 64)
    out = layer(x.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), layer(x.to(dtype).float()), rtol=1e-2, atol=1e-2)


def test_eval_mode_caches_spectra_and_notices_updates():
    layer = CirculantLinear(32, 32, factors=2)
    x = torch.randn(3, 32)
    expected = layer(x).detach()
    layer.eval()
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected)
        assert layer._spectrum_cache is not None
        cached = layer._spectrum_cache[1]
        layer(x)
        assert layer._spectrum_cache[1] is cached  # reused
        layer.columns.mul_(2.0)  # as an optimizer step would
        torch.testing.assert_close(
            layer(x), x.double().matmul(layer.to_dense().double().T).float(), atol=1e-5, rtol=0
        )


@pytest.mark.parametrize(("n", "m", "b"), [(16, 16, 4), (20, 13, 4), (10, 23, 8)])
def test_block_circulant_forward_and_gradients(n, m, b):
    layer = BlockCirculantLinear(n, m, block_size=b).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, n, dtype=torch.float64)
    expected = x.numpy() @ block_oracle_dense(layer).T + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.to_dense().detach().numpy(), block_oracle_dense(layer), atol=1e-12)
    columns = layer.columns.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda c, x: torch.func.functional_call(layer, {"columns": c}, (x,)), (columns, x)
    )


def test_bad_arguments_are_rejected_precisely():
    with pytest.raises(ValueError, match="diagonal must be one of"):
        CirculantLinear(8, 8, diagonal="random")
    with pytest.raises(ValueError, match="factors must be at least 1"):
        CirculantLinear(8, 8, factors=0)
    with pytest.raises(ValueError, match="expected last dimension 8"):
        CirculantLinear(8, 8)(torch.randn(2, 7))


@pytest.mark.parametrize("init", ["ecai2020", "eccv2018"])
def test_initial_weight_statistics(init):
    layer = CirculantLinear(4096, 512, factors=4, init=init, generator=torch.Generator().manual_seed(1))
    columns, diagonals = layer.columns.detach(), layer.diagonals.detach()
    if init == "ecai2020":
        assert torch.equal(diagonals.abs(), torch.ones_like(diagonals))
        assert columns.std().item() == pytest.approx((2 / 4096) ** 0.5, rel=0.02)
    else:
        assert columns.std().item() == pytest.approx(1 / 512**0.5, rel=0.02)
        assert diagonals.std().item() == pytest.approx(1 / 512**0.5, rel=0.02)

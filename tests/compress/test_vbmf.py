"""EVBMF against the published ranks, a brute-force minimisation of the free energy, and synthetic data."""

import math

import numpy as np
import pytest
from tests.conftest import thetis_state_dict

from compactvideo.compress.vbmf import VBMFError, evbmf, vbmf_rank


def brute_force_free_energy(singular_values, length: int, m: int, sigma2: float, tau_bar: float) -> float:
    """Nakajima et al. (2013) eq. 39 written out term by term, with a loop over the singular values."""
    alpha = length / m
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    total = 0.0
    for gamma in singular_values:
        x = gamma**2 / (m * sigma2)
        total += x - math.log(x)
        if x > x_bar:
            tau = 0.5 * (x - (1 + alpha) + math.sqrt((x - (1 + alpha)) ** 2 - 4 * alpha))
            total += math.log(tau + 1) + alpha * math.log(tau / alpha + 1) - tau
    return total


def test_threshold_constant_is_the_published_one():
    # tau_ solves log(tau + 1) + alpha log(tau / alpha + 1) = tau; the ports hard-code 2.5129 sqrt(alpha).
    from compactvideo.compress.vbmf import _tau_threshold

    assert _tau_threshold(1.0) == pytest.approx(2.5129, abs=1e-4)
    for alpha in (0.01, 0.3, 0.7):
        tau = _tau_threshold(alpha)
        assert math.log1p(tau) + alpha * math.log1p(tau / alpha) == pytest.approx(tau, rel=1e-12)


@pytest.mark.parametrize(
    ("layer", "mode", "rank"),
    [("c1", 0, 2), ("c1", 1, 2), ("c2", 0, 3), ("c2", 1, 2), ("l1", 0, 2), ("l1", 1, 4), ("l2", 0, 1)],
)
def test_fixture_unfoldings_give_the_published_ranks(layer, mode, rank):
    weight = thetis_state_dict()[f"{layer}.weight"]
    unfolding = weight.movedim(mode, 0).reshape(weight.shape[mode], -1)
    assert vbmf_rank(unfolding) == rank


def test_l1_noise_variance_is_the_global_minimum_not_the_first_probe():
    """Fixture README: on [1.857e-5, 2.739e-5] the minimum is 2.547e-5 (2 components); the port's
    bounded minimiser stops at its first probe (7 components)."""
    from compactvideo.compress.vbmf import _tau_threshold

    unfolding = thetis_state_dict()["l1.weight"].double().numpy().reshape(128, -1)
    length, m = unfolding.shape
    result = evbmf(unfolding)
    assert result.rank == 2
    assert result.sigma2 == pytest.approx(2.547e-5, rel=1e-3)
    # The search interval of Nakajima et al. (2013), from its definition.
    gamma = np.linalg.svd(unfolding, compute_uv=False)
    alpha, tau_bar = length / m, _tau_threshold(length / m)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    upper = (gamma**2).sum() / (length * m)
    max_rank = math.ceil(length / (1 + alpha)) - 1
    lower = max(gamma[max_rank] ** 2 / (m * x_bar), (gamma[max_rank:] ** 2).mean() / m)
    assert (round(lower, 8), round(upper, 8)) == (1.857e-5, 2.739e-5)
    grid = np.linspace(lower, upper, 1001)
    energies = [brute_force_free_energy(gamma, length, m, s, tau_bar) for s in grid]
    assert result.sigma2 == pytest.approx(grid[int(np.argmin(energies))], abs=2 * (grid[1] - grid[0]))
    assert brute_force_free_energy(gamma, length, m, result.sigma2, tau_bar) <= min(energies) + 1e-9
    # scipy's bounded Brent first probes lower + (3 - sqrt 5) / 2 (upper - lower); with the ports'
    # tau_ = 2.5129 sqrt(alpha), seven singular values clear the threshold there.
    probe = lower + (3 - math.sqrt(5)) / 2 * (upper - lower)
    port_tau = 2.5129 * math.sqrt(alpha)
    port_x_bar = (1 + port_tau) * (1 + alpha / port_tau)
    assert round(probe, 8) == 2.194e-5
    assert int((gamma > math.sqrt(m * probe * port_x_bar)).sum()) == 7


@pytest.mark.parametrize(
    ("shape", "rank", "noise"), [((50, 200), 5, 0.1), ((120, 80), 10, 0.5), ((30, 30), 3, 0.2)]
)
def test_low_rank_plus_noise_recovers_rank_and_noise_variance(shape, rank, noise):
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1]))
    result = evbmf(signal + noise * rng.normal(size=shape))
    assert result.rank == rank
    assert result.sigma2 == pytest.approx(noise**2, rel=0.1)
    # Kept components are shrunk towards zero, never inflated.
    assert np.all(result.estimates < result.singular_values[:rank])
    assert np.all(result.estimates > 0)


def test_pure_noise_gives_rank_zero_and_exact_low_rank_its_rank():
    rng = np.random.default_rng(1)
    assert vbmf_rank(rng.normal(size=(40, 100))) == 0
    assert vbmf_rank(np.outer(np.arange(1.0, 5.0), np.arange(1.0, 7.0))) == 1
    assert vbmf_rank(np.zeros((3, 4))) == 0
    # Orientation does not matter: L x M and M x L give the same answer.
    matrix = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 60)) + 0.05 * rng.normal(size=(20, 60))
    assert vbmf_rank(matrix) == vbmf_rank(matrix.T) == 3


def test_bad_matrices_are_refused():
    with pytest.raises(VBMFError, match="non-empty matrix"):
        evbmf(np.ones(5))
    with pytest.raises(VBMFError, match="NaN"):
        evbmf(np.array([[1.0, np.nan], [0.0, 1.0]]))

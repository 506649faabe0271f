r"""Rank selection by empirical variational Bayesian matrix factorisation (EVBMF).

Nakajima, Sugiyama, Babacan, Tomioka, *Global analytic solution of fully-observed variational Bayesian
matrix factorization*, JMLR 14 (2013) 1-37, sec. 5 (empirical VB, noise variance unknown). Kim et al.
(ICLR 2016) and Rasmussen et al. (NLDL 2022) pick Tucker ranks with it.

Model: V = B A^T + E in R^{L x M} (L <= M, else V is transposed), E_{lm} ~ N(0, sigma^2), Gaussian priors
on the columns of A and B whose variances are estimated too. With the singular values
gamma_1 >= ... >= gamma_L of V, alpha = L / M and x_h = gamma_h^2 / (M sigma^2):

- tau(x) = (x - (1 + alpha) + sqrt((x - (1 + alpha))^2 - 4 alpha)) / 2, the larger root of
  x = (1 + tau)(1 + alpha / tau);
- psi_0(x) = x - log x,   psi_1(x) = log(tau(x) + 1) + alpha log(tau(x) / alpha + 1) - tau(x);
- tau_ = the positive root of log(tau + 1) + alpha log(tau / alpha + 1) = tau (about 2.5129 sqrt(alpha);
  solved exactly here), and x_ = (1 + tau_)(1 + alpha / tau_).

Component h survives iff x_h > x_, i.e. gamma_h > sqrt(M sigma^2 x_) (the EVB threshold). The
noise variance is the minimiser of the free energy, up to constants (the paper's eq. 39),

    Omega(sigma^2) = sum_h psi_0(x_h) + sum_{h: x_h > x_} psi_1(x_h),

over sigma^2 in [sigma_lo^2, sigma_hi^2] with sigma_hi^2 = ||V||_F^2 / (L M) and
sigma_lo^2 = max(gamma_{H+1}^2 / (M x_), sum_{h > H} gamma_h^2 / (M (L - H))), H = ceil(L / (1 + alpha)) - 1
the largest rank EVB can return. Omega is continuous (psi_1(x_) = 0) but need not be unimodal, so it is
evaluated on a log-spaced grid and every local minimum of the grid is refined by golden-section search to
a tolerance relative to the interval; the best is kept. (The public port's bounded Brent search uses an
absolute tolerance of 1e-5, wider than the whole interval of small-valued kernels, and can stop at its
first probe: see the fixture README.) The kept components' EVB estimates are

    gamma_h' = gamma_h / 2 * (1 - (L + M) sigma^2 / gamma_h^2
                              + sqrt((1 - (L + M) sigma^2 / gamma_h^2)^2 - 4 L M sigma^4 / gamma_h^4)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from compactvideo.errors import CompactVideoError

_GRID_POINTS = 400
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class VBMFError(CompactVideoError, ValueError):
    """A matrix EVBMF cannot be run on."""


@dataclass(frozen=True)
class VBMFResult:
    """EVBMF of one matrix: the rank, the estimated noise variance, the threshold and the kept estimates.

    ``search_interval`` is [sigma_lo^2, sigma_hi^2], where the noise variance was searched.
    """

    rank: int
    sigma2: float
    threshold: float
    singular_values: np.ndarray
    estimates: np.ndarray
    search_interval: tuple[float, float] = (0.0, 0.0)


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    shifted = x - (1.0 + alpha)
    return 0.5 * (shifted + np.sqrt(np.maximum(shifted**2 - 4.0 * alpha, 0.0)))


def _tau_threshold(alpha: float) -> float:
    """The positive root of log(tau + 1) + alpha log(tau / alpha + 1) - tau, by bisection."""

    def excess(tau: float) -> float:
        return math.log1p(tau) + alpha * math.log1p(tau / alpha) - tau

    low, high = math.sqrt(alpha), 4.0 * (1.0 + math.sqrt(alpha))
    while excess(high) > 0:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if excess(middle) > 0 else (low, middle)
    return 0.5 * (low + high)


def _free_energy(sigma2: np.ndarray, squares: np.ndarray, m: int, alpha: float, x_bar: float) -> np.ndarray:
    """Omega at each sigma^2 (up to constants): sum psi_0 + sum over components above threshold of psi_1.

    The constant -sum log gamma_h^2 of psi_0 is left out, so zero singular values are allowed.
    """
    scaled = m * np.asarray(sigma2, dtype=np.float64)[..., None]
    x = squares / scaled
    above = x > x_bar
    tau = _tau(np.where(above, x, x_bar), alpha)
    psi1 = np.log1p(tau) + alpha * np.log1p(tau / alpha) - tau
    return (x + np.log(scaled)).sum(-1) + np.where(above, psi1, 0.0).sum(-1)


def _golden_section(fn, low: float, high: float, tolerance: float) -> tuple[float, float]:
    """Minimum of a unimodal ``fn`` on [low, high] (in log sigma^2), to ``tolerance``."""
    a, b = low, high
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = fn(c), fn(d)
    while b - a > tolerance:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = fn(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = fn(d)
    return (c, fc) if fc <= fd else (d, fd)


def evbmf(matrix: torch.Tensor | np.ndarray) -> VBMFResult:
    """EVBMF of an L x M matrix (see the module docstring): rank, noise variance, kept singular values."""
    values = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, np.float64)
    if values.ndim != 2 or min(values.shape) < 1:
        raise VBMFError(f"EVBMF needs a non-empty matrix, got shape {tuple(values.shape)}")
    if not np.isfinite(values).all():
        raise VBMFError("EVBMF needs finite values; the matrix holds NaN or infinity")
    length, m = sorted(values.shape)
    singular = np.linalg.svd(values, compute_uv=False)
    squares = singular**2
    alpha = length / m
    tau_bar = _tau_threshold(alpha)
    x_bar = (1.0 + tau_bar) * (1.0 + alpha / tau_bar)
    upper = squares.sum() / (length * m)
    if upper == 0.0:
        return VBMFResult(0, 0.0, 0.0, singular, singular[:0])
    max_rank = math.ceil(length / (1.0 + alpha)) - 1
    lower = max(squares[max_rank] / (m * x_bar), squares[max_rank:].mean() / m, upper * 1e-12)
    if lower >= upper:
        sigma2 = upper
    else:
        log_low, log_high = math.log(lower), math.log(upper)
        grid = np.linspace(log_low, log_high, _GRID_POINTS)
        energy = _free_energy(np.exp(grid), squares, m, alpha, x_bar)
        step = grid[1] - grid[0]
        best_log, best_energy = grid[int(np.argmin(energy))], float(energy.min())
        for i in range(_GRID_POINTS):
            if energy[i] <= energy[max(i - 1, 0)] and energy[i] <= energy[min(i + 1, _GRID_POINTS - 1)]:
                log_s, value = _golden_section(
                    lambda s: float(_free_energy(math.exp(s), squares, m, alpha, x_bar)),
                    max(grid[i] - step, log_low),
                    min(grid[i] + step, log_high),
                    tolerance=1e-9 * (log_high - log_low),
                )
                if value < best_energy:
                    best_log, best_energy = log_s, value
        sigma2 = math.exp(best_log)
    threshold = math.sqrt(m * sigma2 * x_bar)
    kept = singular[singular > threshold]
    shrink = 1.0 - (length + m) * sigma2 / kept**2
    estimates = (
        kept / 2.0 * (shrink + np.sqrt(np.maximum(shrink**2 - 4.0 * length * m * sigma2**2 / kept**4, 0)))
    )
    return VBMFResult(len(kept), sigma2, threshold, singular, estimates, (lower, upper))


def vbmf_rank(matrix: torch.Tensor | np.ndarray) -> int:
    """The rank EVBMF selects for ``matrix`` (number of singular values above the EVB threshold)."""
    return evbmf(matrix).rank

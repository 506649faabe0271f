"""How big and how fast a model is: parameters, bytes, FLOPs (FFTs included) and latency.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` (2 flops per multiply-add of
matmuls and convolutions), extended with formulas for what no usual counter sees:

- a real FFT of length N (``rfft``, ``irfft``): 2.5 N log2 N real flops (split-radix estimate);
- a complex FFT of length N (autograd's backward of ``rfft``): 5 N log2 N real flops;
- a complex element-wise product: 6 real flops per output element (4 multiplies, 2 additions);
- a complex matrix product: 8 real flops per multiply-add instead of 2;
- an int8 matrix product (``torch._int_mm``, int8 models): 2 operations per multiply-add, as in float.

Real element-wise work (bias, batch norm, activations, the diagonal of a circulant factor) is left out,
for dense and structured layers alike.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from compactvideo._torch_compat import (
    ATEN_BMM,
    ATEN_FFT_C2C,
    ATEN_FFT_C2R,
    ATEN_FFT_R2C,
    ATEN_INT_MM,
    ATEN_MM,
    ATEN_MUL,
    builtin_flop_formula,
    raw_flop_formula,
)


def _fft_flops(signal_sizes: Sequence[int], transforms: int, per_point: float) -> int:
    return round(sum(transforms * per_point * n * math.log2(n) for n in signal_sizes if n > 1))


@raw_flop_formula
def _fft_r2c_flops(
    x: torch.Tensor, dim: Sequence[int], *args: Any, out_val: Any = None, **kwargs: Any
) -> int:
    sizes = [x.shape[d] for d in dim]
    return _fft_flops(sizes, x.numel() // math.prod(sizes), 2.5)


@raw_flop_formula
def _fft_c2r_flops(
    x: torch.Tensor, dim: Sequence[int], *args: Any, out_val: Any = None, **kwargs: Any
) -> int:
    sizes = [out_val.shape[d] for d in dim]
    return _fft_flops(sizes, out_val.numel() // math.prod(sizes), 2.5)


@raw_flop_formula
def _fft_c2c_flops(
    x: torch.Tensor, dim: Sequence[int], *args: Any, out_val: Any = None, **kwargs: Any
) -> int:
    sizes = [x.shape[d] for d in dim]
    return _fft_flops(sizes, x.numel() // math.prod(sizes), 5.0)


@raw_flop_formula
def _complex_mul_flops(a: Any, b: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    return 6 * out_val.numel() if out_val.is_complex() else 0


def _complex_aware(real_formula: Callable) -> Callable:
    """A matmul formula that counts a complex multiply-add as 4 real ones."""

    @raw_flop_formula
    def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        flops = real_formula(*args, out_val=out_val, **kwargs)
        return 4 * flops if out_val.is_complex() else flops

    return formula


@raw_flop_formula
def _int8_matmul_flops(*args: Any, **kwargs: Any) -> int:
    """``torch._int_mm``, the int8 products of torchao's quantized layers: as a float product."""
    return builtin_flop_formula(ATEN_MM)(*args, **kwargs)


FFT_FLOP_FORMULAS = {
    ATEN_MM: _complex_aware(builtin_flop_formula(ATEN_MM)),
    ATEN_BMM: _complex_aware(builtin_flop_formula(ATEN_BMM)),
    ATEN_FFT_R2C: _fft_r2c_flops,
    ATEN_FFT_C2R: _fft_c2r_flops,
    ATEN_FFT_C2C: _fft_c2c_flops,
    ATEN_MUL: _complex_mul_flops,
    ATEN_INT_MM: _int8_matmul_flops,
}


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Real flops of one call ``fn(*args, **kwargs)`` (a module or any function), FFTs included."""
    with FlopCounterMode(display=False, custom_mapping=FFT_FLOP_FORMULAS) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def count_parameters(model: nn.Module, convention: Literal["trainable", "paper"] = "trainable") -> int:
    """Number of parameters.

    - ``"trainable"``: parameters with ``requires_grad``;
    - ``"paper"``: as Araujo et al. count them (every TensorFlow graph variable): trainable parameters
      plus the running mean and variance of every batch norm.
    """
    if convention not in ("trainable", "paper"):
        raise ValueError(f"convention must be 'trainable' or 'paper', got {convention!r}")
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if convention == "paper":
        for module in model.modules():
            if getattr(module, "track_running_stats", False) and module.running_mean is not None:
                total += module.running_mean.numel() + module.running_var.numel()
    return total


def model_bytes(model: nn.Module) -> int:
    """Bytes of everything a checkpoint stores: parameters and persistent buffers."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def megabytes(num_parameters: int, bytes_per_parameter: int = 4) -> float:
    """Size in MiB (2**20 bytes), the unit of the papers' "Size (MB)" columns."""
    return num_parameters * bytes_per_parameter / 2**20


@dataclass(frozen=True)
class Latency:
    """Wall-clock times of repeated calls, in milliseconds."""

    median_ms: float
    min_ms: float
    repeats: int

    def __str__(self) -> str:
        return f"{self.median_ms:.3f} ms (min {self.min_ms:.3f}, n={self.repeats})"


def measure_latency(
    fn: Callable[[], Any],
    warmup: int = 3,
    repeats: int = 20,
    min_seconds: float = 0.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Latency:
    """Time ``fn()`` after ``warmup`` calls; at least ``repeats`` calls and at least ``min_seconds``.

    ``clock``: wall-clock time by default; ``time.thread_time`` counts only the calling thread's CPU
    time, which on a machine shared with other jobs leaves out the time slices they take (for
    single-threaded calls, the latency the call would have on its own)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1e3)
    return Latency(statistics.median(times), min(times), len(times))


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_interleaved(
    variants: Mapping[str, Callable[[], Any]], rounds: int = 5, repeats: int = 3, warmup: int = 1
) -> dict[str, float]:
    """Median milliseconds per call of each variant over ``rounds`` rounds that time every variant in
    turn (``repeats`` calls after ``warmup``, median kept), so that load on the machine falls on all of
    them alike and their ratios stay meaningful."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(measure_latency(fn, warmup=warmup, repeats=repeats).median_ms)
    return {name: statistics.median(values) for name, values in times.items()}


def describe_machine() -> str:
    """One line naming the machine a measurement ran on (for benchmark output)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs; torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread(s); Python {platform.python_version()}"
    )

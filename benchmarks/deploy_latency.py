"""Deployment latency: every paper preset and the compact-all presets, fp32 and int8, in PyTorch eager,
onnxruntime and as a .pt2 program, at batch 1 and 80 (300-frame videos), 1 thread, one process.

Each model family (a dense model and its compact twins) is exported (verified against PyTorch by
``compactvideo.export.export_model``) and timed in interleaved rounds, every model and runtime in each
round, so that the ratios, all taken against the dense twin's fp32 time in the same runtime at the same
batch size and measured in the same run, are robust to the machine's load; times are the calling
thread's CPU time by default, which leaves out other jobs' time slices on a shared machine. int8 is
``compactvideo.nn.quantized.quantize_model`` (torchao) in eager PyTorch and the .pt2 program, and
onnxruntime's int8 products in the ONNX file. ``torch.ao`` (int8 only, on request) is the deprecated
``quantize_dynamic`` path the torchao one replaced.

Each model's floor is the larger of its weight bytes over the read bandwidth and its FLOPs (FFTs
included) over the GEMM rate, both measured in the same run: a one-thread run cannot beat either.

    python benchmarks/deploy_latency.py           # the whole matrix (long: about an hour)
    python benchmarks/deploy_latency.py --quick   # the video-only family, batch 1, eager and onnxruntime
    python benchmarks/deploy_latency.py --models paper-video-dense paper-video-compact-all --batches 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from compactvideo.export import export_model, load_runner
from compactvideo.models import build_model, example_inputs, model_inputs
from compactvideo.nn.quantized import quantizable_linears, quantize_model
from compactvideo.profiling import count_flops, describe_machine, measure_latency, model_bytes

# Each dense model and its compact twins: the twins' ratios are against it.
FAMILIES = {
    "paper-video-dense": (
        "paper-video-compact-dbof",
        "paper-video-compact-fc",
        "paper-video-compact-moe",
        "paper-video-compact-all",
    ),
    "paper-dbof-dense": ("paper-dbof-compact-fc", "paper-compact-all"),
    "paper-netvlad-dense": ("paper-netvlad-compact-fc",),
    "paper-netfv-dense": ("paper-netfv-compact-fc",),
}
RUNTIMES = ("eager", "onnxruntime", "pt2", "torch.ao")
DEFAULT_RUNTIMES = ("eager", "onnxruntime", "pt2")
PRECISIONS = ("fp32", "int8")
# cpu: the calling thread's CPU time, which leaves out the time slices other jobs take on a shared
# machine (every runtime here computes on the calling thread); wall: wall-clock time.
CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
FRAMES = 300


def selected_families(models: list[str] | None) -> dict[str, list[str]]:
    """{dense model: models to run}: every family, or the families of ``models``, each with its dense twin
    (the ratios are against it)."""
    known = {name for dense, twins in FAMILIES.items() for name in (dense, *twins)}
    unknown = sorted(set(models or ()) - known)
    if unknown:
        raise SystemExit(f"unknown models {unknown}; known: {sorted(known)}")
    families = {}
    for dense, twins in FAMILIES.items():
        names = [name for name in (dense, *twins) if models is None or name in models]
        if names:
            families[dense] = list(dict.fromkeys([dense, *names]))
    return families


def machine_rates(clock: Callable[[], float]) -> tuple[float, float]:
    """(read bandwidth in bytes/s, fp32 GEMM rate in flop/s) of this machine on 1 thread: the fastest of
    10 sums of 256 MiB, and of 10 products of each of a square and a DBoF-projection-shaped GEMM."""
    data = torch.randn(2**26)
    read = measure_latency(lambda: data.sum(), repeats=10, clock=clock).min_ms / 1e3
    rates = []
    for m, k, n in ((2048, 2048, 2048), (300, 1024, 8192)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        seconds = measure_latency(lambda a=a, b=b: a @ b, repeats=10, clock=clock).min_ms / 1e3
        rates.append(2 * m * k * n / seconds)
    return data.numel() * 4 / read, max(rates)


def floor_ms(model: torch.nn.Module, batch: int, bandwidth: float, gemm_rate: float) -> tuple[float, float]:
    """(weights floor, FLOPs floor) in ms for one call at ``batch`` videos."""
    with torch.device("meta"):
        flops = count_flops(build_model(model.config).eval(), *example_inputs(model.config, batch, FRAMES))
    return model_bytes(model) / bandwidth * 1e3, flops / gemm_rate * 1e3


def _torch_ao_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Today's deprecated path, for comparison only: torch.ao dynamic int8 of the same layers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = dict.fromkeys(quantizable_linears(model), torch.ao.quantization.default_dynamic_qconfig)
        return torch.ao.quantization.quantize_dynamic(model, spec)


def runner_factories(
    name: str, model: torch.nn.Module, args: argparse.Namespace, folder: Path
) -> dict[tuple[str, str], Callable[[], Callable]]:
    """{(precision, runtime): make a run(tensors)} for one model. The files are exported (and verified)
    here; onnxruntime sessions and .pt2 programs are loaded when a round needs them and dropped after,
    since a session keeps the memory of its largest call (a family's sessions at batch 80 exhaust 23 GB)."""
    config = model.config
    factories: dict[tuple[str, str], Callable[[], Callable]] = {}
    for precision in args.precisions:
        variant = model if precision == "fp32" else quantize_model(model)
        for runtime in args.runtimes:
            if runtime == "torch.ao" and precision == "fp32":
                continue  # int8 only
            if runtime in ("eager", "torch.ao"):
                module = _torch_ao_int8(model) if runtime == "torch.ao" else variant
                factories[precision, runtime] = lambda m=module: lambda t: m(*model_inputs(config, t))
            else:
                form = "onnx" if runtime == "onnxruntime" else "pt2"
                report = export_model(variant, folder / f"{name}-{precision}.{form}", form)
                factories[precision, runtime] = lambda r=report, f=form: load_runner(r.file, f, r.input_names)
    return factories


def inputs(config: Any, batch: int) -> list[torch.Tensor]:
    """Random full-length videos (seeded) of the model's input shapes."""
    generator = torch.Generator().manual_seed(batch)
    tensors = []
    for template in example_inputs(config, batch, FRAMES):
        if template is None:
            continue
        floating = template.is_floating_point()
        tensors.append(torch.randn(template.shape, generator=generator) if floating else template)
    return tensors


def fastest_ms(call: Callable, tensors: list[torch.Tensor], repeats: int, clock: Callable) -> float:
    """The fastest of ``repeats`` calls (after one warm-up), in ms: on a machine shared with other jobs,
    the least disturbed call is the best estimate of what the call costs."""
    with torch.no_grad():
        return measure_latency(lambda: call(tensors), warmup=1, repeats=repeats, clock=clock).min_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="presets to run (default: every family)")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(DEFAULT_RUNTIMES))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 80])
    parser.add_argument("--clock", choices=CLOCKS, default="cpu", help="what a call's time is (default: cpu)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over models and runtimes")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per round (the fastest is kept)")
    parser.add_argument(
        "--quick", action="store_true", help="video-only family, batch 1, eager and onnxruntime"
    )
    args = parser.parse_args()
    if args.quick:
        args.models = args.models or ["paper-video-dense", *FAMILIES["paper-video-dense"]]
        args.batches, args.runtimes, args.rounds = [1], ["eager", "onnxruntime"], 2
    families = selected_families(args.models)
    torch.set_num_threads(1)
    bandwidth, gemm_rate = machine_rates(CLOCKS[args.clock])
    print(f"# {describe_machine()}")
    print(f"# read bandwidth {bandwidth / 1e9:.1f} GB/s, fp32 GEMM {gemm_rate / 1e9:.1f} GFLOP/s (1 thread)")
    print(
        f"# {FRAMES}-frame videos; fastest of {args.rounds} interleaved rounds of {args.repeats} calls, "
        f"ms of {args.clock} time"
    )
    print(
        f"{'model':<26} {'prec':<5} {'runtime':<12} {'batch':>5} {'ms':>10} {'x dense':>8} {'x fp32':>7} "
        f"{'floor ms':>9} {'x floor':>8}"
    )
    started = time.perf_counter()
    clock = CLOCKS[args.clock]
    for dense, names in families.items():
        models = {name: build_model(name).eval() for name in names}
        times: dict[tuple, float] = {}
        with tempfile.TemporaryDirectory() as folder:
            factories = {
                (name, *key): factory
                for name, model in models.items()
                for key, factory in runner_factories(name, model, args, Path(folder)).items()
            }
            for _ in range(args.rounds):  # interleaved: every model and runtime in each round
                for (name, precision, runtime), factory in factories.items():
                    run = factory()
                    for batch in args.batches:
                        ms = fastest_ms(run, inputs(models[name].config, batch), args.repeats, clock)
                        key = (name, precision, runtime, batch)
                        times[key] = min(times.get(key, ms), ms)
                    del run
        for (name, precision, runtime, batch), ms in times.items():
            reference = "eager" if runtime == "torch.ao" else runtime  # torch.ao has no fp32 of its own
            baseline = times.get((dense, "fp32", reference, batch))
            fp32 = times.get((name, "fp32", reference, batch))
            floor = max(floor_ms(models[name], batch, bandwidth, gemm_rate)) if precision == "fp32" else None
            print(
                f"{name:<26} {precision:<5} {runtime:<12} {batch:>5} {ms:>10.2f} {_ratio(baseline, ms):>8} "
                f"{'' if precision == 'fp32' else _ratio(fp32, ms):>7} "
                f"{'' if floor is None else format(floor, '.2f'):>9} {_ratio(ms, floor) if floor else '':>8}",
                flush=True,
            )
    print(f"# {time.perf_counter() - started:.0f} s")


def _ratio(numerator: float | None, denominator: float) -> str:
    return "" if numerator is None else f"{numerator / denominator:.2f}"


if __name__ == "__main__":
    main()

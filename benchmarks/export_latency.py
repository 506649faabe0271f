"""Batch-1 latency of paper-dbof-dense vs paper-dbof-compact-fc in PyTorch eager and onnxruntime, 1 thread.

Both models are exported to ONNX (circulant FC kept as DFTs, verified against PyTorch), then timed on one
300-frame video, alternating models and runtimes over several rounds (median kept). Ratios are against
the dense model's PyTorch latency measured in the same run. Run: ``python benchmarks/export_latency.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from compactvideo.export import export_model, load_runner
from compactvideo.models import build_model, example_inputs, model_inputs
from compactvideo.profiling import describe_machine, measure_latency

MODELS = ("paper-dbof-dense", "paper-dbof-compact-fc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# {describe_machine()}; batch 1, 300 frames")
    calls, sizes = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name in MODELS:
            model = build_model(name).eval()
            tensors = [t for t in example_inputs(model.config, batch_size=1, frames=300) if t is not None]
            report = export_model(model, Path(folder) / f"{name}.onnx")
            sizes[name] = (report.parameter_bytes, report.bytes)
            run_onnx = load_runner(report.file, "onnx", report.input_names)
            arguments = model_inputs(model.config, tensors)
            calls[name, "pytorch"] = lambda m=model, a=arguments: m(*a)
            calls[name, "onnxruntime"] = lambda r=run_onnx, t=tensors: r(t)
        times = {key: [] for key in calls}
        with torch.no_grad():
            for _ in range(args.rounds):
                for key, call in calls.items():
                    times[key].append(measure_latency(call, warmup=1, repeats=args.repeats).median_ms)
    baseline = statistics.median(times[MODELS[0], "pytorch"])
    print(f"{'model':<24} {'runtime':<12} {'ms':>8} {'x dense torch':>14} {'weights MB':>11} {'onnx MB':>8}")
    for (name, runtime), values in times.items():
        ms = statistics.median(values)
        weights, onnx_bytes = sizes[name]
        print(
            f"{name:<24} {runtime:<12} {ms:>8.2f} {baseline / ms:>14.2f} "
            f"{weights / 2**20:>11.1f} {onnx_bytes / 2**20:>8.1f}"
        )


if __name__ == "__main__":
    main()

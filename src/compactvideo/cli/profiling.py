"""``compactvideo profile``: parameters, FLOPs, batch-1 latency of a model, and speed-ups over a baseline."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from compactvideo.errors import CompactVideoError


def _load(spec: str) -> tuple[Any, str]:
    """(eval-mode model, description) from a preset name or a checkpoint path."""
    from compactvideo.models import PRESETS, build_model, load_model

    if spec in PRESETS:
        return build_model(spec).eval(), f"preset {spec} (untrained weights)"
    if Path(spec).is_file():
        return load_model(spec), f"checkpoint {spec}"
    raise CompactVideoError(f"{spec!r} is neither a preset (see `compactvideo models`) nor a checkpoint file")


def _inputs(model: Any, input_shape: str | None) -> tuple[Any, ...]:
    """Batch-1 inputs as the model's data contract shapes them, or of ``input_shape`` (one-input models)."""
    import torch

    from compactvideo.models import example_inputs, input_specs

    if input_shape is None:
        return example_inputs(model.config, batch_size=1)
    specs = [spec for spec in input_specs(model.config) if spec is not None]
    if len(specs) != 1 or specs[0].frames:
        names = ", ".join(spec.name for spec in specs)
        raise CompactVideoError(
            f"--input-shape is for models with one input tensor (clips); this one takes {names}"
        )
    try:
        shape = tuple(int(size) for size in input_shape.split(","))
    except ValueError:
        shape = ()
    expected = specs[0].shape
    if len(shape) != len(expected) or min(shape) < 1:
        raise CompactVideoError(
            f"--input-shape must be {len(expected)} positive integers, the {specs[0].name} shape after the "
            f"batch axis (C,T,H,W for clip models; this model's: {','.join(map(str, expected))}), "
            f"got {input_shape!r}"
        )
    return (torch.zeros(1, *shape),)


def _measure(models: dict[str, Any], input_shape: str | None, rounds: int, repeats: int) -> dict[str, dict]:
    """Parameters, FLOPs and median latency (interleaved rounds) of each model, batch 1, with the input
    shapes used."""
    import torch

    from compactvideo.profiling import count_flops, count_parameters, measure_latency

    rows, calls = {}, {}
    for role, (model, description) in models.items():
        inputs = _inputs(model, input_shape)
        try:
            with torch.no_grad():
                flops = count_flops(model, *inputs)
        except RuntimeError as error:
            raise CompactVideoError(
                f"{description} cannot take inputs of shape "
                f"{[tuple(x.shape) for x in inputs if x is not None]}: {error}"
            ) from error
        rows[role] = {
            "model": description,
            "inputs": [list(x.shape) for x in inputs if x is not None],
            "parameters": count_parameters(model),
            "flops": flops,
            "times": [],
        }
        calls[role] = lambda model=model, inputs=inputs: model(*inputs)
    with torch.no_grad():
        for _ in range(rounds):
            for role, call in calls.items():
                rows[role]["times"].append(measure_latency(call, warmup=1, repeats=repeats).median_ms)
    for row in rows.values():
        row["latency_ms"] = statistics.median(row.pop("times"))
    return rows


def _run_profile(args: argparse.Namespace) -> int:
    import torch

    from compactvideo.nn.tucker import set_fast_path
    from compactvideo.profiling import describe_machine

    if args.threads is None:
        torch.set_num_threads(1)
    models = {"model": _load(args.model)}
    if args.baseline:
        models["baseline"] = _load(args.baseline)
    if args.plain:
        for model, _ in models.values():
            set_fast_path(model, False)
    rows = _measure(models, args.input_shape, args.rounds, args.repeats)
    result: dict[str, Any] = {"machine": describe_machine(), **rows}
    if args.baseline:
        base, new = rows["baseline"], rows["model"]
        result["speed_up"] = {
            "parameters": base["parameters"] / new["parameters"],
            "theoretical": base["flops"] / new["flops"],
            "measured": base["latency_ms"] / new["latency_ms"],
        }
    if args.runtimes:
        from compactvideo.export import runtime_latencies

        model, _ = models["model"]
        result["runtimes"] = runtime_latencies(model, _inputs(model, args.input_shape))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    shapes = " ".join("x".join(map(str, shape)) for shape in rows["model"]["inputs"])
    source = "--input-shape" if args.input_shape else "the model's data contract"
    print(f"# {result['machine']}; inputs {shapes} (batch 1, from {source})")
    print(f"{'':<9} {'parameters':>12} {'GFLOPs':>10} {'latency ms':>11}  model")
    for role, row in rows.items():
        print(
            f"{role:<9} {row['parameters']:>12,} {row['flops'] / 1e9:>10.3f} {row['latency_ms']:>11.2f}  "
            f"{row['model']}"
        )
    if args.baseline:
        speed = result["speed_up"]
        print(
            f"speed-up: parameters x{speed['parameters']:.2f}, "
            f"theoretical (FLOPs) x{speed['theoretical']:.2f}, measured x{speed['measured']:.2f}"
        )
    if args.runtimes:
        runtimes = result["runtimes"]
        print(
            f"runtimes (model, batch 1, 1 thread): eager {runtimes['eager_ms']:.2f} ms, "
            f"onnxruntime {runtimes['onnx_ms']:.2f} ms ({runtimes['onnx_bytes']:,} bytes), "
            f"pt2 {runtimes['pt2_ms']:.2f} ms ({runtimes['pt2_bytes']:,} bytes)"
        )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "profile", help="parameters, FLOPs, batch-1 latency (1 thread) and speed-ups over a baseline"
    )
    parser.add_argument("model", help="a checkpoint file or a preset name")
    parser.add_argument("--baseline", help="a checkpoint file or preset to compare against")
    parser.add_argument(
        "--input-shape",
        metavar="C,T,H,W",
        help="clip models: the clip shape (default: the model's data contract)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median kept)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per model and round")
    parser.add_argument("--plain", action="store_true", help="switch off the Tucker layers' fast CPU path")
    parser.add_argument(
        "--runtimes",
        action="store_true",
        help="also export the model (ONNX, .pt2; verified) and time onnxruntime and the .pt2 program",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=_run_profile)

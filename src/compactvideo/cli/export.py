"""``compactvideo export`` (ONNX or .pt2, verified) and ``compactvideo quantize`` (dynamic int8)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _run_export(args: argparse.Namespace) -> int:
    from compactvideo.pipelines import export_checkpoint

    report = export_checkpoint(
        args.checkpoint,
        args.out,
        format=args.format,
        opset=args.opset,
        circulant_as=args.circulant_as,
        verify_data=args.verify_data,
        tolerance=args.tolerance,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(
        f"wrote {report.file} ({report.bytes:,} bytes; float32 parameters {report.parameter_bytes:,} bytes)"
    )
    for check in report.checks:
        print(f"  verified on {check.input}: max abs error {check.max_abs_error:.2e}")
    return 0


def _run_quantize(args: argparse.Namespace) -> int:
    from compactvideo.pipelines import quantize_checkpoint

    report = quantize_checkpoint(args.checkpoint, args.out, args.valid, args.batch_size)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(
        f"wrote {report.out}: {len(report.quantized_layers)} dense Linear layers in int8, "
        f"{report.bytes_before:,} -> {report.bytes_after:,} bytes "
        f"(x{report.bytes_before / report.bytes_after:.2f} smaller)"
    )
    if report.metric is not None:
        print(f"{report.metric}: {report.before:.4f} -> {report.after:.4f} on {args.valid}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    from compactvideo.export import CIRCULANT_MODES, DEFAULT_OPSET, DEFAULT_TOLERANCE, FORMATS

    parser = commands.add_parser(
        "export", help="export a checkpoint to ONNX or torch.export .pt2, verified against PyTorch"
    )
    parser.add_argument("checkpoint", type=Path, help="a float checkpoint (written by train or compress)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", required=True, type=Path, help="the file to write (.onnx or .pt2)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (DFT needs >= 17)")
    parser.add_argument(
        "--circulant-as",
        choices=CIRCULANT_MODES,
        default="fft",
        help="fft: circulant layers as DFTs (compact file); dense: plain MatMuls for runtimes without DFT",
    )
    parser.add_argument(
        "--verify-data", metavar="GLOB", help="also verify on the first batches of these records or clips"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest max-abs difference from PyTorch's outputs accepted",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=_run_export)

    parser = commands.add_parser(
        "quantize", help="dynamic int8 quantization of a checkpoint's dense Linear layers"
    )
    parser.add_argument("checkpoint", type=Path, help="a float checkpoint")
    parser.add_argument("--out", required=True, type=Path, help="the quantized checkpoint to write")
    parser.add_argument(
        "--valid", metavar="GLOB", help="report GAP (or accuracy) before and after on this data"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=_run_quantize)

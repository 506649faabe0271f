"""Checkpoint in, checkpoint (or file) out: compress, quantize and export a trained model.

Each pipeline loads the model a checkpoint describes (:func:`compactvideo.models.load_model`), applies
one library function, and writes the result with its config, so the output rebuilds from the file
alone (``build_model(config)``) and can be fed to the next pipeline, ``train --init`` or ``eval``:

- :func:`compress_checkpoint`: Tucker-2 decomposition (:func:`compactvideo.compress.compress_model`);
  the config lists the factored layers;
- :func:`quantize_checkpoint`: dynamic int8 dense layers (:func:`compactvideo.nn.quantized.quantize_model`);
  the config says ``quantization="int8-dynamic"``; with validation data, the headline metric before and
  after;
- :func:`export_checkpoint`: ONNX or ``.pt2``, verified (:func:`compactvideo.export.export_model`),
  on real batches read with the model's data contract when asked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compactvideo.checkpoint import CheckpointError, save_checkpoint
from compactvideo.compress import CompressionReport, RankSpec, compress_model
from compactvideo.evaluate import evaluate
from compactvideo.export import DEFAULT_OPSET, DEFAULT_TOLERANCE, ExportReport, export_model
from compactvideo.models import load_model
from compactvideo.nn.quantized import quantizable_linears, quantize_model
from compactvideo.tasks import headline_metric

QUANTIZATION = "int8-dynamic"


def _float_model(path: str | os.PathLike, action: str) -> Any:
    model = load_model(path)
    if model.config.quantization is not None:
        raise CheckpointError(
            f"{path}: already quantized ({model.config.quantization}); {action} the float checkpoint"
        )
    return model


def compress_checkpoint(
    path: str | os.PathLike,
    out: str | os.PathLike,
    method: str = "tucker",
    ranks: RankSpec | Mapping[str, RankSpec] = "vbmf",
    skip: Collection[str] | None = None,
    weaken: float = 0.0,
    min_rank: int = 1,
) -> CompressionReport:
    """Compress the model of checkpoint ``path`` (:func:`~compactvideo.compress.compress_model`) into ``out``.

    The new checkpoint holds the compressed model's config (its ``tucker`` layers included), its
    ``state_dict``, the report (``compression``) and the source path; no optimizer state, so training
    from it (``--init``) fine-tunes.
    """
    model = _float_model(path, "compress")
    report = compress_model(model, method, ranks, skip, weaken, min_rank)
    save_checkpoint(
        out,
        config=model.config.to_dict(),
        state_dict=model.state_dict(),
        compression=report.to_dict(),
        source=str(path),
    )
    return report


@dataclass(frozen=True)
class QuantizeReport:
    """Sizes of the float and quantized checkpoints, and the headline metric of each when measured."""

    checkpoint: Path
    out: Path
    quantized_layers: list[str]
    bytes_before: int
    bytes_after: int
    metric: str | None = None
    before: float | None = None
    after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
            "out": str(self.out),
            "quantized_layers": self.quantized_layers,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "metric": self.metric,
            "before": self.before,
            "after": self.after,
        }


def quantize_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    valid_pattern: str | None = None,
    batch_size: int = 64,
) -> QuantizeReport:
    """Quantize a trained checkpoint's dense linear layers, write ``out`` and report sizes and metrics.

    With ``valid_pattern``, both checkpoints are evaluated on it (GAP@20 for YouTube-8M models,
    accuracy for clip models), the data read as the model's data contract prescribes.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    model = _float_model(checkpoint, "quantize")
    config = dataclasses.replace(model.config, quantization=QUANTIZATION)
    save_checkpoint(out, config=config.to_dict(), state_dict=quantize_model(model).state_dict())
    report = QuantizeReport(
        checkpoint=checkpoint,
        out=out,
        quantized_layers=quantizable_linears(model),
        bytes_before=checkpoint.stat().st_size,
        bytes_after=out.stat().st_size,
    )
    if valid_pattern is None:
        return report
    metric, before = headline_metric(evaluate(checkpoint, valid_pattern, batch_size))
    _, after = headline_metric(evaluate(out, valid_pattern, batch_size))
    return dataclasses.replace(report, metric=metric, before=before, after=after)


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    format: str = "onnx",
    opset: int = DEFAULT_OPSET,
    circulant_as: str = "fft",
    verify_data: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Export the model of ``checkpoint`` to ``out``, verified (:func:`~compactvideo.export.export_model`)."""
    return export_model(load_model(checkpoint), out, format, opset, circulant_as, verify_data, tolerance)

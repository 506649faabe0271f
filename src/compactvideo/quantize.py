"""Post-training dynamic int8 quantization of a model's dense linear layers.

:func:`quantize_model` replaces every plain :class:`torch.nn.Linear` by torch.ao's dynamically
quantized Linear: weights stored as int8 with one float scale per layer (W ~= s q, q in [-127, 127]),
activations quantized per batch at run time, products accumulated in int32. Circulant layers
(already O(n) weights, computed with FFTs) and the factors of Tucker layers stay float32.

A quantized checkpoint stores ``quantized: True`` beside its float config; :func:`restore_quantized`
(called by :func:`compactvideo.checkpoint.load_trained_model`) rebuilds the same structure before the
weights are loaded. :func:`quantize_checkpoint` writes one and reports sizes and, given validation data,
the GAP (or accuracy) before and after.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compactvideo.nn.tucker import TuckerConv, TuckerLinear

QUANTIZED_KEY = "quantized"
# Layers whose inner nn.Linear steps are part of a structured factorisation and stay float.
_KEPT_FLOAT = (TuckerLinear, TuckerConv)


def quantizable_linears(model: nn.Module) -> list[str]:
    """Names of the plain nn.Linear layers of ``model`` that are not inside a Tucker layer."""
    kept: set[str] = set()
    for name, module in model.named_modules():
        if isinstance(module, _KEPT_FLOAT):
            kept.update(f"{name}.{inner}" for inner, _ in module.named_modules() if inner)
    return [
        name
        for name, module in model.named_modules()
        if type(module) is nn.Linear and name not in kept  # subclasses (e.g. quantized ones) excluded
    ]


def quantize_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with its dense nn.Linear layers dynamically quantized to int8."""
    names = quantizable_linears(model)
    copied = copy.deepcopy(model).eval()
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    quantized = torch.ao.quantization.quantize_dynamic(copied, {name: qconfig for name in names})
    quantized.config = model.config
    return quantized


def restore_quantized(model: nn.Module, checkpoint: dict[str, Any]) -> nn.Module:
    """``model`` quantized as the checkpoint's was, when it says so (before its weights are loaded)."""
    return quantize_model(model) if checkpoint.get(QUANTIZED_KEY, False) else model


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
    accuracy for clip models).
    """
    from compactvideo.checkpoint import CheckpointError, load_checkpoint, load_trained_model, save_checkpoint

    checkpoint, out = Path(checkpoint), Path(out)
    stored = load_checkpoint(checkpoint)
    if stored.get(QUANTIZED_KEY, False):
        raise CheckpointError(f"{checkpoint}: already quantized")
    model = load_trained_model(checkpoint)
    quantized = quantize_model(model)
    save_checkpoint(out, config=stored["config"], state_dict=quantized.state_dict(), **{QUANTIZED_KEY: True})
    report = QuantizeReport(
        checkpoint=checkpoint,
        out=out,
        quantized_layers=quantizable_linears(model),
        bytes_before=checkpoint.stat().st_size,
        bytes_after=out.stat().st_size,
    )
    if valid_pattern is None:
        return report
    from compactvideo.evaluate import evaluate
    from compactvideo.tasks import headline_metric

    metric, before = headline_metric(evaluate(checkpoint, valid_pattern, batch_size))
    _, after = headline_metric(evaluate(out, valid_pattern, batch_size))
    return QuantizeReport(**{**report.__dict__, "metric": metric, "before": before, "after": after})

"""Post-training dynamic int8 quantization of a model's dense linear layers: torchao, or onnxruntime for ONNX.

:func:`quantize_model` quantizes every plain :class:`torch.nn.Linear` with torchao (``quantize_`` with
``Int8DynamicActivationInt8WeightConfig``): each output row o of W is stored as int8 with one float
scale, W[o] ~= s_o q[o] with s_o = max |W[o]| / 127.5; each input row x is quantized at run time with
its own scale the same way; the int32 products q_x . q[o] are rescaled by s_x s_o. Circulant layers
(already O(n) weights, computed with FFTs) and the factors of Tucker layers stay float32.

:func:`quantize_onnx` does the same to an exported ONNX file with onnxruntime's dynamic quantization:
every MatMul or Gemm with a constant weight gets int8 weights with a scale per output channel, and its
input is quantized per tensor (uint8 with a zero point) at run time. Circulant layers exported as DFTs
have no such product and stay float; so do Tucker layers' convolutions.

Speed (``benchmarks/deploy_latency.py``, 1 thread): onnxruntime's int8 kernels are the fast path;
torchao's int8 layers run in eager PyTorch at about the speed of float32 on CPUs without AMX, as its
int8 matrix product recomputes the weight's column sums on every call (pytorch/ao#4365). Both replace
``torch.ao.quantization.quantize_dynamic``, which PyTorch deprecates.

A quantized checkpoint stores ``quantized: True`` beside its float config, and each int8 weight as two
plain tensors (:func:`int8_state_dict`); :func:`restore_quantized` (called by
:func:`compactvideo.checkpoint.load_trained_model`) rebuilds the same structure and sets those weights.
:func:`quantize_checkpoint` writes one and reports sizes and, given validation data, the GAP (or
accuracy) before and after.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compactvideo.errors import CompactVideoError
from compactvideo.nn.tucker import TuckerConv, TuckerLinear

QUANTIZED_KEY = "quantized"
# Layers whose inner nn.Linear steps are part of a structured factorisation and stay float.
_KEPT_FLOAT = (TuckerLinear, TuckerConv)
# Loggers that torchao's import fills with lines about its CUDA-only extensions and a pytree notice.
_IMPORT_LOGGERS = ("torchao", "torch.utils._pytree")


class QuantizeError(CompactVideoError):
    """A file that cannot be quantized as asked."""


@contextlib.contextmanager
def _quiet_logs(*names: str) -> Iterator[None]:
    """Only errors from the loggers ``names`` ("" is the root logger) while the block runs; the user's
    logging set-up is restored afterwards. The root logger gets a do-nothing handler meanwhile, so that
    ``logging.warning`` calls do not install a default one for good."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    root, placeholder = logging.getLogger(), logging.NullHandler()
    root.addHandler(placeholder)
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        root.removeHandler(placeholder)


def quantizable_linears(model: nn.Module) -> list[str]:
    """Names of the plain nn.Linear layers of ``model`` that are not inside a Tucker layer."""
    kept: set[str] = set()
    for name, module in model.named_modules():
        if isinstance(module, _KEPT_FLOAT):
            kept.update(f"{name}.{inner}" for inner, _ in module.named_modules() if inner)
    return [name for name, module in model.named_modules() if type(module) is nn.Linear and name not in kept]


def _torchao() -> Any:
    """``torchao.quantization``, imported without its import-time log lines."""
    with _quiet_logs(*_IMPORT_LOGGERS):  # "Failed to load ..._C_mxfp8.so", a pytree notice
        import torchao.quantization

    return torchao.quantization


def quantize_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with its dense nn.Linear layers dynamically quantized to int8."""
    torchao = _torchao()
    names = set(quantizable_linears(model))
    quantized = copy.deepcopy(model).eval()
    config = torchao.Int8DynamicActivationInt8WeightConfig()
    torchao.quantize_(quantized, config, filter_fn=lambda _, name: name in names)
    return quantized


def int8_linears(model: nn.Module) -> list[str]:
    """Names of the linear layers of ``model`` whose weights are int8 (from :func:`quantize_model`)."""
    if "torchao" not in sys.modules:  # no torchao tensor exists before torchao is imported
        return []
    int8 = _torchao().Int8Tensor
    return [
        name for name, module in model.named_modules() if isinstance(getattr(module, "weight", None), int8)
    ]


def dequantize_model(model: nn.Module) -> nn.Module:
    """A float copy of a quantized model: each int8 weight q with scales s replaced by s q."""
    restored = copy.deepcopy(model)
    for name in int8_linears(restored):
        linear = restored.get_submodule(name)
        linear.weight = nn.Parameter(linear.weight.dequantize(), requires_grad=False)
    return restored


def int8_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` in plain tensors: each int8 weight as ``<layer>.weight.qdata`` (int8) and
    ``<layer>.weight.scale`` (float32, one per output row). A checkpoint of plain tensors loads with
    ``torch.load(weights_only=True)`` whether or not torchao is imported yet, and does not depend on
    how torchao's tensor classes pickle."""
    state = model.state_dict()
    for name in int8_linears(model):
        weight = state.pop(f"{name}.weight")
        state[f"{name}.weight.qdata"], state[f"{name}.weight.scale"] = weight.qdata, weight.scale
    return state


def restore_quantized(model: nn.Module, checkpoint: dict[str, Any]) -> nn.Module:
    """``model`` quantized as the checkpoint's was, when it says so (before its weights are loaded).

    The int8 weights are set from the checkpoint's ``<layer>.weight.qdata`` and ``.scale`` tensors,
    which its ``state_dict`` then holds as the layers' weights, ready for ``load_state_dict``."""
    if not checkpoint.get(QUANTIZED_KEY, False):
        return model
    quantized = quantize_model(model)
    state = checkpoint["state_dict"]
    for name in int8_linears(quantized):
        weight = quantized.get_submodule(name).weight
        for part in ("qdata", "scale"):
            stored = state.pop(f"{name}.weight.{part}", None)
            if stored is None or stored.shape != getattr(weight, part).shape:
                raise QuantizeError(f"the int8 checkpoint has no {name}.weight.{part} of the model's shape")
            getattr(weight, part).copy_(stored)
        state[f"{name}.weight"] = weight
    return quantized


def quantize_onnx(path: str | os.PathLike, out: str | os.PathLike) -> list[str]:
    """Quantize an ONNX file's MatMul and Gemm nodes with constant weights (int8 per output channel,
    inputs quantized at run time) with onnxruntime; write ``out``; return the int8 weights' names."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path, out = Path(path), Path(out)
    try:
        proto = onnx.load(path)
    except Exception as error:  # onnx raises DecodeError, OSError, ... for a file that is not a model
        raise QuantizeError(f"{path}: not a readable ONNX model: {error}") from error
    # The exporter's recorded intermediate shapes can disagree with the shape inference the quantizer
    # runs first; they are hints only, so they go.
    del proto.graph.value_info[:]
    with _quiet_logs(""):  # the quantizer logs a pre-processing tip on the root logger
        quantize_dynamic(
            proto, out, op_types_to_quantize=["MatMul", "Gemm"], per_channel=True, weight_type=QuantType.QInt8
        )
    weights = [  # the int8 matrices (their zero points are int8 vectors)
        tensor.name
        for tensor in onnx.load(out).graph.initializer
        if tensor.data_type == onnx.TensorProto.INT8 and len(tensor.dims) == 2
    ]
    if not weights:
        out.unlink()
        raise QuantizeError(f"{path}: no MatMul or Gemm with constant weights to quantize")
    return weights


@dataclass(frozen=True)
class QuantizeReport:
    """Sizes of the float and quantized files, and the headline metric of each when measured."""

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
    """Quantize a trained checkpoint's dense linear layers (or an ``.onnx`` file's), write ``out`` and
    report sizes and, for checkpoints, metrics.

    With ``valid_pattern``, both checkpoints are evaluated on it (GAP@20 for YouTube-8M models,
    accuracy for clip models); an ONNX file carries no data contract to read the data with.
    """
    from compactvideo.checkpoint import CheckpointError, load_checkpoint, load_trained_model, save_checkpoint

    checkpoint, out = Path(checkpoint), Path(out)
    if checkpoint.suffix == ".onnx":
        if valid_pattern is not None:
            raise QuantizeError(
                f"{checkpoint}: an ONNX file does not say how to read the data; to compare GAP before "
                "and after, quantize the checkpoint and export the int8 checkpoint"
            )
        layers = quantize_onnx(checkpoint, out)
        return QuantizeReport(checkpoint, out, layers, checkpoint.stat().st_size, out.stat().st_size)
    stored = load_checkpoint(checkpoint)
    if stored.get(QUANTIZED_KEY, False):
        raise CheckpointError(f"{checkpoint}: already quantized")
    model = load_trained_model(checkpoint)
    quantized = quantize_model(model)
    save_checkpoint(
        out, config=stored["config"], state_dict=int8_state_dict(quantized), **{QUANTIZED_KEY: True}
    )
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

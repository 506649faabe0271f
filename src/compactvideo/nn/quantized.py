"""Post-training dynamic int8 quantization of a model's dense linear layers, on torchao.

:func:`quantize_model` quantizes every plain :class:`torch.nn.Linear` with torchao (``quantize_`` with
``Int8DynamicActivationInt8WeightConfig``): each output row o of W is stored as int8 with one float
scale, W[o] ~= s_o q[o] with s_o = max |W[o]| / 127.5; each input row x is quantized at run time with
its own scale the same way; the int32 products q_x . q[o] are rescaled by s_x s_o. Circulant layers
(already O(n) weights, computed with FFTs) and the factors of Tucker layers stay float32. This replaces
``torch.ao.quantization.quantize_dynamic``, which PyTorch deprecates.

Speed (``benchmarks/deploy_latency.py``, 1 thread): torchao's int8 layers run in eager PyTorch at about
the speed of float32 on CPUs without AMX, as its int8 matrix product recomputes the weight's column sums
on every call (pytorch/ao#4365); onnxruntime's int8 kernels
(:func:`compactvideo.export.quantize_onnx`) are the fast path for deployment.

A quantized model's config says ``quantization="int8-dynamic"``, so
:func:`compactvideo.models.build_model` calls :func:`quantize_model` on the float model it builds.
Checkpoints store each int8 weight as two plain tensors (:func:`int8_state_dict`), so that they load
with ``torch.load(weights_only=True)`` before torchao is imported; :func:`load_int8_state_dict` puts them
back into a quantized model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from compactvideo.errors import CompactVideoError
from compactvideo.nn.tucker import TuckerConv, TuckerLinear

# Layers whose inner nn.Linear steps are part of a structured factorisation and stay float.
_KEPT_FLOAT = (TuckerLinear, TuckerConv)
# Loggers that torchao's import fills with lines about its CUDA-only extensions and a pytree notice.
_IMPORT_LOGGERS = ("torchao", "torch.utils._pytree")
_INT8_PARTS = ("qdata", "scale")


class QuantizeError(CompactVideoError):
    """A model, checkpoint or file that cannot be quantized (or restored from int8) as asked."""


@contextlib.contextmanager
def quiet_logs(*names: str) -> Iterator[None]:
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
    with quiet_logs(*_IMPORT_LOGGERS):  # "Failed to load ..._C_mxfp8.so", a pytree notice
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
        for part in _INT8_PARTS:
            state[f"{name}.weight.{part}"] = getattr(weight, part)
    return state


def load_int8_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load a state dict written by :func:`int8_state_dict` into the quantized ``model`` (of the same
    config): the int8 parts are copied into each int8 weight, everything else goes through
    ``load_state_dict`` (strict, so missing or extra keys still raise its ``RuntimeError``)."""
    rest = dict(state)
    for name in int8_linears(model):
        weight = model.get_submodule(name).weight
        for part in _INT8_PARTS:
            stored = rest.pop(f"{name}.weight.{part}", None)
            if stored is None or stored.shape != getattr(weight, part).shape:
                raise QuantizeError(f"the int8 weights have no {name}.weight.{part} of the model's shape")
            getattr(weight, part).copy_(stored)
        rest[f"{name}.weight"] = weight
    model.load_state_dict(rest)

"""Post-training dynamic int8 quantization of a model's dense linear layers.

:func:`quantize_model` replaces every plain :class:`torch.nn.Linear` by torch.ao's dynamically
quantized Linear: weights stored as int8 with one float scale per layer (W ~= s q, q in [-127, 127]),
activations quantized per batch at run time, products accumulated in int32. Circulant layers
(already O(n) weights, computed with FFTs) and the factors of Tucker layers stay float32.

A quantized model's config says ``quantization="int8-dynamic"``, so
:func:`compactvideo.models.build_model` calls :func:`quantize_model` on the float model it builds and a
quantized checkpoint's weights load into the result; :func:`compactvideo.pipelines.quantize_checkpoint`
writes such checkpoints.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from compactvideo.nn.tucker import TuckerConv, TuckerLinear

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
    return torch.ao.quantization.quantize_dynamic(copied, {name: qconfig for name in names})

"""From a preset name, config file, dict, config or checkpoint to a model.

:func:`build_model` builds any registered family's model from its config alone, with no special case
for compressed or quantized models: the family's builder makes the float architecture, the layers
listed in ``config.tucker`` are replaced by their Tucker factorisations, and ``config.quantization``
makes the dense linear layers int8 (:func:`compactvideo.nn.quantized.quantize_model`). A checkpoint's
weights therefore load into ``build_model(config_from_checkpoint(checkpoint))``; :func:`load_model` does
both.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from compactvideo.checkpoint import CheckpointError, load_checkpoint
from compactvideo.errors import ConfigError
from compactvideo.models.config import TuckerLayer, from_dict
from compactvideo.models.family import family_of
from compactvideo.models.presets import PRESETS
from compactvideo.nn.quantized import quantize_model
from compactvideo.nn.tucker import TuckerRankError, tucker_like


def config_from_dict(data: dict[str, Any]) -> Any:
    """The config dataclass a dict describes (its ``family`` key says which)."""
    family = family_of(data.get("family") if isinstance(data, dict) else None)
    return from_dict(family.config, data)


def resolve_model_spec(spec: Any, num_classes: int | None = None) -> Any:
    """A config from a preset name, a YAML / JSON file, a dict or a config; ``num_classes`` overrides."""
    if isinstance(spec, str | Path) and str(spec) in PRESETS:
        config = PRESETS[str(spec)]
    elif isinstance(spec, str | Path):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"{spec!r} is neither a preset ({', '.join(PRESETS)}) nor a config file")
        text = path.read_text()
        config = config_from_dict(json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))
    elif isinstance(spec, dict):
        config = config_from_dict(spec)
    else:
        config = spec
    if num_classes is not None:
        config = dataclasses.replace(config, num_classes=num_classes)
    return config


def apply_tucker_layers(model: nn.Module, layers: tuple[TuckerLayer, ...]) -> None:
    """Replace each listed layer of ``model`` by its factored counterpart (fresh weights, same shapes)."""
    for index, layer in enumerate(layers):
        where = f"config.tucker[{index}]"
        try:
            original = model.get_submodule(layer.name)
        except AttributeError as error:
            raise ConfigError(f"{layer.name!r}: no such layer in the model ({error})", where) from error
        try:
            model.set_submodule(layer.name, tucker_like(original, layer.rank_out, layer.rank_in))
        except TuckerRankError as error:
            raise ConfigError(f"{layer.name!r}: {error}", where) from error


def build_model(spec: Any, num_classes: int | None = None) -> nn.Module:
    """Build a model (with ``model.config`` set) from a preset name, a config file, a dict or a config."""
    config = resolve_model_spec(spec, num_classes)
    model = family_of(config).build(config)
    apply_tucker_layers(model, config.tucker)
    if config.quantization is not None:
        model = quantize_model(model)
    model.config = config
    return model


def _format_1_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A format-1 checkpoint's config in format 2: quantization and the data contract move into it.

    Format 1 kept ``quantized: True`` beside the config, the logistic head's projection in ``experts``,
    and the preprocessing only in the training run's ``options["data"]`` (``samples`` there was ignored:
    the model's own pooling groups were used, as an unset contract ``samples`` says). Checkpoints without
    training options (``best.pt``, compressed or quantized ones) get the contract's defaults, which were
    format 1's defaults too.
    """
    config = copy.deepcopy(checkpoint["config"])
    if checkpoint.get("quantized", False):
        config["quantization"] = "int8-dynamic"
    head = config.get("head")
    if isinstance(head, dict) and head.get("kind") == "logistic" and "experts" in head:
        head["logistic"] = head.pop("experts")
    contract = typing.get_type_hints(family_of(config.get("family")).config)["data"]
    names = {field.name for field in dataclasses.fields(contract)} - {"samples"}
    trained = checkpoint.get("options", {}).get("data", {})
    config["data"] = {name: value for name, value in trained.items() if name in names}
    return config


def config_from_checkpoint(checkpoint: dict[str, Any]) -> Any:
    """The config of a checkpoint read by :func:`compactvideo.checkpoint.load_checkpoint` (any format)."""
    if checkpoint.get("format_version") == 1:
        return config_from_dict(_format_1_config(checkpoint))
    return config_from_dict(checkpoint["config"])


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint describes, load its weights, and put it in eval mode on ``device``."""
    return model_from_checkpoint(load_checkpoint(path), device, path)


def model_from_checkpoint(
    checkpoint: dict[str, Any], device: str | torch.device = "cpu", path: str | os.PathLike = "checkpoint"
) -> nn.Module:
    """:func:`load_model` for a checkpoint already read (``path`` names it in errors)."""
    model = build_model(config_from_checkpoint(checkpoint))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: the weights do not fit the model its config describes: {error}"
        ) from error
    return model.to(device).eval()

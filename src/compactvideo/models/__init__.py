"""Models built from compactvideo.nn: frame-level, video-level and clip classifiers, and their presets.

``build_model(name_or_config)`` builds any model from a preset name, a config dataclass, or the plain
dict a checkpoint stores; the config's ``family`` picks the builder through a registry, so a new family
(e.g. the clip models) registers itself without touching the others.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from compactvideo.models.clip import ClipConfig, build_clip_model
from compactvideo.models.config import ConfigError, FrameLevelConfig, VideoLevelConfig, from_dict
from compactvideo.models.frame_level import FrameLevelClassifier
from compactvideo.models.presets import PAPER_PARAMETERS, PRESETS
from compactvideo.models.video_level import VideoLevelClassifier

_FAMILIES: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {}


def register_family(name: str, config_class: type, builder: Callable[[Any], nn.Module]) -> None:
    """Make ``build_model`` build configs whose ``family`` is ``name``."""
    _FAMILIES[name] = (config_class, builder)


register_family("frame", FrameLevelConfig, FrameLevelClassifier)
register_family("video", VideoLevelConfig, VideoLevelClassifier)
register_family("clip", ClipConfig, build_clip_model)


def config_from_dict(data: dict[str, Any]) -> Any:
    """The config dataclass a dict describes (its ``family`` key says which)."""
    family = data.get("family") if isinstance(data, dict) else None
    if family not in _FAMILIES:
        raise ConfigError(f"config: 'family' must be one of {sorted(_FAMILIES)}, got {family!r}")
    return from_dict(_FAMILIES[family][0], data)


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


def build_model(spec: Any, num_classes: int | None = None) -> nn.Module:
    """Build a model (with ``model.config`` set) from a preset name, a config file, a dict or a config."""
    config = resolve_model_spec(spec, num_classes)
    family = getattr(config, "family", None)
    if family not in _FAMILIES:
        raise ConfigError(f"cannot build {config!r}: unknown model family {family!r}")
    return _FAMILIES[family][1](config)


def example_inputs(config: Any, batch_size: int = 1, frames: int = 300) -> tuple[torch.Tensor | None, ...]:
    """Zero inputs of the shapes a model of ``config`` takes (for FLOP counts, latency and export).

    Frame level: (rgb [B, frames, 1024], audio [B, frames, 128] or None, num_frames [B]); video level:
    (mean_rgb [B, 1024], mean_audio [B, 128] or None); clips: ([B, C, T, H, W],) from the config.
    """
    if config.family == "clip":
        shape = (batch_size, config.in_channels, config.frames, config.height, config.width)
        return (torch.zeros(shape),)
    audio = "audio" in config.modalities
    if config.family == "video":
        return torch.zeros(batch_size, 1024), torch.zeros(batch_size, 128) if audio else None
    num_frames = torch.full((batch_size,), frames, dtype=torch.int64)
    audio_frames = torch.zeros(batch_size, frames, 128) if audio else None
    return torch.zeros(batch_size, frames, 1024), audio_frames, num_frames


__all__ = [
    "PAPER_PARAMETERS",
    "PRESETS",
    "ConfigError",
    "build_model",
    "config_from_dict",
    "example_inputs",
    "register_family",
    "resolve_model_spec",
]

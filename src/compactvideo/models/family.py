"""Model families: everything that differs between them, in one registered spec each.

A family (frame level, video level, clips, or one a user adds) is a :class:`Family`: its config class,
its builder, the model's inputs (names, shapes and which axes vary, what FLOP counts, latency
measurements and exporters need), its task (loss, metrics, and which batch entries become the inputs)
and the reader of its data. A config names its family in its ``family`` field; registering the spec
(:func:`register_family`) is all it takes for ``build_model``, training, evaluation, profiling, export
and the loaders to handle the family: they ask the spec through the functions below and never branch
on a family's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compactvideo.errors import ConfigError
from compactvideo.tasks import Task


@dataclass(frozen=True)
class Input:
    """One positional argument of a model's ``forward``.

    A float tensor [B, *shape]; with ``frames``, [B, T, *shape] where the frame count T varies from
    batch to batch; with ``frame_counts``, the int64 [B] number of real frames of each row (1..T, the
    rest is padding). ``unit_range``: values lie in [0, 1] (pixels). ``batch_key`` is the entry of a
    loader's batch that holds it (default ``name``).
    """

    name: str
    shape: tuple[int, ...] = ()
    frames: bool = False
    frame_counts: bool = False
    unit_range: bool = False
    batch_key: str | None = None

    @property
    def key(self) -> str:
        return self.batch_key or self.name

    def make(self, batch_size: int, frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Zeros (full frame counts) without ``generator``; with it, random values: standard normal (uniform
        in [0, 1) for ``unit_range``), frame counts uniform in 1..T with the first row full."""
        if self.frame_counts:
            if generator is None:
                return torch.full((batch_size,), frames, dtype=torch.int64)
            counts = torch.randint(1, frames + 1, (batch_size,), generator=generator)
            counts[0] = frames
            return counts
        shape = (batch_size, *((frames,) if self.frames else ()), *self.shape)
        if generator is None:
            return torch.zeros(shape)
        draw = torch.rand if self.unit_range else torch.randn
        return draw(shape, generator=generator)


Inputs = tuple[Input | None, ...]


@dataclass(frozen=True)
class Family:
    """Everything about a model family that the rest of compactvideo needs.

    - ``name``: the value of the configs' ``family`` field; ``config``: the config dataclass;
    - ``build(config)``: the ``nn.Module`` (without Tucker layers or quantization, which
      ``build_model`` applies from the config's own fields);
    - ``inputs(config)``: one :class:`Input` per positional argument of ``forward``, ``None`` where the
      model takes ``None`` (an absent modality);
    - ``task``: :class:`~compactvideo.tasks.MultiLabelTask` or
      :class:`~compactvideo.tasks.SingleLabelTask` (or any class taking ``(num_classes, input_keys)``);
    - ``reader``: how the data is read, one of ``compactvideo.loaders.READERS`` ("frame-records",
      "video-records", "clips"), following the config's data contract (``config.data``);
    - ``frames(config)``: frames per video the contract feeds the model, for inputs with a frame axis;
    - ``export_padding(config)``: zero frames the exported graph appends to frame inputs (frame-level
      robust pooling needs every group 2 frames long to trace; the models ignore padding).
    """

    name: str
    config: type
    build: Callable[[Any], nn.Module]
    inputs: Callable[[Any], Inputs]
    task: Callable[[int, tuple[str | None, ...]], Task]
    reader: str
    frames: Callable[[Any], int] | None = None
    export_padding: Callable[[Any], int] | None = None


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make every part of compactvideo handle configs whose ``family`` is ``family.name``."""
    if family.name in FAMILIES:
        raise ConfigError(f"a model family named {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def family_of(config_or_name: Any) -> Family:
    """The registered family of a config (or of a family name)."""
    name = config_or_name if isinstance(config_or_name, str) else getattr(config_or_name, "family", None)
    if name not in FAMILIES:
        raise ConfigError(f"must be one of {sorted(FAMILIES)}, got {name!r}", "family")
    return FAMILIES[name]


def input_specs(config: Any) -> Inputs:
    """The :class:`Input` of each positional argument of a ``config`` model's forward (``None``: absent)."""
    return family_of(config).inputs(config)


def input_names(config: Any) -> list[str]:
    """Names of the tensors a model of ``config`` takes, in forward order, absent ones left out."""
    return [spec.name for spec in input_specs(config) if spec is not None]


def has_frame_axis(config: Any) -> bool:
    """Whether some input of a ``config`` model has a frame axis of varying length."""
    return any(spec is not None and spec.frames for spec in input_specs(config))


def example_inputs(
    config: Any, batch_size: int = 1, frames: int | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor | None, ...]:
    """Inputs of the shapes a model of ``config`` takes (for FLOP counts, latency and export).

    Zeros, or random values from ``generator`` (see :meth:`Input.make`); ``None`` where the model takes
    ``None``. ``frames``: the frame count T of frame inputs (default: what the data contract feeds).
    """
    family = family_of(config)
    if frames is None and has_frame_axis(config):
        if family.frames is None:
            raise ConfigError(f"family {family.name!r} has inputs with a frame axis but no frames(config)")
        frames = family.frames(config)
    return tuple(
        None if spec is None else spec.make(batch_size, frames or 0, generator)
        for spec in family.inputs(config)
    )


def model_inputs(config: Any, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    """The model's positional arguments (``None`` where absent) from the flat list of its tensors."""
    present = iter(tensors)
    return tuple(None if spec is None else next(present) for spec in input_specs(config))


def export_padding(config: Any) -> int:
    """Zero frames an exported graph appends to the frame inputs of a ``config`` model."""
    padding = family_of(config).export_padding
    return 0 if padding is None else padding(config)


def task_for(config: Any) -> Task:
    """The task of a ``config`` model: its loss, metrics and which batch entries feed which input."""
    family = family_of(config)
    keys = tuple(None if spec is None else spec.key for spec in family.inputs(config))
    return family.task(config.num_classes, keys)

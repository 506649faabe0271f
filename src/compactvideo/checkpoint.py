"""Checkpoints: ``torch.save`` dicts written atomically, read back with a clear error when damaged.

A checkpoint holds ``config`` (the model config as a plain dict, so the model can be rebuilt from the
file alone), ``state_dict``, ``seed`` (the training seed, which also seeds evaluation's frame draws)
and, for training runs, ``optimizer``, ``step``, ``progress``, ``rng`` and ``loader`` (per rank);
``quantized: True`` marks int8 weights (see :mod:`compactvideo.quantize`).
Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over the target:
a crash leaves either the old or the new file, never half of one. :func:`save_checkpoint` with
``keep_previous=True`` also keeps the file it replaces as ``<name>.prev.pt``, and
:func:`load_latest_checkpoint` falls back to it when the newest file is damaged.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from compactvideo.errors import CompactVideoError

FORMAT_VERSION = 1


class CheckpointError(CompactVideoError):
    """A checkpoint file that is missing, truncated or not a compactvideo checkpoint."""


def previous_path(path: Path) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint it replaces."""
    return path.with_name(path.name.removesuffix(".pt") + ".prev.pt")


def save_checkpoint(path: str | os.PathLike, keep_previous: bool = False, **fields: Any) -> Path:
    """Write ``fields`` (``config`` and ``state_dict`` at least) to ``path`` atomically."""
    path = Path(path)
    missing = {"config", "state_dict"} - fields.keys()
    if missing:
        raise ValueError(f"a checkpoint needs the fields {sorted(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"format_version": FORMAT_VERSION, **fields}, file)
            file.flush()
            os.fsync(file.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise :class:`CheckpointError` if damaged."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError... for bad files
        size = path.stat().st_size
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({size:,} bytes; truncated or damaged?): {error}"
        ) from error
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path}: not a compactvideo checkpoint (expected a dict with config and state_dict)"
        )
    return checkpoint


def load_latest_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load ``path``, or the previous checkpoint kept beside it when ``path`` is damaged (with a warning)."""
    path = Path(path)
    try:
        return load_checkpoint(path, map_location)
    except CheckpointError as error:
        fallback = previous_path(path)
        if not fallback.is_file():
            raise
        checkpoint = load_checkpoint(fallback, map_location)
        warnings.warn(
            f"{error}; using the previous checkpoint {fallback} (step {checkpoint.get('step', '?')})",
            stacklevel=2,
        )
        return checkpoint


def load_trained_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model a checkpoint describes, load its weights, and put it in eval mode on ``device``."""
    return model_from_checkpoint(load_checkpoint(path), device, path)


def model_from_checkpoint(
    checkpoint: dict[str, Any], device: str | torch.device = "cpu", path: str | os.PathLike = "checkpoint"
) -> torch.nn.Module:
    """:func:`load_trained_model` for a checkpoint already read (``path`` names it in errors)."""
    from compactvideo.models import build_model, config_from_dict
    from compactvideo.quantize import restore_quantized

    model = restore_quantized(build_model(config_from_dict(checkpoint["config"])), checkpoint)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: the weights do not fit the model its config describes: {error}"
        ) from error
    return model.to(device).eval()

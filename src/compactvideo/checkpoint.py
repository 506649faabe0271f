"""Checkpoints as files: ``torch.save`` dicts written atomically, read back with a clear error when damaged.

This module is file I/O only and knows nothing of models (rebuilding one is
:func:`compactvideo.models.load_model`). A checkpoint holds ``format_version``, ``config`` (the model
config as a plain dict: architecture, compression, quantization and data contract, so the model can be
rebuilt from the file alone), ``state_dict`` and, for training runs, ``optimizer``, ``progress``,
``step``, ``rng``, ``loader`` (per rank), ``log_bytes`` and ``options``; every checkpoint of a
training run also holds ``seed`` (which seeds evaluation's frame draws too).

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over the target:
a crash leaves either the old or the new file, never half of one. :func:`save_checkpoint` with
``keep_previous=True`` also keeps the file it replaces as ``<name>.prev.pt``, and
:func:`load_latest_checkpoint` falls back to it when the newest file is damaged.

Formats: 2 (this version) records the data contract and quantization in ``config``; 1 kept them beside
it (a top-level ``quantized`` flag; the preprocessing only in the training ``options``) and is still
read, :func:`compactvideo.models.config_from_checkpoint` upgrading its config. Any other format is a
:class:`CheckpointFormatError` saying whether the file is older or newer than this version reads.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from compactvideo import __version__
from compactvideo.errors import CompactVideoError, CompactVideoWarning

FORMAT_VERSION = 2
OLDEST_FORMAT = 1


class CheckpointError(CompactVideoError):
    """A checkpoint file that is missing, truncated or not a compactvideo checkpoint."""


class CheckpointFormatError(CheckpointError):
    """A checkpoint written in a format this version of compactvideo does not read."""


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
    check_format(checkpoint.get("format_version"), path)
    return checkpoint


def check_format(version: Any, path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointFormatError` unless ``version`` is a format this version reads."""
    readable = f"formats {OLDEST_FORMAT} to {FORMAT_VERSION}"
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointFormatError(
            f"{path}: no valid format_version ({version!r}); compactvideo {__version__} reads {readable}"
        )
    if version > FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path}: checkpoint format {version} is newer than compactvideo {__version__} reads "
            f"({readable}); upgrade compactvideo"
        )
    if version < OLDEST_FORMAT:
        raise CheckpointFormatError(
            f"{path}: checkpoint format {version} is older than compactvideo {__version__} reads ({readable})"
        )


def load_latest_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load ``path``, or the previous checkpoint kept beside it when ``path`` is damaged (with a warning)."""
    path = Path(path)
    try:
        return load_checkpoint(path, map_location)
    except CheckpointFormatError:
        raise  # not damage: falling back would silently continue from an older file
    except CheckpointError as error:
        fallback = previous_path(path)
        if not fallback.is_file():
            raise
        checkpoint = load_checkpoint(fallback, map_location)
        warnings.warn(
            f"{error}; using the previous checkpoint {fallback} (step {checkpoint.get('step', '?')})",
            CompactVideoWarning,
            stacklevel=2,
        )
        return checkpoint

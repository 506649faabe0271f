"""From a model config and a file pattern to batches: the glue between compactvideo.data and training.

The model decides what data it needs: YouTube-8M frame-level or video-level records for the "frame"
and "video" families, a folder of clips for the "clip" family. :class:`LoaderOptions` holds the user's
choices (frame sampling, augmentation, workers); ``frame_sampling="auto"`` takes the layout the model's
pooling expects (n samples of k frames for the paper's robust pooling, else all frames).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from compactvideo.data.batching import LoaderPosition, batch_loader
from compactvideo.data.datasets import FrameSampling, RecordDataset
from compactvideo.distributed import DistributedContext
from compactvideo.errors import CompactVideoError, check_at_least


@dataclass
class LoaderOptions:
    """How records (or clips) become batches: see compactvideo.data.datasets and compactvideo.data.clips."""

    frame_sampling: str = "auto"
    frames: int = 30
    samples: int = 10
    frames_per_sample: int = 15
    max_frames: int = 300
    split_half: bool = False
    l2_normalize: bool = True
    shuffle_buffer: int = 1024
    num_workers: int = 0
    skip_corrupt: bool = False
    clip_sampling: str = "center"
    clip_cache: str | None = None

    def __post_init__(self) -> None:
        for name in ("frames", "samples", "frames_per_sample", "max_frames", "shuffle_buffer"):
            check_at_least(name, getattr(self, name), 1)
        check_at_least("num_workers", self.num_workers, 0)


def resolve_files(pattern: str) -> list[Path]:
    """The shard files of a glob (``'data/train*.tfrecord'``), a directory, or a comma-separated list."""
    files: list[Path] = []
    for part in (p.strip() for p in pattern.split(",")):
        path = Path(part)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix == ".tfrecord")
        else:
            files += sorted(Path(p) for p in glob.glob(part))
    if not files:
        raise CompactVideoError(f"no record files match {pattern!r}")
    return files


def frame_sampling_for(config: Any, options: LoaderOptions) -> FrameSampling:
    """The frame layout the user asked for, or (``auto``) the one the model's pooling expects."""
    mode = options.frame_sampling
    samples = getattr(config, "samples", 1)
    if mode == "auto":
        mode = "robust" if samples > 1 else "all"
    return FrameSampling(
        mode, frames=options.frames, samples=samples, frames_per_sample=options.frames_per_sample
    )


def make_loader(
    config: Any,
    pattern: str,
    options: LoaderOptions,
    batch_size: int,
    training: bool,
    context: DistributedContext,
    seed: int = 0,
    epoch: int = 0,
    position: LoaderPosition | None = None,
    limit: int | None = None,
) -> DataLoader:
    """Batches of this rank's share of the data a model of ``config`` reads (see the module docstring).

    ``seed`` seeds the frame draws (with ``epoch`` in training); ``position`` resumes a training epoch
    where a checkpoint left it; ``limit`` keeps the first ``limit`` videos (evaluation).
    """
    if config.family == "clip":
        from compactvideo.data.clips import make_clip_loader

        return make_clip_loader(
            config, pattern, options, batch_size, training, context, seed, epoch, position, limit
        )
    dataset = RecordDataset(
        resolve_files(pattern),
        level=config.family,
        num_classes=config.num_classes,
        batch_size=batch_size,
        sampling=frame_sampling_for(config, options),
        training=training,
        rank=context.rank,
        world_size=context.world_size,
        seed=seed,
        epoch=epoch,
        shuffle_buffer=options.shuffle_buffer,
        max_frames=options.max_frames,
        split_half=options.split_half and training,
        l2_normalize=options.l2_normalize,
        skip_corrupt=options.skip_corrupt,
        limit=limit,
        position=position,
    )
    return batch_loader(dataset, options.num_workers)

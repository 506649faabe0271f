"""YouTube-8M records as torch datasets: sharding, shuffling, frame sampling and collation.

:class:`RecordDataset` is an ``IterableDataset`` over many shard files. Its readers are the slots
(rank r of R DDP ranks, DataLoader worker w of W), slot s = r * W + w of S = R * W. When there are at
least S files, slot s reads the files i with i mod S = s; with fewer files, every slot walks every file
and keeps the records j with j mod S = s. Either way each record is read by exactly one slot per epoch.

Training order depends only on (seed, epoch): the file list is permuted with that seed, then records
pass through a shuffle buffer of ``shuffle_buffer`` entries drawn with a generator seeded by
(seed, epoch, slot). Evaluation reads in file order, unshuffled.

Frame sampling (what ``rgb`` / ``audio`` hold for a video of N real frames):

- ``all``: the N frames, padded with zeros to the longest video of the batch (the models are invariant
  to padding, so this equals padding to ``max_frames`` and costs less);
- ``random``: F frame indices drawn uniformly with replacement, t_i = floor(N u_i), kept in time order
  (the starter code's SampleRandomFrames);
- ``robust``: n samples of k such frames laid out one after the other (n k frames), the input of
  Araujo et al.'s robust pooling (sec. 3.2), whose model cuts them back into the n groups.

In evaluation the random draws use a generator seeded by the video's position, so metrics are
reproducible. ``split_half`` (training) turns each video into two examples, frames [0, ceil(N/2)) and
[ceil(N/2), N), with the same labels (Araujo et al. 2018, sec. 4). ``l2_normalize`` divides each
1152-d frame [rgb ; audio] by its Euclidean norm before the two parts are split again.

Collation gives ``rgb`` [B, T, 1024], ``audio`` [B, T, 128] (float32), ``num_frames`` [B] (int64),
``labels`` [B, C] multi-hot float32 and ``ids`` (list of str); video-level batches hold ``mean_rgb``
[B, 1024] and ``mean_audio`` [B, 128] instead of frames.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from compactvideo.data.damage import ReadStats
from compactvideo.data.yt8m import FrameRecord, VideoRecord, read_records
from compactvideo.errors import CompactVideoError

FRAME_SAMPLINGS = ("all", "random", "robust")


class LabelRangeError(CompactVideoError, ValueError):
    """A record whose labels do not fit the model's number of classes."""


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video become the model's input (see the module docstring)."""

    mode: str = "all"
    frames: int = 30
    samples: int = 1
    frames_per_sample: int = 1

    def __post_init__(self) -> None:
        if self.mode not in FRAME_SAMPLINGS:
            raise CompactVideoError(f"frame sampling must be one of {FRAME_SAMPLINGS}, got {self.mode!r}")
        for name in ("frames", "samples", "frames_per_sample"):
            if getattr(self, name) < 1:
                raise CompactVideoError(
                    f"frame sampling: {name} must be at least 1, got {getattr(self, name)}"
                )

    def indices(self, num_frames: int, rng: np.random.Generator) -> np.ndarray | None:
        """Frame indices to keep (None: all of them, in order)."""
        if self.mode == "all":
            return None
        if self.mode == "random":
            return np.sort(rng.integers(0, num_frames, self.frames))
        draws = rng.integers(0, num_frames, (self.samples, self.frames_per_sample))
        return np.sort(draws, axis=1).ravel()


def shard_assignment(files: Sequence[Path], slot: int, slots: int) -> tuple[list[Path], int, int]:
    """(files this slot reads, record stride, record offset) so every record has exactly one slot."""
    if len(files) >= slots:
        return list(files[slot::slots]), 1, 0
    return list(files), slots, slot


class RecordDataset(IterableDataset):
    """Examples (dicts of numpy arrays) from YouTube-8M shard files, sharded over ranks and workers."""

    def __init__(
        self,
        files: Sequence[str | Path],
        level: str,
        num_classes: int,
        sampling: FrameSampling = FrameSampling(),
        training: bool = False,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = 1024,
        max_frames: int = 300,
        split_half: bool = False,
        l2_normalize: bool = False,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__()
        if not files:
            raise CompactVideoError("no record files to read")
        self.files = [Path(f) for f in files]
        self.level, self.num_classes, self.sampling = level, num_classes, sampling
        self.training, self.rank, self.world_size = training, rank, world_size
        self.seed, self.epoch, self.shuffle_buffer = seed, epoch, shuffle_buffer
        self.max_frames, self.split_half, self.l2_normalize = max_frames, split_half, l2_normalize
        self.skip_corrupt = skip_corrupt
        self.stats = ReadStats()

    def _slot(self) -> tuple[int, int]:
        worker = get_worker_info()
        workers, index = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        return self.rank * workers + index, self.world_size * workers

    def _records(self, slot: int, slots: int) -> Iterator[FrameRecord | VideoRecord]:
        files = list(self.files)
        if self.training:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(files)
        mine, stride, offset = shard_assignment(files, slot, slots)
        records = read_records(
            mine, self.max_frames, skip_corrupt=self.skip_corrupt, level=self.level, stats=self.stats
        )
        for index, record in enumerate(records):
            if index % stride == offset:
                yield record

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots = self._slot()
        rng = np.random.default_rng([self.seed, self.epoch, slot, int(self.training)])
        records = self._records(slot, slots)
        if self.training and self.shuffle_buffer > 1:
            records = _shuffled(records, self.shuffle_buffer, rng)
        for position, record in enumerate(records):
            if not self.training:  # reproducible frame draws in evaluation
                rng = np.random.default_rng([self.seed, slot, position])
            yield from self._examples(record, rng)

    def _examples(self, record: FrameRecord | VideoRecord, rng: np.random.Generator) -> Iterator[dict]:
        labels = record.labels
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise LabelRangeError(
                f"video {record.id}: labels {labels.tolist()} outside the model's {self.num_classes} "
                "classes (0 .. num_classes - 1); pass --num-classes to match the data"
            )
        if isinstance(record, VideoRecord):
            yield {
                "id": record.id,
                "labels": labels,
                "mean_rgb": record.mean_rgb,
                "mean_audio": record.mean_audio,
            }
            return
        rgb, audio = record.rgb, record.audio
        if self.l2_normalize:
            norms = np.sqrt((rgb * rgb).sum(1, keepdims=True) + (audio * audio).sum(1, keepdims=True))
            norms = np.maximum(norms, 1e-12)
            rgb, audio = rgb / norms, audio / norms
        parts = [(record.id, rgb, audio)]
        if self.training and self.split_half and len(rgb) > 1:
            middle = math.ceil(len(rgb) / 2)
            parts = [(record.id, rgb[:middle], audio[:middle]), (record.id, rgb[middle:], audio[middle:])]
        for video_id, part_rgb, part_audio in parts:
            keep = self.sampling.indices(len(part_rgb), rng)
            if keep is not None:
                part_rgb, part_audio = part_rgb[keep], part_audio[keep]
            yield {"id": video_id, "labels": labels, "rgb": part_rgb, "audio": part_audio}


def _shuffled(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """A shuffle buffer: keep ``size`` items, emit a random one as each new item arrives, then drain."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        index = int(rng.integers(len(buffer)))
        buffer[index], item = item, buffer[index]
        yield item
    rng.shuffle(buffer)
    yield from buffer


def collate(examples: Sequence[dict[str, Any]], num_classes: int) -> dict[str, Any]:
    """Stack examples into a batch; frames are zero-padded to the longest video of the batch."""
    labels = torch.zeros(len(examples), num_classes)
    for row, example in enumerate(examples):
        labels[row, torch.from_numpy(example["labels"])] = 1.0
    batch: dict[str, Any] = {"ids": [e["id"] for e in examples], "labels": labels}
    if "mean_rgb" in examples[0]:
        batch["mean_rgb"] = torch.from_numpy(np.stack([e["mean_rgb"] for e in examples]))
        batch["mean_audio"] = torch.from_numpy(np.stack([e["mean_audio"] for e in examples]))
        return batch
    lengths = [len(e["rgb"]) for e in examples]
    longest = max(lengths)
    for name in ("rgb", "audio"):
        width = examples[0][name].shape[1]
        frames = np.zeros((len(examples), longest, width), dtype=np.float32)
        for row, example in enumerate(examples):
            frames[row, : lengths[row]] = example[name]
        batch[name] = torch.from_numpy(frames)
    batch["num_frames"] = torch.tensor(lengths, dtype=torch.int64)
    return batch

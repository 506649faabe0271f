"""From a model config and a file pattern to batches: the glue between compactvideo.data and training.

The model says what data it reads: its family's ``reader`` (:mod:`compactvideo.models.family`) is
YouTube-8M frame-level or video-level records, or a folder of clips, read as the config's data contract
(``config.data``: frame sampling, clip sampling; see :mod:`compactvideo.models.config`) prescribes; the
rest of a frame-level contract (dequantisation, L2 normalisation) is the model's own first step.
:class:`LoaderOptions` holds only what does not change the model's input: training augmentation and
shuffling, workers, damaged records, the clip cache, and how batches travel to the model's device
(uint8 or float32 frames, pinned memory, prefetching). :func:`make_loader` gives
:class:`~compactvideo.data.batching.CountedBatches`: the batches, and what was read to make them
(records, damaged records skipped) in ``read_stats``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from compactvideo.data.batching import CountedBatches, LoaderPosition, batch_loader, batches
from compactvideo.data.clips import ClipBatches, ClipDataset, ClipFolderError, rank_indices
from compactvideo.data.damage import ReadStats
from compactvideo.data.datasets import FRAME_DTYPES, RecordDataset
from compactvideo.data.files import check_readable_by_workers, resolve_files
from compactvideo.distributed import DistributedContext
from compactvideo.errors import CompactVideoError, OptionError, check_at_least
from compactvideo.models import family_of

FRAME_DTYPE_CHOICES = ("auto", *FRAME_DTYPES)


@dataclass
class LoaderOptions:
    """How records (or clips) become batches, apart from the model's data contract.

    ``split_half`` (training only: each video becomes its two halves) and ``shuffle_buffer`` (records)
    see :mod:`compactvideo.data.datasets`; ``num_workers``: DataLoader worker processes;
    ``skip_corrupt``: skip damaged records (counted and reported) instead of failing at the first;
    ``max_skipped``: with ``skip_corrupt``, how many may be skipped before the run stops (None:
    unlimited; training counts each epoch, evaluation its pass); ``clip_cache``: ``None``,
    ``"memory"`` or a folder for decoded clips (:mod:`compactvideo.data.clips`).

    How batches reach the device (none of it changes a number the model sees):

    - ``frame_dtype`` (frame-level records): ``"uint8"`` batches carry the sampled frames as stored, a
      quarter of the bytes, and the model's input transform dequantises them on its device;
      ``"float32"`` batches are dequantised by the loader; ``"auto"``: uint8 for a GPU, float32 on a CPU;
    - ``pin_memory``: batches in page-locked memory, so that the copies to a GPU run asynchronously
      (``None``: on for a GPU);
    - ``prefetch_factor``: batches each worker prepares ahead (``None``: torch's default, 2);
    - ``persistent_workers``: keep the workers of a loader that is read several times (training's
      validation data) alive between passes. Training builds a new loader for each epoch, whose epoch
      and resume position are part of the dataset every worker holds, so this saves the start of the
      validation workers only.
    """

    split_half: bool = False
    shuffle_buffer: int = 1024
    num_workers: int = 0
    skip_corrupt: bool = False
    max_skipped: int | None = None
    clip_cache: str | None = None
    frame_dtype: str = "auto"
    pin_memory: bool | None = None
    prefetch_factor: int | None = None
    persistent_workers: bool = False

    def __post_init__(self) -> None:
        check_at_least("shuffle_buffer", self.shuffle_buffer, 1)
        check_at_least("num_workers", self.num_workers, 0)
        check_at_least("max_skipped", self.max_skipped, 0)
        if self.max_skipped is not None and not self.skip_corrupt:
            raise OptionError(
                "max_skipped",
                "given with skip_corrupt (--skip-corrupt); without it the first damaged record stops the run",
                self.max_skipped,
            )
        check_at_least("prefetch_factor", self.prefetch_factor, 1)
        if self.frame_dtype not in FRAME_DTYPE_CHOICES:
            raise OptionError("frame_dtype", f"one of {', '.join(FRAME_DTYPE_CHOICES)}", self.frame_dtype)
        if self.num_workers == 0:
            if self.prefetch_factor is not None:
                expected = "left unset with --num-workers 0 (no worker process prefetches)"
                raise OptionError("prefetch_factor", expected, self.prefetch_factor)
            if self.persistent_workers:
                expected = "off with --num-workers 0 (there is no worker process to keep)"
                raise OptionError("persistent_workers", expected, self.persistent_workers)

    def frame_dtype_for(self, device: torch.device) -> str:
        """The dtype of the frames of batches for a model on ``device`` (``"auto"`` resolved)."""
        if self.frame_dtype != "auto":
            return self.frame_dtype
        return "uint8" if device.type == "cuda" else "float32"

    def pin_memory_for(self, device: torch.device) -> bool:
        """Whether batches for ``device`` go to page-locked memory (only a GPU gains from it)."""
        if self.pin_memory and device.type != "cuda":
            expected = f"off for a model on {device} (it speeds up copies to a GPU)"
            raise OptionError("pin_memory", expected, True)
        return device.type == "cuda" if self.pin_memory is None else self.pin_memory


@dataclass(frozen=True)
class ReadRequest:
    """What a reader needs besides the model's config: the data, the options, the batch size, and this
    process's share (its rank, training or not, the epoch's seed, where a resumed epoch starts, and
    ``limit``: the first ``limit`` videos of the data in evaluation)."""

    pattern: str
    options: LoaderOptions
    batch_size: int
    training: bool
    context: DistributedContext
    seed: int
    epoch: int
    position: LoaderPosition | None = None
    limit: int | None = None


def _record_dataset(config: Any, request: ReadRequest, **contract: Any) -> Dataset:
    options = request.options
    files = resolve_files(request.pattern)
    check_readable_by_workers(files, options.num_workers)
    return RecordDataset(
        files,
        num_classes=config.num_classes,
        batch_size=request.batch_size,
        training=request.training,
        rank=request.context.rank,
        world_size=request.context.world_size,
        seed=request.seed,
        epoch=request.epoch,
        shuffle_buffer=options.shuffle_buffer,
        split_half=options.split_half and request.training,
        skip_corrupt=options.skip_corrupt,
        limit=request.limit,
        position=request.position,
        **contract,
    )


def _frame_records(config: Any, request: ReadRequest) -> Dataset:
    """Frame-level records as a :class:`~compactvideo.models.config.FrameData` contract prescribes."""
    data = config.data
    return _record_dataset(
        config,
        request,
        level="frame",
        sampling=config.frame_sampling(),
        max_frames=data.max_frames,
        frame_dtype=request.options.frame_dtype_for(request.context.device),
    )


def _video_records(config: Any, request: ReadRequest) -> Dataset:
    """Video-level records: the mean features as stored."""
    return _record_dataset(config, request, level="video")


def _clips(config: Any, request: ReadRequest) -> Dataset:
    """Batches of this rank's share of the clips in the folder ``request.pattern`` (a permutation
    seeded by (seed, epoch) in training, folder order otherwise, the first ``limit`` clips in
    evaluation), shaped ``in_channels`` x ``frames`` x ``height`` x ``width`` and sampled as
    ``config.data.clip_sampling`` says. A last batch of one joins the one before; the DataLoader
    returns batches in order whatever its workers, so a rank's position is the number of batches it
    used, and a resumed epoch starts after them."""
    root = request.pattern
    dataset = ClipDataset(
        root,
        frames=config.frames,
        height=config.height,
        width=config.width,
        in_channels=config.in_channels,
        sampling=config.data.clip_sampling,
        cache=request.options.clip_cache,
    )
    if len(dataset.classes) != config.num_classes:
        raise ClipFolderError(
            f"{root}: the model has {config.num_classes} classes, the folder has {len(dataset.classes)} "
            f"({', '.join(dataset.classes)})"
        )
    context = request.context
    count = len(dataset) if request.limit is None else min(request.limit, len(dataset))
    indices = rank_indices(
        count, request.training, context.rank, context.world_size, request.seed, request.epoch
    )
    position = request.position
    start = position.states[0]["batches"] if position is not None and position.states else 0
    return ClipBatches(dataset, list(batches(indices, request.batch_size)), start)


# A family's ``reader`` names one of these: (config, request) -> a dataset of whole batches.
READERS: dict[str, Callable[[Any, ReadRequest], Dataset]] = {
    "frame-records": _frame_records,
    "video-records": _video_records,
    "clips": _clips,
}


def check_loader_options(config: Any, options: LoaderOptions, device: torch.device) -> None:
    """Raise :class:`OptionError` for loader options that cannot apply to a ``config`` model on ``device``
    (pinned memory without a GPU, uint8 batches of data without quantised frames), before any work."""
    options.pin_memory_for(device)
    reader = family_of(config).reader
    if options.frame_dtype == "uint8" and reader != "frame-records":
        expected = f"auto or float32 for a model that reads {reader} (only frame-records hold uint8 frames)"
        raise OptionError("frame_dtype", expected, "uint8")


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
    read_stats: ReadStats | None = None,
) -> CountedBatches:
    """Batches of this rank's share of the data a model of ``config`` reads (see the module docstring).

    ``seed`` seeds the frame draws (with ``epoch`` in training); ``position`` resumes a training epoch
    where a checkpoint left it (and is moved on by batches that only carry read statistics); ``limit``
    keeps the first ``limit`` videos (evaluation). What the readers read is added to ``read_stats``
    (a new :class:`~compactvideo.data.damage.ReadStats` by default), as the batches are used.
    """
    reader = family_of(config).reader
    if reader not in READERS:
        raise CompactVideoError(
            f"model family {config.family!r} reads {reader!r}; known readers: {list(READERS)}"
        )
    check_loader_options(config, options, context.device)
    request = ReadRequest(pattern, options, batch_size, training, context, seed, epoch, position, limit)
    loader = batch_loader(
        READERS[reader](config, request),
        options.num_workers,
        pin_memory=options.pin_memory_for(context.device),
        prefetch_factor=options.prefetch_factor,
        persistent_workers=options.persistent_workers,
    )
    return CountedBatches(loader, read_stats, position)

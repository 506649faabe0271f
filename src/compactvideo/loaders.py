"""From a model config and a file pattern to batches: the glue between compactvideo.data and training.

The model says what data it reads: its family's ``reader`` (:mod:`compactvideo.models.family`) is
YouTube-8M frame-level or video-level records, or a folder of clips, read as the config's data contract
(``config.data``: frame sampling, L2 normalisation, clip sampling; see
:mod:`compactvideo.models.config`) prescribes. :class:`LoaderOptions` holds only what does not change
the model's input: training augmentation and shuffling, workers, damaged records, the clip cache.
:func:`make_loader` gives :class:`~compactvideo.data.batching.CountedBatches`: the batches, and what
was read to make them (records, damaged records skipped) in ``read_stats``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from compactvideo.data.batching import CountedBatches, LoaderPosition, batch_loader, batches
from compactvideo.data.clips import ClipBatches, ClipDataset, ClipFolderError, rank_indices
from compactvideo.data.damage import ReadStats
from compactvideo.data.datasets import RecordDataset
from compactvideo.data.files import resolve_files
from compactvideo.distributed import DistributedContext
from compactvideo.errors import CompactVideoError, OptionError, check_at_least
from compactvideo.models import family_of


@dataclass
class LoaderOptions:
    """How records (or clips) become batches, apart from the model's data contract.

    ``split_half`` (training only: each video becomes its two halves) and ``shuffle_buffer`` (records)
    see :mod:`compactvideo.data.datasets`; ``num_workers``: DataLoader worker processes;
    ``skip_corrupt``: skip damaged records (counted and reported) instead of failing at the first;
    ``max_skipped``: with ``skip_corrupt``, how many may be skipped before the run stops (None:
    unlimited; training counts each epoch, evaluation its pass); ``clip_cache``: ``None``,
    ``"memory"`` or a folder for decoded clips (:mod:`compactvideo.data.clips`).
    """

    split_half: bool = False
    shuffle_buffer: int = 1024
    num_workers: int = 0
    skip_corrupt: bool = False
    max_skipped: int | None = None
    clip_cache: str | None = None

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
    return RecordDataset(
        resolve_files(request.pattern),
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
        l2_normalize=data.l2_normalize,
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
    request = ReadRequest(pattern, options, batch_size, training, context, seed, epoch, position, limit)
    loader = batch_loader(READERS[reader](config, request), options.num_workers)
    return CountedBatches(loader, read_stats, position)

"""Batches that never leave batch norm a single example, and where a training loader stands.

:func:`batches` groups a stream into batches of ``size``; when the stream would end with a batch of one,
that example joins the batch before it (``size + 1``). Nothing is dropped (``drop_last`` would lose up
to ``size - 1`` examples of every reader in every epoch), and batch norm, which cannot normalise a
single example in training, always sees at least two.

Every training batch carries ``batch["position"] = (stream, state)``: ``stream`` names the source that
produced it (a DataLoader worker's role) and ``state`` is what that source needs to restart right after
the batch. :class:`LoaderPosition` collects them, so a checkpoint taken in the middle of an epoch
resumes in the middle of the epoch.

Batches of records also carry ``batch["read_stats"]``, what their reader read and skipped since its
previous batch (see :mod:`compactvideo.data.datasets`). :class:`CountedBatches` takes these out and adds
them up, so the process that uses the batches knows what was read, whether or not the epoch ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from compactvideo.data.damage import ReadStats
from compactvideo.data.workers import worker_options

T = TypeVar("T")


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items; a last list of one item is merged into the one before."""
    iterator = iter(items)
    batch = list(islice(iterator, size))
    while batch:
        following = list(islice(iterator, size))
        if len(following) == 1 and size > 1:
            batch, following = batch + following, []
        yield batch
        batch = following


@dataclass
class LoaderPosition:
    """Where one rank stands in an epoch: the state of each stream after its last consumed batch, which
    stream produced that batch, and the rank's steps, examples and records so far in the epoch."""

    states: dict[int, dict[str, int]] = field(default_factory=dict)
    last_stream: int | None = None
    steps: int = 0
    examples: int = 0

    def advance(self, batch: dict[str, Any], examples: int) -> None:
        """Record that ``batch`` (with ``examples`` examples) was used."""
        self.move(batch)
        self.steps += 1
        self.examples += examples

    def move(self, batch: dict[str, Any]) -> None:
        """Record that ``batch`` came from its stream, which now stands after it (a batch without
        examples, which only says what its reader read, moves its stream on without a step)."""
        stream, state = batch["position"]
        self.states[stream] = state
        self.last_stream = stream

    def first_stream(self, streams: int) -> int:
        """The stream whose batch comes next: DataLoader workers take turns, so the one after the last."""
        return 0 if self.last_stream is None else (self.last_stream + 1) % streams

    @property
    def records(self) -> int:
        """Records whose examples were all used this epoch."""
        return sum(state["records"] for state in self.states.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoaderPosition:
        return cls(**data)


class CountedBatches:
    """The batches of a loader of whole batches, with what their readers read added up in ``read_stats``.

    Iterating takes ``batch["read_stats"]`` out of each batch and adds it to ``read_stats``; a batch
    without examples (only statistics) is not yielded, but moves ``position`` on when given (so that a
    training run resumed from that position does not count it again); an error a DataLoader worker
    passed on (``batch["error"]``) is raised. Batches of loaders that count nothing (clips) pass as they are.
    """

    def __init__(
        self,
        loader: Iterable[dict[str, Any]],
        read_stats: ReadStats | None = None,
        position: LoaderPosition | None = None,
    ) -> None:
        self.loader = loader
        self.read_stats = read_stats if read_stats is not None else ReadStats()
        self.position = position

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            if "error" in batch:
                raise batch["error"]
            read = batch.pop("read_stats", None)
            if read is not None:
                self.read_stats.update(read)
            if batch.keys() - {"position"}:
                yield batch
            elif self.position is not None:  # it held statistics only
                self.position.move(batch)


def _as_is(batch: Any) -> Any:
    return batch


def batch_loader(
    dataset: Dataset | IterableDataset,
    num_workers: int,
    *,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader over a dataset that yields whole batches. Its own generator seeds the workers, so
    creating it does not draw from torch's global RNG (which would shift later dropout masks).
    ``pin_memory``, ``prefetch_factor`` and ``persistent_workers`` are the DataLoader's own; workers
    start and end as :mod:`compactvideo.data.workers` says."""
    return DataLoader(
        dataset,
        batch_size=None,
        collate_fn=_as_is,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor,
        persistent_workers=persistent_workers,
        **worker_options(dataset, num_workers),
    )

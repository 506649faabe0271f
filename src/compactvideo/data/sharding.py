"""Which records each reader takes: R DDP ranks x W DataLoader workers read every record exactly once.

A :class:`Share` is what one reader reads: some of the files (in order), and of the records of those
files, counted g = 0, 1, ... from the first record of the first file, those with g mod stride = offset
(and g < limit when a limit is set). :func:`split` cuts a share into ``parts`` disjoint shares that
together hold each of its records once:

- **Whole files, balanced by bytes**, when the share has at least as many files as parts and no
  stride or limit yet: largest file first (ties in reading order), each file goes to the part with the
  fewest bytes so far (ties to the lowest part), and each part reads its files in the share's order.
  The parts' loads then differ by at most one file, and each file is read by one reader only,
  sequentially: what YouTube-8M needs (3,844 shards of ~1,000 records per split, read by many ranks,
  possibly from remote storage).
- **Records by stride** otherwise (fewer files than parts, e.g. 3 shards on 2 ranks x 2 workers, or a
  limit): every part reads all the share's files and keeps every ``parts``-th record. This costs
  ``parts`` framings of each file, which only happens when there are fewer files than readers, i.e. on
  small data sets.

:func:`reader_share` applies this twice, ranks first, then the workers of a rank, so each rank's data
is a contiguous choice of files (one rank never touches another's files when there are enough of them).

**Why not DDP's ``Join``.** Shares differ in size, so ranks run out of batches at different steps.
``torch.distributed.algorithms.Join`` lets a rank that ran out shadow the gradient all-reduce, but a
joined rank stops calling ``optimizer.step()``: its Adam moments fall behind and, after the epoch, its
updates differ from the other ranks' (only the weights are re-synchronised). The training loop
(:mod:`compactvideo.train`) instead keeps every rank stepping until the last one has run out: a rank
without a batch contributes a zero gradient, each rank's loss is weighted by its share of the step's
examples, so every step's gradient is the mean over the examples actually present, and every rank
takes the same optimizer step. Nothing is dropped and no rank waits in a collective. A balanced
per-record assignment would need a record count of every file before the first step (a full pass over
the data at YouTube-8M scale); byte-balanced whole files need only the file sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    """Files (indices into the full list, in reading order), and which of their records to keep."""

    files: tuple[int, ...]
    stride: int = 1
    offset: int = 0
    limit: int | None = None

    def keeps(self, index: int) -> bool:
        """Whether the record at position ``index`` of the share's files is this share's."""
        return index % self.stride == self.offset


def split(share: Share, part: int, parts: int, sizes: Sequence[int]) -> Share:
    """Part ``part`` of ``parts`` of ``share`` (module docstring); ``sizes`` are the files' bytes."""
    if parts == 1:
        return share
    if share.stride == 1 and share.limit is None and len(share.files) >= parts:
        loads = [0] * parts
        mine = set()
        for file in sorted(share.files, key=lambda f: -sizes[f]):  # stable: ties keep reading order
            target = min(range(parts), key=lambda p: (loads[p], p))
            loads[target] += sizes[file]
            if target == part:
                mine.add(file)
        return Share(tuple(file for file in share.files if file in mine))
    return Share(share.files, share.stride * parts, share.offset + share.stride * part, share.limit)


def reader_share(
    order: Sequence[int],
    sizes: Sequence[int],
    rank: int,
    world_size: int,
    worker: int,
    workers: int,
    limit: int | None = None,
) -> Share:
    """The share of worker ``worker`` of rank ``rank``, reading files in ``order`` (module docstring)."""
    everything = Share(tuple(order), limit=limit)
    return split(split(everything, rank, world_size, sizes), worker, workers, sizes)

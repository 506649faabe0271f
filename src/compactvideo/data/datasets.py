"""YouTube-8M records as torch datasets: sharding, shuffling, frame sampling and collation.

:class:`RecordDataset` is an ``IterableDataset`` over many shard files that yields batches. Its readers
are rank r of R DDP ranks x DataLoader worker w of W; :mod:`compactvideo.data.sharding` gives each its
share (whole files balanced by bytes, or every S-th record when there are fewer files than readers), so
every record is read by exactly one reader per epoch. Ranks that run out early keep stepping with a
zero gradient until all have run out (see :mod:`compactvideo.data.sharding` for why not DDP's Join).

**Training order** depends only on (seed, epoch, R, W): the file list is permuted with (seed, epoch),
then each reader cuts its records, in file order, into chunks of ``shuffle_buffer`` records and emits
each chunk in a random order drawn from (seed, epoch, reader, chunk). A reader's position is therefore
(chunk, where it starts in the files, examples of it already used): every training batch carries it
(``batch["position"]``, see :mod:`compactvideo.data.batching`), and a dataset given a
:class:`~compactvideo.data.batching.LoaderPosition` restarts each reader right there, reading again at
most the chunk it was in. **Evaluation** reads in file order, unshuffled, and ``limit`` keeps the first
``limit`` records of the file list (the same videos whatever R and W).

Frame sampling (what ``rgb`` / ``audio`` hold for a video of N real frames):

- ``all``: the N frames, padded with zeros to the longest video of the batch (the models are invariant
  to padding, so this equals padding to ``max_frames`` and costs less);
- ``random``: F frame indices drawn uniformly with replacement, t_i = floor(N u_i), kept in time order
  (the starter code's SampleRandomFrames);
- ``robust``: n samples of k such frames laid out one after the other (n k frames), the input of
  Araujo et al.'s robust pooling (sec. 3.2), whose model cuts them back into the n groups.

The draws of each example come from a generator seeded by (seed, a stable hash of the video id, the
example's part, and the epoch in training): they do not depend on the batch, the reader or the order
in which records arrive, so evaluation is a function of the model, its seed and the data only.
``split_half`` (training) turns each video into two examples (parts), frames [0, ceil(N/2)) and
[ceil(N/2), N), with the same labels (Araujo et al. 2018, sec. 4).

**Sample first, decode only what is kept.** Records are parsed with their frames as the stored uint8
bytes (views, no copy); the frame indices are drawn from the number of frames alone, and only the kept
rows are copied out. With ``frame_dtype="float32"`` collation dequantises them straight into the
batch; with ``"uint8"`` the batch carries them as stored, a quarter of the bytes, and the model's input
transform dequantises them on its device. Either way the model's input transform L2-normalises and
masks the padding (:mod:`compactvideo.models.frame_input`): the loader draws the same frames as when
it dequantised every frame first, and the model sees the same numbers in both modes.

Collation gives ``rgb`` [B, T, 1024], ``audio`` [B, T, 128] (float32 dequantised frames, or uint8 as
stored), ``num_frames`` [B] (int64),
``labels`` [B, C] multi-hot float32, ``ids`` (list of str) and ``keys`` (each example's (file number,
record number, part), its place in the data); video-level batches hold ``mean_rgb`` [B, 1024] and
``mean_audio`` [B, 128] instead of frames. Batches hold ``batch_size`` examples; a last batch of one
joins the one before (:func:`compactvideo.data.batching.batches`).

**What was read.** Each reader counts the records it reads and the damaged records it skips (with
``skip_corrupt``; a label outside ``num_classes`` is damage too) in a
:class:`~compactvideo.data.damage.ReadStats`, and its batches carry what it counted since its previous
batch (``batch["read_stats"]``), so the process that uses the batches adds up what was read, over
workers and, gathered, over ranks (:class:`compactvideo.data.batching.CountedBatches`). A count
belongs to the record it leads to (a skip, to the next intact record) and goes to the reader that keeps
that record, so readers that walk the same files (stride mode) count each skip once. A training chunk's
counts ride on its first example, so a reader resumed inside the chunk, which reads it again, does not
count it twice. Damage after a reader's last record comes in a last batch with no examples, only
``read_stats`` (and, in training, the position past the end of the reader's share). In a DataLoader
worker, a :class:`~compactvideo.errors.CompactVideoError` (a damaged record without ``skip_corrupt``)
is passed on as ``batch["error"]`` and raised again, intact, by ``CountedBatches``.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from compactvideo._torch_compat import empty_shared
from compactvideo.data.batching import LoaderPosition, batches
from compactvideo.data.damage import ReadStats
from compactvideo.data.files import file_sizes
from compactvideo.data.sharding import Share, reader_share
from compactvideo.data.yt8m import FrameRecord, VideoRecord, dequantize, read_records
from compactvideo.errors import CompactVideoError, check_at_least

FRAME_SAMPLINGS = ("all", "random", "robust")
FRAME_DTYPES = ("float32", "uint8")  # what a batch's frames hold: dequantised numbers, or stored bytes


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
            check_at_least(name, getattr(self, name), 1)

    def indices(self, num_frames: int, rng: np.random.Generator) -> np.ndarray | None:
        """Frame indices to keep (None: all of them, in order)."""
        if self.mode == "all":
            return None
        if self.mode == "random":
            return np.sort(rng.integers(0, num_frames, self.frames))
        draws = rng.integers(0, num_frames, (self.samples, self.frames_per_sample))
        return np.sort(draws, axis=1).ravel()


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text``, the same in every process and run (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def frame_generator(video_id: str, seed: int, part: int = 0, epoch: int | None = None) -> np.random.Generator:
    """The generator of one example's frame draws: (seed, video id, part), and the epoch in training."""
    entropy = [seed, stable_hash(video_id), part]
    return np.random.default_rng(entropy if epoch is None else [*entropy, epoch + 1])


@dataclass(frozen=True)
class Place:
    """Where a record is: the ``file``-th file of a share, its ``record``-th record, the ``index``-th
    record of the share's files counted from the first."""

    file: int
    record: int
    index: int


class RecordDataset(IterableDataset):
    """Batches of examples from YouTube-8M shard files, sharded over ranks and workers (module docstring).

    ``files`` are shard references (local paths or fsspec URLs, see :mod:`compactvideo.data.files`).
    ``position`` (training) restarts every reader where a checkpoint left it; ``limit`` (evaluation)
    keeps the first ``limit`` records of the file list; ``frame_dtype`` is the dtype of the batches'
    frames, ``"float32"`` (dequantised) or ``"uint8"`` (as stored).
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        level: str,
        num_classes: int,
        batch_size: int = 1,
        sampling: FrameSampling = FrameSampling(),
        training: bool = False,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = 1024,
        max_frames: int = 300,
        split_half: bool = False,
        frame_dtype: str = "float32",
        skip_corrupt: bool = False,
        limit: int | None = None,
        position: LoaderPosition | None = None,
    ) -> None:
        super().__init__()
        if not files:
            raise CompactVideoError("no record files to read")
        if frame_dtype not in FRAME_DTYPES:
            raise CompactVideoError(f"frame_dtype must be one of {FRAME_DTYPES}, got {frame_dtype!r}")
        for name, value, minimum in (
            ("batch_size", batch_size, 1),
            ("shuffle_buffer", shuffle_buffer, 1),
            ("max_frames", max_frames, 1),
            ("limit", limit, 1),
            ("seed", seed, 0),
        ):
            check_at_least(name, value, minimum)
        self.files = [os.fspath(f) for f in files]
        self.sizes = file_sizes(self.files)
        self.level, self.num_classes, self.batch_size = level, num_classes, batch_size
        self.sampling, self.training = sampling, training
        self.rank, self.world_size = rank, world_size
        self.seed, self.epoch, self.shuffle_buffer = seed, epoch, shuffle_buffer
        self.max_frames, self.split_half, self.frame_dtype = max_frames, split_half, frame_dtype
        self.skip_corrupt, self.limit, self.position = skip_corrupt, limit, position

    def _reader(self) -> tuple[int, int, Share]:
        """(this reader's worker role, the number of workers, its share): worker roles are rotated so
        that a resumed DataLoader's first worker plays the role whose batch came next."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        if self.position is not None:
            worker = (worker + self.position.first_stream(workers)) % workers
        order = list(range(len(self.files)))
        if self.training:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        share = reader_share(order, self.sizes, self.rank, self.world_size, worker, workers, self.limit)
        return worker, workers, share

    def _records(
        self, share: Share, start: Place, end: ReadStats
    ) -> Iterator[tuple[Place, FrameRecord | VideoRecord, ReadStats]]:
        """The share's records from ``start`` on, each with what reading it counted: itself, and the
        skips since the record before. Records before ``start`` in its file are parsed and passed.

        Counts go to the reader that keeps the record they lead to (module docstring); what follows
        the last record, if it is this reader's turn (and within ``limit``), is added to ``end``.
        """
        counted = ReadStats()
        index = start.index
        for number in range(start.file, len(share.files)):
            first = start.record if number == start.file else 0
            records = read_records(
                self.files[share.files[number]],
                self.max_frames,
                skip_corrupt=self.skip_corrupt,
                level=self.level,
                stats=counted,
                warn=False,
                num_classes=self.num_classes,
                quantized=True,
            )
            for position, record in enumerate(records):
                read = counted.take()
                if position < first:
                    continue
                if share.limit is not None and index >= share.limit:
                    return
                if share.keeps(index):
                    yield Place(number, position, index), record, read
                index += 1
        if share.keeps(index) and (share.limit is None or index < share.limit):
            end.update(counted)

    def _evaluation_stream(self, share: Share) -> Iterator[tuple[dict | None, tuple, None, ReadStats | None]]:
        end = ReadStats()
        for place, record, read in self._records(share, Place(0, 0, 0), end):
            for part, frames in enumerate(self._parts(record)):
                key = (share.files[place.file], place.record, part)
                yield self._example(record, part, frames), key, None, read if part == 0 else None
        if end.skipped:  # (no records: each rides on its own)
            yield None, (), None, end

    def _training_stream(
        self, share: Share, reader: int, state: dict | None
    ) -> Iterator[tuple[dict | None, tuple, dict, ReadStats | None]]:
        """Chunks of ``shuffle_buffer`` records, each emitted in a seeded random order, from ``state`` on.

        The state after each example: ``chunk`` and where it starts (``file``, ``record``, ``index``),
        ``taken`` examples of it used, ``before`` records of earlier chunks and ``records`` used in all.
        The chunk's read statistics ride on its first example. Damage after the share's last record
        comes last, without an example, with the state of a reader past the end of its share.
        """
        state = state or {"chunk": 0, "file": 0, "record": 0, "index": 0, "taken": 0, "before": 0}
        chunk_number, taken, before = state["chunk"], state["taken"], state["before"]
        start = Place(state["file"], state["record"], state["index"])
        end = ReadStats()
        records = self._records(share, start, end)
        while chunk := list(islice(records, self.shuffle_buffer)):
            last = chunk[-1][0]
            following = Place(last.file, last.record + 1, last.index + 1)
            order = np.random.default_rng([self.seed, self.epoch, reader, chunk_number]).permutation(
                len(chunk)
            )
            read = ReadStats.merged(read for _, _, read in chunk)
            used = 0
            for turn, choice in enumerate(order):
                place, record, _ = chunk[choice]
                parts = self._parts(record)
                for part, frames in enumerate(parts):
                    used += 1
                    if used <= taken:
                        continue
                    records_used = before + turn + (part == len(parts) - 1)
                    if records_used == before + len(chunk):  # the chunk's last example: next chunk
                        state = {
                            "chunk": chunk_number + 1,
                            **asdict(following),
                            "taken": 0,
                            "before": records_used,
                        }
                    else:
                        state = {"chunk": chunk_number, **asdict(start), "taken": used, "before": before}
                    key = (share.files[place.file], place.record, part)
                    example = self._example(record, part, frames)
                    yield example, key, {**state, "records": records_used}, read if used == 1 else None
            chunk_number, start, taken, before = chunk_number + 1, following, 0, before + len(chunk)
        if end.skipped:  # (no records: each rides on its own)
            past = Place(len(share.files), 0, start.index)
            finished = {"chunk": chunk_number, **asdict(past), "taken": 0, "before": before}
            yield None, (), {**finished, "records": before}, end

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._batches()
        except CompactVideoError as error:
            if get_worker_info() is None:
                raise
            yield {"error": error}  # a worker's exception would reach the main process as text only

    def _batches(self) -> Iterator[dict[str, Any]]:
        reader, workers, share = self._reader()
        if self.training:
            state = self.position.states.get(reader) if self.position is not None else None
            stream = self._training_stream(share, self.rank * workers + reader, state)
        else:
            stream = self._evaluation_stream(share)
        tail = []  # the stream's last item, when it has no example

        def examples() -> Iterator[tuple]:
            for item in stream:
                if item[0] is None:
                    tail.append(item)
                else:
                    yield item

        for group in batches(examples(), self.batch_size):
            batch = collate([example for example, _, _, _ in group], self.num_classes, self.frame_dtype)
            batch["keys"] = [key for _, key, _, _ in group]
            if self.training:
                batch["position"] = (reader, group[-1][2])
            reads = [read for _, _, _, read in group if read is not None]
            if reads:
                batch["read_stats"] = ReadStats.merged(reads)
            yield batch
        for _, _, state, read in tail:
            yield {"read_stats": read, **({"position": (reader, state)} if self.training else {})}

    def _parts(self, record: FrameRecord | VideoRecord) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """The frames of each example a record gives: two halves with split-half, else all (None: video
        level)."""
        if isinstance(record, VideoRecord):
            return [None]
        rgb, audio = record.rgb, record.audio
        if self.training and self.split_half and len(rgb) > 1:
            middle = math.ceil(len(rgb) / 2)
            return [(rgb[:middle], audio[:middle]), (rgb[middle:], audio[middle:])]
        return [(rgb, audio)]

    def _example(
        self, record: FrameRecord | VideoRecord, part: int, frames: tuple[np.ndarray, np.ndarray] | None
    ) -> dict[str, Any]:
        """One example: the id, the labels, and the kept frames (uint8, as stored) or the mean features."""
        example: dict[str, Any] = {"id": record.id, "labels": record.labels}
        if frames is None:
            return {**example, "mean_rgb": record.mean_rgb, "mean_audio": record.mean_audio}
        rgb, audio = frames
        generator = frame_generator(record.id, self.seed, part, self.epoch if self.training else None)
        keep = self.sampling.indices(len(rgb), generator)
        if keep is not None:
            rgb, audio = rgb[keep], audio[keep]
        return {**example, "rgb": rgb, "audio": audio}


def collate(
    examples: Sequence[dict[str, Any]], num_classes: int, frame_dtype: str = "float32"
) -> dict[str, Any]:
    """Stack examples into a batch; frames are zero-padded to the longest video of the batch.

    Frame-level examples hold uint8 frames as stored; the batch holds them dequantised
    (``frame_dtype="float32"``, written straight into the batch) or as they are (``"uint8"``). In a
    DataLoader worker the frames are written into shared memory, which the batch then travels in.
    """
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
        batch[name] = _frame_tensor((len(examples), longest, width), frame_dtype)
        frames = batch[name].numpy()
        for row, example in enumerate(examples):
            if example[name].dtype != np.uint8:
                raise CompactVideoError(
                    f"video {example['id']}: collate takes {name} frames as stored (uint8), "
                    f"got {example[name].dtype}"
                )
            kept, padding = frames[row, : lengths[row]], frames[row, lengths[row] :]
            if frame_dtype == "uint8":
                kept[...] = example[name]
            else:
                dequantize(example[name], out=kept)
            padding.fill(0)
    batch["num_frames"] = torch.tensor(lengths, dtype=torch.int64)
    return batch


def _frame_tensor(shape: tuple[int, ...], frame_dtype: str) -> torch.Tensor:
    """An uninitialised tensor for a batch's frames: in shared memory inside a DataLoader worker (sending
    an ordinary tensor to the main process copies it there first), else numpy's memory (which asks the
    kernel for huge pages: filling a fresh 55 MB float32 batch then costs a quarter of torch.empty's)."""
    if get_worker_info() is not None:
        return empty_shared(shape, getattr(torch, frame_dtype))
    return torch.from_numpy(np.empty(shape, dtype=frame_dtype))


def split_batch(batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each example of a collated batch as a batch of one, its frames cut to its own ``num_frames``.

    Evaluation runs the model on these: a model's output for a video then depends on that video alone,
    not on the batch around it (BLAS kernels round differently for different batch shapes).
    """
    for row in range(len(batch["ids"])):
        one = {
            name: value[row : row + 1]
            for name, value in batch.items()
            if isinstance(value, torch.Tensor | list)
        }
        if "num_frames" in one:
            length = int(one["num_frames"][0])
            one["rgb"], one["audio"] = one["rgb"][:, :length], one["audio"][:, :length]
        yield one

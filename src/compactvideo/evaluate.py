"""Evaluation and prediction of a trained model: a function of the checkpoint and the data only.

- :func:`evaluate_loader` runs a model over a loader and returns the task's metrics (GAP@20, Hit@1,
  PERR, mAP for YouTube-8M; accuracy for clips), merged exactly over ranks when distributed.
- :func:`evaluate` does that for a checkpoint and a file pattern and writes the result as JSON.
- :func:`predict` writes the Kaggle submission format of the YouTube-8M challenges: a header
  ``VideoId,LabelConfidencePairs`` and one row per video, ``id,label score label score ...`` with the
  top 20 classes by descending probability, rows in the order of the data (file, then record).

Both report what they read from record files under ``"read"``
(:meth:`~compactvideo.data.damage.ReadStats.report`: records, damaged records skipped, and each damaged
file with the byte offsets of its first skips), merged over workers and ranks, and warn when they
skipped any. With ``max_skipped`` (:class:`~compactvideo.loaders.LoaderOptions`), a pass that skips more
stops with :class:`~compactvideo.data.damage.TooManySkippedError`: one process at the batch that
passes the limit; ranks, which read different numbers of batches and cannot meet at each, once they
add up their counts at the end, all together (one rank stopping alone would leave the others waiting).

Results do not depend on the batch size, ``num_workers``, the number of ranks or the order in which
videos arrive: frame draws are seeded by the checkpoint's seed and each video's id
(:mod:`compactvideo.data.datasets`), the model runs on one video at a time (BLAS kernels round a row's
dot products differently for different batch shapes, so a batched forward is not batch-invariant),
and the metrics accumulate exactly (:mod:`compactvideo.metrics`). Under ``torchrun`` each rank
evaluates its share of the data, and rank 0 writes the JSON or CSV file.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from compactvideo.checkpoint import load_checkpoint
from compactvideo.data.batching import CountedBatches
from compactvideo.data.damage import ReadStats
from compactvideo.data.datasets import split_batch
from compactvideo.distributed import DistributedContext
from compactvideo.errors import CompactVideoError, CompactVideoWarning, check_at_least
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import model_from_checkpoint, override_data, task_for
from compactvideo.tasks import MultiLabelTask, Task


def model_outputs(model: nn.Module, task: Task, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
    """The model's outputs for the examples of ``batch``, each computed on that example alone, so that
    they are bit-identical whatever batch the example came in."""
    return torch.cat([model(*task.inputs(one, device)) for one in split_batch(batch)])


def merged_read(read: ReadStats, context: DistributedContext, max_skipped: int | None) -> ReadStats:
    """What every rank read (``read`` is this rank's), added up; raises
    :class:`~compactvideo.data.damage.TooManySkippedError` when more than ``max_skipped`` were skipped."""
    merged = ReadStats.merged(context.gather(read))
    merged.check(max_skipped)
    return merged


def check_alone(read: ReadStats, context: DistributedContext, max_skipped: int | None) -> None:
    """In one process, raise :class:`~compactvideo.data.damage.TooManySkippedError` as soon as ``read``
    skipped more than ``max_skipped``; ranks check together instead (:func:`merged_read`)."""
    if not context.distributed:
        read.check(max_skipped)


def read_report(read: ReadStats, key: str = "read") -> dict[str, Any]:
    """``{key: read.report()}`` when records were read, else nothing (clips count no records)."""
    return {key: read.report()} if read.files else {}


def warn_skipped(read: ReadStats, context: DistributedContext) -> None:
    """On rank 0, a warning naming the damaged records ``read`` skipped, if any."""
    if read.skipped and context.is_main:
        warnings.warn(CompactVideoWarning(read.summary(lines=3)), stacklevel=2)


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    task: Task,
    context: DistributedContext | None = None,
    max_skipped: int | None = None,
) -> dict[str, Any]:
    """The task's metrics over every batch of ``loader``, merged over ranks when distributed, and, for
    record files, ``"read"``: what was read and skipped (module docstring), stopping the evaluation once
    more than ``max_skipped`` damaged records were skipped."""
    context = context or DistributedContext(torch.device("cpu"))
    # every pass counts what it reads anew (a validation loader may be read again)
    batches = CountedBatches(loader.loader if isinstance(loader, CountedBatches) else loader)
    model.eval()
    metrics = task.metrics()
    for batch in tqdm(batches, desc="evaluating", unit="batch", leave=False, disable=not context.is_main):
        metrics.update(model_outputs(model, task, batch, context.device), batch)
        check_alone(batches.read_stats, context, max_skipped)
    parts = context.gather(metrics)
    for other in parts[1:]:
        parts[0].merge(other)
    read = merged_read(batches.read_stats, context, max_skipped)
    warn_skipped(read, context)
    return {**parts[0].result(), **read_report(read)}


def _load(checkpoint: str | Path, device: torch.device) -> tuple[nn.Module, int]:
    """The model in eval mode and the seed of its evaluation frame draws (its training seed)."""
    stored = load_checkpoint(checkpoint)
    return model_from_checkpoint(stored, device, checkpoint), int(stored.get("seed", 0))


def evaluate(
    checkpoint: str | Path,
    pattern: str,
    batch_size: int = 256,
    data: LoaderOptions | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    contract: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on the records matching ``pattern``; write JSON to ``out`` if given.

    The data are read as the model's data contract (stored in the checkpoint) prescribes; ``contract``
    overrides some of its fields, with a warning naming what differs from training. Under ``torchrun``
    every rank evaluates its share and returns the merged result; rank 0 writes.
    """
    check_at_least("batch_size", batch_size, 1)
    context = DistributedContext.from_environment(device)
    model, seed = _load(checkpoint, context.device)
    config = override_data(model.config, contract or {})
    data = data or LoaderOptions()
    loader = make_loader(config, pattern, data, batch_size, training=False, context=context, seed=seed)
    result = evaluate_loader(model, loader, task_for(model.config), context, data.max_skipped)
    if out is not None and context.is_main:
        Path(out).write_text(json.dumps({"checkpoint": str(checkpoint), "data": pattern, **result}, indent=2))
    context.close()
    return result


@torch.no_grad()
def predict(
    checkpoint: str | Path,
    pattern: str,
    out: str | Path,
    top_k: int = 20,
    batch_size: int = 256,
    data: LoaderOptions | None = None,
    device: str = "cpu",
    contract: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the top ``top_k`` (label, probability) pairs of every video as a Kaggle CSV.

    The data are read as in :func:`evaluate` (the checkpoint's data contract, ``contract`` overriding).
    Under ``torchrun`` every rank predicts its share; rank 0 gathers the rows and writes the file.
    Returns ``{"predictions": rows written, "out": the file, "read": what was read (module docstring)}``;
    a pass that skipped more than ``max_skipped`` damaged records writes no file.
    """
    check_at_least("top_k", top_k, 1)
    check_at_least("batch_size", batch_size, 1)
    context = DistributedContext.from_environment(device)
    model, seed = _load(checkpoint, context.device)
    task = task_for(model.config)
    if not isinstance(task, MultiLabelTask):
        raise CompactVideoError(
            "predict writes YouTube-8M submissions; this checkpoint is not a YouTube-8M model"
        )
    config = override_data(model.config, contract or {})
    data = data or LoaderOptions()
    loader = make_loader(config, pattern, data, batch_size, training=False, context=context, seed=seed)
    rows = []
    for batch in tqdm(loader, desc="predicting", unit="batch", leave=False, disable=not context.is_main):
        probabilities = model_outputs(model, task, batch, context.device).float().cpu().numpy()
        k = min(top_k, probabilities.shape[1])
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(probabilities, top, 1)
        for key, video_id, classes, values in zip(batch["keys"], batch["ids"], top, scores, strict=True):
            pairs = " ".join(f"{c} {s:.6f}" for c, s in zip(classes, values, strict=True))
            rows.append((key, video_id, pairs))
        check_alone(loader.read_stats, context, data.max_skipped)
    read = merged_read(loader.read_stats, context, data.max_skipped)
    shares = context.collect(rows)
    if shares is not None:
        with open(out, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["VideoId", "LabelConfidencePairs"])
            for _, video_id, pairs in sorted((row for share in shares for row in share), key=lambda r: r[0]):
                writer.writerow([video_id, pairs])
    written = context.sum(len(rows))
    warn_skipped(read, context)
    context.close()
    return {"predictions": written, "out": str(out), **read_report(read)}

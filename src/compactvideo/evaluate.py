"""Evaluation and prediction of a trained model.

- :func:`evaluate_loader` runs a model over a loader and returns the task's metrics (GAP@20, Hit@1,
  PERR, mAP for YouTube-8M; accuracy for clips), merged over ranks when distributed.
- :func:`evaluate` does that for a checkpoint and a file pattern and writes the result as JSON.
- :func:`predict` writes the Kaggle submission format of the YouTube-8M challenges: a header
  ``VideoId,LabelConfidencePairs`` and one row per video, ``id,label score label score ...`` with the
  top 20 classes by descending probability.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from compactvideo.distributed import DistributedContext
from compactvideo.errors import CompactVideoError
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import load_model, override_data, task_for
from compactvideo.tasks import MultiLabelTask, Task


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Any,
    task: Task,
    context: DistributedContext | None = None,
    max_videos: int | None = None,
) -> dict[str, float]:
    """The task's metrics over every batch of ``loader`` (or the first ``max_videos`` of each rank)."""
    context = context or DistributedContext(torch.device("cpu"))
    model.eval()
    metrics = task.metrics()
    seen = 0
    for batch in tqdm(loader, desc="evaluating", unit="batch", leave=False, disable=not context.is_main):
        metrics.update(model(*task.inputs(batch, context.device)), batch)
        seen += task.batch_size(batch)
        if max_videos is not None and seen >= max_videos:
            break
    parts = context.gather(metrics)
    for other in parts[1:]:
        parts[0].merge(other)
    return parts[0].result()


def evaluate(
    checkpoint: str | Path,
    pattern: str,
    batch_size: int = 256,
    data: LoaderOptions | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    contract: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Evaluate a checkpoint on the records matching ``pattern``; write JSON to ``out`` if given.

    The data are read as the model's data contract (stored in the checkpoint) prescribes; ``contract``
    overrides some of its fields, with a warning naming what differs from training.
    """
    context = DistributedContext(torch.device(device))
    model = load_model(checkpoint, context.device)
    config = override_data(model.config, contract or {})
    loader = make_loader(
        config, pattern, data or LoaderOptions(), batch_size, training=False, context=context
    )
    result = evaluate_loader(model, loader, task_for(model.config), context)
    if out is not None:
        Path(out).write_text(json.dumps({"checkpoint": str(checkpoint), "data": pattern, **result}, indent=2))
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
) -> int:
    """Write the top ``top_k`` (label, probability) pairs of every video as a Kaggle CSV; return the count.

    The data are read as in :func:`evaluate` (the checkpoint's data contract, ``contract`` overriding).
    """
    context = DistributedContext(torch.device(device))
    model = load_model(checkpoint, context.device)
    task = task_for(model.config)
    if not isinstance(task, MultiLabelTask):
        raise CompactVideoError(
            "predict writes YouTube-8M submissions; this checkpoint is not a YouTube-8M model"
        )
    config = override_data(model.config, contract or {})
    loader = make_loader(
        config, pattern, data or LoaderOptions(), batch_size, training=False, context=context
    )
    model.eval()
    written = 0
    with open(out, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["VideoId", "LabelConfidencePairs"])
        for batch in tqdm(loader, desc="predicting", unit="batch", leave=False):
            probabilities = model(*task.inputs(batch, context.device)).float().cpu().numpy()
            k = min(top_k, probabilities.shape[1])
            top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
            for video_id, classes, scores in zip(
                batch["ids"], top, np.take_along_axis(probabilities, top, 1), strict=True
            ):
                writer.writerow(
                    [video_id, " ".join(f"{c} {s:.6f}" for c, s in zip(classes, scores, strict=True))]
                )
                written += 1
    return written

"""What differs between learning problems: model inputs, loss and metrics of a batch.

- :class:`MultiLabelTask` (YouTube-8M, frame or video level): the model outputs class probabilities p;
  the loss is the starter code's cross-entropy
  L = -(1/B) sum_b sum_c [y log(p + eps) + (1 - y) log(1 - p + eps)], eps = 1e-5;
  metrics are GAP@20, Hit@1, PERR and mAP (:mod:`compactvideo.metrics`).
- :class:`SingleLabelTask` (action clips): the model outputs logits; the loss is softmax cross-entropy
  and the metric accuracy.

A task is built with the batch entries the model takes, in its ``forward`` order (``input_keys``,
``None`` for an argument the model takes as ``None``, such as an absent modality); each model family
(:mod:`compactvideo.models.family`) says which. The training and evaluation loops only talk to a task,
so one engine serves every model family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from compactvideo.metrics import MetricAccumulator

CROSS_ENTROPY_EPSILON = 1e-5


def multilabel_cross_entropy(
    probabilities: torch.Tensor, labels: torch.Tensor, epsilon: float = CROSS_ENTROPY_EPSILON
) -> torch.Tensor:
    """The YouTube-8M starter code's loss: per-class binary cross-entropy summed over classes, batch mean."""
    probabilities = probabilities.float()
    losses = labels * torch.log(probabilities + epsilon) + (1 - labels) * torch.log(
        1 - probabilities + epsilon
    )
    return -losses.sum(dim=1).mean()


class Accumulator(Protocol):
    def update(self, outputs: torch.Tensor, batch: dict[str, Any]) -> None: ...

    def merge(self, other: Accumulator) -> None: ...

    def result(self) -> dict[str, float]: ...


class Task(Protocol):
    """How a batch dict becomes model inputs, a loss and metric updates."""

    def inputs(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor | None, ...]: ...

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any], device: torch.device) -> torch.Tensor: ...

    def metrics(self) -> Accumulator: ...

    def batch_size(self, batch: dict[str, Any]) -> int: ...


def batch_inputs(
    batch: dict[str, Any], keys: tuple[str | None, ...], device: torch.device
) -> tuple[torch.Tensor | None, ...]:
    """The batch entries named by ``keys`` on ``device``, ``None`` where a key is ``None``."""
    return tuple(None if key is None else batch[key].to(device, non_blocking=True) for key in keys)


@dataclass
class _MultiLabelMetrics:
    num_classes: int
    accumulator: MetricAccumulator = field(init=False)

    def __post_init__(self) -> None:
        self.accumulator = MetricAccumulator(self.num_classes)

    def update(self, outputs: torch.Tensor, batch: dict[str, Any]) -> None:
        self.accumulator.update(outputs.detach().float().cpu().numpy(), batch["labels"].numpy())

    def merge(self, other: _MultiLabelMetrics) -> None:
        self.accumulator.merge(other.accumulator)

    def result(self) -> dict[str, float]:
        return self.accumulator.result()


@dataclass(frozen=True)
class MultiLabelTask:
    """YouTube-8M: class probabilities out, multi-hot ``labels`` [B, C]; e.g. ``input_keys`` ("rgb",
    "audio", "num_frames") for frame-level models, ("mean_rgb", None) for a video-level rgb-only one."""

    num_classes: int
    input_keys: tuple[str | None, ...]

    def inputs(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor | None, ...]:
        return batch_inputs(batch, self.input_keys, device)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        return multilabel_cross_entropy(outputs, batch["labels"].to(device, non_blocking=True))

    def metrics(self) -> Accumulator:
        return _MultiLabelMetrics(self.num_classes)

    def batch_size(self, batch: dict[str, Any]) -> int:
        return len(batch["labels"])


@dataclass
class _AccuracyMetrics:
    correct: int = 0
    total: int = 0
    loss_sum: float = 0.0

    def update(self, outputs: torch.Tensor, batch: dict[str, Any]) -> None:
        labels = batch["label"]
        logits = outputs.detach().float().cpu()
        self.correct += int((logits.argmax(dim=1) == labels).sum())
        self.total += len(labels)
        self.loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))

    def merge(self, other: _AccuracyMetrics) -> None:
        self.correct += other.correct
        self.total += other.total
        self.loss_sum += other.loss_sum

    def result(self) -> dict[str, float]:
        if self.total == 0:
            raise ValueError("no predictions were accumulated")
        return {
            "accuracy": self.correct / self.total,
            "loss": self.loss_sum / self.total,
            "videos": self.total,
        }


@dataclass(frozen=True)
class SingleLabelTask:
    """Action clips: logits out, integer ``label`` [B]; ``input_keys`` ("clip",) for clip models."""

    num_classes: int
    input_keys: tuple[str | None, ...]

    def inputs(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor | None, ...]:
        return batch_inputs(batch, self.input_keys, device)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), batch["label"].to(device, non_blocking=True))

    def metrics(self) -> Accumulator:
        return _AccuracyMetrics()

    def batch_size(self, batch: dict[str, Any]) -> int:
        return len(batch["label"])


def headline_metric(result: dict[str, float]) -> tuple[str, float]:
    """The number a run is judged by: GAP for YouTube-8M, accuracy for clips."""
    name = "gap" if "gap" in result else "accuracy"
    return name, float(result[name])

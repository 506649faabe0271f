"""YouTube-8M metrics with the definitions of the official starter code (google/youtube-8m eval_util).

All functions take ``predictions`` and ``labels`` as arrays [videos, classes] (labels 0/1) and are
vectorised numpy; the full matrices are read in their own dtype and everything after the per-video
top-k selection is computed in float64.

- Hit@1: mean over videos of labels[v, argmax_c predictions[v, c]].
- PERR: for a video with k > 0 labels, the fraction of its labels among its top-k predictions that are
  > 0; a video without labels counts 0.
- GAP@k: every video's top-k (score, label) pairs are pooled and sorted by score, then
  GAP = sum_i P(i) rel(i) / N_pos, where P(i) is the precision of the first i pooled pairs and N_pos
  counts ALL positive labels, including those outside any video's top k.
- mAP@k: for each class, the AP of its entries among the per-video top-k pairs, divided by all of its
  positives; averaged over the classes that have at least one positive (the current starter code's
  ``filter_empty_classes=True``).

Pooled pairs with equal scores count as one threshold, as in scikit-learn's
``average_precision_score``: precision is taken once the whole group of tied pairs is in, so GAP and
mAP do not depend on the order in which videos arrive (the starter code breaks ties with a seeded
shuffle, which changes the last digits when scores tie; without ties the definitions agree).
:class:`MetricAccumulator` keeps integer counts and sums per-video values with ``math.fsum``, so its
results are bit-identical whatever the batches, their order and how accumulators are merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MetricAccumulator", "gap", "hit_at_one", "mean_average_precision", "perr", "top_k_pairs"]


def _as_arrays(predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if not np.issubdtype(predictions.dtype, np.floating):
        predictions = predictions.astype(np.float64)
    if predictions.ndim != 2 or predictions.shape != labels.shape:
        raise ValueError(
            f"predictions and labels must both be [videos, classes], got {predictions.shape}, {labels.shape}"
        )
    return predictions, labels


def top_k_pairs(predictions: np.ndarray, labels: np.ndarray, top_k: int = 20):
    """Each video's ``top_k`` highest-scoring classes: (classes, scores, labels), each [videos, k].

    Among classes tied with the k-th score the lowest class indices are taken (as a stable sort by
    descending score would), so a video's pairs depend on its own row only. Classes come out sorted.
    """
    predictions, labels = _as_arrays(predictions, labels)
    if top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    videos, num_classes = predictions.shape
    k = min(top_k, num_classes)
    kth = np.partition(predictions, num_classes - k, axis=1)[:, num_classes - k : num_classes - k + 1]
    above, tied = predictions > kth, predictions == kth
    wanted = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= wanted))
    classes = np.nonzero(chosen)[1].reshape(videos, k)
    scores = np.take_along_axis(predictions, classes, 1).astype(np.float64)
    return classes, scores, np.take_along_axis(labels, classes, 1).astype(np.float64)


def _tie_group_ends(*keys: np.ndarray) -> np.ndarray:
    """Indices of the last entry of each run of equal ``keys`` (arrays already sorted by them)."""
    changes = np.zeros(len(keys[0]), dtype=bool)
    changes[-1:] = True
    for key in keys:
        changes[:-1] |= key[1:] != key[:-1]
    return np.flatnonzero(changes)


def _average_precision(scores: np.ndarray, relevant: np.ndarray, positives: float) -> float:
    """sum over tie groups g of hits(g) P(end of g) / positives, pairs sorted by descending score."""
    if positives <= 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    scores, cumulative = scores[order], np.cumsum(relevant[order] > 0)
    ends = _tie_group_ends(scores)
    hits = np.diff(cumulative[ends], prepend=0)
    return float((hits * cumulative[ends] / (ends + 1)).sum() / positives)


def _class_average_precisions(classes, scores, relevant, positives_per_class) -> np.ndarray:
    """AP of every class over its own pooled entries (one lexsort for all classes, ties grouped)."""
    num_classes = len(positives_per_class)
    order = np.lexsort((-scores, classes))  # by class, then by descending score
    classes, scores, cumulative = classes[order], scores[order], np.cumsum(relevant[order] > 0)
    ends = _tie_group_ends(classes, scores)
    starts = np.searchsorted(classes, np.arange(num_classes))[classes[ends]]
    before_class = np.concatenate([[0], cumulative])[starts]
    precision = (cumulative[ends] - before_class) / (ends - starts + 1)
    hits = np.diff(cumulative[ends], prepend=0)
    sums = np.bincount(classes[ends], weights=precision * hits, minlength=num_classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(positives_per_class > 0, sums / positives_per_class, 0.0)


def gap(predictions: np.ndarray, labels: np.ndarray, top_k: int = 20) -> float:
    """Global average precision of the pooled per-video top-k predictions (YouTube-8M's GAP@20)."""
    _, scores, relevant = top_k_pairs(predictions, labels, top_k)
    return _average_precision(scores.ravel(), relevant.ravel(), float(np.sum(labels, dtype=np.float64)))


def _hits_at_one(predictions: np.ndarray, labels: np.ndarray) -> int:
    return int(np.count_nonzero(labels[np.arange(len(labels)), np.argmax(predictions, axis=1)]))


def hit_at_one(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of videos whose top prediction is one of their labels."""
    predictions, labels = _as_arrays(predictions, labels)
    return _hits_at_one(predictions, labels) / len(labels) if len(labels) else 0.0


def _perr_per_video(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    num_labels = np.count_nonzero(labels, axis=1)
    deepest = int(num_labels.max(initial=0))
    if deepest == 0:
        return np.zeros(len(labels))
    classes, scores, relevant = top_k_pairs(predictions, labels, deepest)
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant * (scores > 0), order, 1).cumsum(axis=1)
    found = hits[np.arange(len(labels)), np.maximum(num_labels - 1, 0)]
    return np.where(num_labels > 0, found / np.maximum(num_labels, 1), 0.0)


def perr(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Precision at equal recall rate: precision of each video's top-k, k = its number of labels."""
    predictions, labels = _as_arrays(predictions, labels)
    return float(np.mean(_perr_per_video(predictions, labels)))


def mean_average_precision(predictions: np.ndarray, labels: np.ndarray, top_k: int = 20) -> float:
    """Mean over classes with positives of the AP of their entries among the per-video top-k."""
    predictions, labels = _as_arrays(predictions, labels)
    classes, scores, relevant = top_k_pairs(predictions, labels, top_k)
    positives = labels.sum(axis=0, dtype=np.float64)
    aps = _class_average_precisions(classes.ravel(), scores.ravel(), relevant.ravel(), positives)
    return float(aps[positives > 0].mean()) if np.any(positives > 0) else 0.0


@dataclass
class MetricAccumulator:
    """Streaming GAP@k, Hit@1, PERR and mAP@k whose results do not depend on how videos are batched.

    It keeps each video's top-k (class, score, label) triples (k floats per video), so the final
    sort is exact, as the starter code's unbounded heap is.
    """

    num_classes: int
    top_k: int = 20
    videos: int = 0
    _hits_at_one: int = 0
    _perr: list = field(default_factory=list)
    _positives: np.ndarray = field(init=False)
    _pairs: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self._positives = np.zeros(self.num_classes)

    def update(self, predictions: np.ndarray, labels: np.ndarray) -> None:
        predictions, labels = _as_arrays(predictions, labels)
        if predictions.shape[1] != self.num_classes:
            raise ValueError(
                f"expected {self.num_classes} classes, got predictions of shape {predictions.shape}"
            )
        self.videos += len(predictions)
        self._hits_at_one += _hits_at_one(predictions, labels)
        self._perr.append(_perr_per_video(predictions, labels))
        self._positives += labels.sum(axis=0, dtype=np.float64)
        classes, scores, relevant = top_k_pairs(predictions, labels, self.top_k)
        self._pairs.append(
            (classes.ravel().astype(np.int32), scores.ravel(), relevant.ravel().astype(np.int8))
        )

    def merge(self, other: MetricAccumulator) -> None:
        """Add another accumulator's videos (another rank's share of the data)."""
        if (other.num_classes, other.top_k) != (self.num_classes, self.top_k):
            raise ValueError("cannot merge accumulators with different classes or top_k")
        self.videos += other.videos
        self._hits_at_one += other._hits_at_one
        self._perr.extend(other._perr)
        self._positives += other._positives
        self._pairs.extend(other._pairs)

    def result(self) -> dict[str, float]:
        if self.videos == 0:
            raise ValueError("no predictions were accumulated")
        classes, scores, relevant = (np.concatenate(parts) for parts in zip(*self._pairs, strict=True))
        present = self._positives > 0
        aps = _class_average_precisions(classes, scores, relevant, self._positives)
        return {
            "gap": _average_precision(scores, relevant, float(self._positives.sum())),
            "hit_at_one": self._hits_at_one / self.videos,
            "perr": math.fsum(np.concatenate(self._perr)) / self.videos,
            "map": float(aps[present].mean()) if present.any() else 0.0,
            "videos": self.videos,
        }

"""Independent computations the tests compare the library against: plain loops in float64, the definitions
written out, no compactvideo code."""

import math

import numpy as np
import torch


def metrics_oracle(predictions, labels, top_k: int = 20) -> dict[str, float]:
    """The YouTube-8M starter code's GAP@k, Hit@1, PERR and mAP@k with Python loops, in float64:
    per-video top-k triplets, pooled (GAP) or per class (mAP) average precisions over all positives."""
    predictions, labels = np.asarray(predictions, dtype=np.float64), np.asarray(labels)
    num_videos, num_classes = predictions.shape
    k = min(top_k, num_classes)
    triplets = []
    for v in range(num_videos):
        for c in sorted(range(num_classes), key=lambda c: -predictions[v, c])[:k]:
            triplets.append((c, predictions[v, c], labels[v, c]))

    def ap(pairs, positives):
        """Each distinct score is one threshold: its tied pairs enter together."""
        if positives == 0:
            return 0.0
        total, hits, seen = 0.0, 0, 0
        for threshold in sorted({score for score, _ in pairs}, reverse=True):
            tied = [rel for score, rel in pairs if score == threshold]
            new_hits = sum(1 for rel in tied if rel > 0)
            hits, seen = hits + new_hits, seen + len(tied)
            total += new_hits * hits / seen
        return total / positives

    hit1 = np.mean([labels[v, int(np.argmax(predictions[v]))] for v in range(num_videos)])
    perrs = []
    for v in range(num_videos):
        n = int(labels[v].sum())
        top = sorted(range(num_classes), key=lambda c: -predictions[v, c])[:n]
        perrs.append(sum(labels[v, c] for c in top if predictions[v, c] > 0) / n if n else 0.0)
    class_aps = [
        ap([(s, r) for c2, s, r in triplets if c2 == c], labels[:, c].sum())
        for c in range(num_classes)
        if labels[:, c].sum() > 0
    ]
    return {
        "gap": ap([(s, r) for _, s, r in triplets], labels.sum()),
        "hit_at_one": hit1,
        "perr": np.mean(perrs),
        "map": np.mean(class_aps),
    }


def multi_hot(label_lists, num_classes: int) -> np.ndarray:
    """[videos, classes] 0/1 matrix of each video's label list."""
    labels = np.zeros((len(label_lists), num_classes), dtype=np.int64)
    for row, classes in enumerate(label_lists):
        labels[row, list(classes)] = 1
    return labels


def popularity_gap(train_labels: np.ndarray, valid_labels: np.ndarray) -> float:
    """GAP@20 of the best input-blind predictor: every validation video scored by the training label
    frequencies (the floor a classifier that learned anything beats)."""
    frequencies = train_labels.mean(axis=0)
    return metrics_oracle(np.tile(frequencies, (len(valid_labels), 1)), valid_labels)["gap"]


def starter_code_cross_entropy(probabilities, labels, epsilon: float = 1e-5) -> float:
    """-(1/B) sum_b sum_c [y log(p + eps) + (1 - y) log(1 - p + eps)], term by term in float64."""
    total = 0.0
    rows = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    for p_row, y_row in zip(*rows, strict=True):
        for p, y in zip(p_row, y_row, strict=True):
            total += y * math.log(p + epsilon) + (1 - y) * math.log(1 - p + epsilon)
    return -total / len(rows[0])


def softmax_cross_entropy(logits, labels) -> float:
    """Mean over examples of log(sum_c exp z_c) - z_label, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    losses = [
        math.log(sum(math.exp(z) for z in row)) - row[label]
        for row, label in zip(logits, labels, strict=True)
    ]
    return sum(losses) / len(losses)


def low_multilinear_rank_kernel(
    out_channels: int, in_channels: int, kernel, rank_out: int, rank_in: int, seed: int = 0
) -> torch.Tensor:
    """A float64 kernel W = G x_0 U_out x_1 U_in [out, in, *kernel] of multilinear rank (rank_out, rank_in)
    on its channel modes, so Tucker-2 at those ranks reproduces it exactly."""
    generator = torch.Generator().manual_seed(seed)
    core = torch.randn(rank_out, rank_in, *kernel, generator=generator, dtype=torch.float64)
    u_out = torch.randn(out_channels, rank_out, generator=generator, dtype=torch.float64)
    u_in = torch.randn(in_channels, rank_in, generator=generator, dtype=torch.float64)
    return torch.einsum("ab...,ta,sb->ts...", core, u_out, u_in)

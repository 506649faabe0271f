"""The reproduction's figures, drawn with matplotlib's Agg backend (no display needed) as PNG files.

- :func:`gap_curves`: validation GAP@20 against training examples seen, one line per model (the mean over
  seeds, with a band from the lowest to the highest seed), as in Araujo et al.'s figures;
- :func:`weights_against_gap`: the paper's "benchmark of compact models", weights against GAP, the
  published points and ours side by side;
- :func:`speed_curves`: time of a dense and a circulant n x n layer against n on log-log axes, with
  reference lines growing as n^2 and n log n (Cheng et al.'s O(n^2) against O(n log n)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)


def gap_curves(
    curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]],
    published: Mapping[str, float | None],
    path: Path,
    title: str,
) -> None:
    """One line per label: the seeds' validation curves, averaged point by point (seeds validate at the
    same steps), with the range over seeds shaded; the legend gives the paper's peak GAP."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.8, 4.4))
    for index, (label, seeds) in enumerate(curves.items()):
        length = min(len(curve) for curve in seeds)
        if length == 0:
            continue
        examples = np.mean([[x for x, _ in curve[:length]] for curve in seeds], axis=0)
        values = np.array([[y for _, y in curve[:length]] for curve in seeds])
        paper = published.get(label)
        name = label if paper is None else f"{label} (paper {paper:.3f})"
        axes.plot(examples, values.mean(axis=0), marker="o", markersize=3, color=f"C{index}", label=name)
        if len(seeds) > 1:
            axes.fill_between(examples, values.min(axis=0), values.max(axis=0), color=f"C{index}", alpha=0.15)
    axes.set_xlabel("training examples seen")
    axes.set_ylabel("validation GAP@20")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)


def weights_against_gap(
    ours: Sequence[tuple[str, int, float, float | None]],
    published: Sequence[tuple[str, float, float]],
    path: Path,
    title: str,
) -> None:
    """Left: the paper's points (label, millions of weights, GAP); right: ours (label, parameters, mean
    GAP, spread over seeds as an error bar). Points are numbered in the order given, on both panels."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for index, (label, millions, gap) in enumerate(published, 1):
        left.scatter(millions, gap, color=f"C{index - 1}", label=f"{index}. {label}")
        left.annotate(str(index), (millions, gap), xytext=(4, 3), textcoords="offset points", fontsize=8)
    for index, (_, parameters, gap, spread) in enumerate(ours, 1):
        right.errorbar(parameters / 1e6, gap, yerr=spread or 0.0, fmt="o", color=f"C{index - 1}", capsize=3)
        right.annotate(
            str(index), (parameters / 1e6, gap), xytext=(4, 3), textcoords="offset points", fontsize=8
        )
    left.set_title("published (YouTube-8M, Araujo et al. 2018)", fontsize=10)
    right.set_title(title, fontsize=10)
    for axes in (left, right):
        axes.set_xlabel("weights (millions)")
        axes.set_ylabel("validation GAP@20")
        axes.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower right")
    _save(figure, path)


def speed_curves(measurements: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """One panel per batch size: milliseconds against n for every (layer, pass), log-log, with dotted
    reference lines c n^2 and c n log n through the forward+backward time of the dense and the
    circulant layer at the largest n (where fixed per-call costs matter least)."""
    plt = _pyplot()
    batches = sorted({m["batch"] for m in measurements})
    figure, panels = plt.subplots(1, len(batches), figsize=(5.4 * len(batches), 4.4), squeeze=False)
    styles = {"forward": "--", "forward+backward": "-"}
    colours = {"dense": "C0", "circulant": "C1"}
    for axes, batch in zip(panels[0], batches, strict=True):
        for layer, colour in colours.items():
            for kind, style in styles.items():
                points = sorted(
                    (m["n"], m["ms"])
                    for m in measurements
                    if m["batch"] == batch and m["layer"] == layer and m["pass"] == kind
                )
                if points:
                    n, ms = zip(*points, strict=True)
                    axes.plot(n, ms, style, marker="o", markersize=3, color=colour, label=f"{layer}, {kind}")
        for layer, law, name in (
            ("dense", lambda n: n * n, "n^2"),
            ("circulant", lambda n: n * math.log2(n), "n log n"),
        ):
            points = sorted(
                (m["n"], m["ms"])
                for m in measurements
                if m["batch"] == batch and m["layer"] == layer and m["pass"] == "forward+backward"
            )
            if points:
                sizes = np.array([n for n, _ in points], dtype=float)
                scale = points[-1][1] / law(sizes[-1])
                axes.plot(sizes, scale * np.array([law(n) for n in sizes]), ":", color="0.5", linewidth=1)
                axes.annotate(name, (sizes[0], scale * law(sizes[0])), fontsize=8, color="0.4")
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel("n (n x n layer)")
        axes.set_ylabel("milliseconds per call (1 thread)")
        axes.set_title(f"{title}, batch {batch}", fontsize=10)
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=7)
    _save(figure, path)

"""Rows of a reproduction, ours beside the published number, and the file that keeps them.

A :class:`Row` is one number of one experiment: ``ours`` (the mean over seeds when several were
trained, with their ``spread``) beside ``published`` (``None`` where the paper gives no such number).
``DIR/results.json`` holds the rows of every finished experiment as a JSON list of objects with the keys
``paper, experiment, row, metric, ours, published, unit`` (and ``spread, seeds, note``); an experiment's
rows are replaced together, and the file is rewritten atomically, so an interrupted run never leaves a
half-written file behind.

Seed statistics: with per-seed values v_1..v_S, ``ours`` is their mean and ``spread`` their sample
standard deviation sqrt(sum (v_s - mean)^2 / (S - 1)) (``None`` for one seed). Two rows trained on the
same S seeds are compared seed by seed: the difference row holds the mean of b_s - a_s, and the
difference is *within noise* when its magnitude is below the larger of the two rows' spreads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compactvideo.errors import CompactVideoError

ROW_KEYS = ("paper", "experiment", "row", "metric", "ours", "published", "unit")


class ResultsFileError(CompactVideoError):
    """A results file that cannot be read back (damaged, or written by something else)."""


@dataclass(frozen=True)
class Row:
    """One number of one experiment: ours (mean over ``seeds`` seeds, with ``spread``) and the paper's."""

    paper: str
    experiment: str
    row: str
    metric: str
    ours: float | None
    published: float | None
    unit: str = ""
    spread: float | None = None
    seeds: int | None = None
    note: str = ""

    @property
    def difference(self) -> float | None:
        """ours - published, when both exist."""
        if self.ours is None or self.published is None:
            return None
        return self.ours - self.published

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SeedStats:
    """Mean and sample standard deviation of one quantity over seeds."""

    mean: float
    spread: float | None
    seeds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> SeedStats:
        if not values:
            raise ValueError("seed statistics need at least one value")
        mean = math.fsum(values) / len(values)
        if len(values) == 1:
            return cls(mean, None, 1)
        variance = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
        return cls(mean, math.sqrt(variance), len(values))


def paired_difference(reference: Sequence[float], other: Sequence[float]) -> SeedStats:
    """Statistics of other_s - reference_s over the seeds both rows were trained with."""
    if len(reference) != len(other):
        raise ValueError(f"paired rows need the same seeds, got {len(reference)} and {len(other)} values")
    return SeedStats.of([b - a for a, b in zip(reference, other, strict=True)])


def noise_note(difference: SeedStats, reference: SeedStats, other: SeedStats) -> str:
    """'within noise' when |mean difference| < the larger seed-to-seed spread; why not, when unknown."""
    spreads = [s.spread for s in (reference, other) if s.spread is not None]
    if not spreads:
        return "one seed: seed-to-seed spread unknown"
    largest = max(spreads)
    if abs(difference.mean) >= largest:
        return f"beyond noise (seed spread {largest:.3f})"
    note = f"within noise (|difference| < seed spread {largest:.3f})"
    return note if difference.seeds >= 3 else f"{note}; fewer than 3 seeds: too few to tell"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path``, or a :class:`ResultsFileError` naming the file and the problem."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResultsFileError(
            f"{path}: damaged {what} (line {error.lineno}, column {error.colno}: {error.msg}); "
            "delete it to recompute"
        ) from error


class ResultStore:
    """``DIR/results.json``: the rows of every finished experiment, replaced experiment by experiment."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows = self._load() if self.path.exists() else []

    def _load(self) -> list[Row]:
        data = read_json(self.path, "results file")
        if not isinstance(data, list):
            raise ResultsFileError(f"{self.path}: expected a JSON list of rows, got {type(data).__name__}")
        fields = {field.name for field in dataclasses.fields(Row)}
        rows = []
        for index, item in enumerate(data):
            if not isinstance(item, dict) or not set(ROW_KEYS) <= set(item) or not set(item) <= fields:
                raise ResultsFileError(
                    f"{self.path}: row {index} must be an object with the keys {', '.join(ROW_KEYS)} "
                    f"(optionally spread, seeds, note), got {item!r}"
                )
            rows.append(Row(**item))
        return rows

    def rows(self, paper: str | None = None, experiment: str | None = None) -> list[Row]:
        """The stored rows, optionally of one paper and one experiment, in the order they were stored."""
        return [
            row
            for row in self._rows
            if (paper is None or row.paper == paper) and (experiment is None or row.experiment == experiment)
        ]

    def finished(self, paper: str, experiment: str) -> bool:
        return bool(self.rows(paper, experiment))

    def replace(self, paper: str, experiment: str, rows: Sequence[Row]) -> None:
        """Store ``rows`` as the experiment's (dropping its earlier rows) and rewrite the file."""
        stray = [row for row in rows if (row.paper, row.experiment) != (paper, experiment)]
        if stray:
            raise ValueError(f"rows of {paper}/{experiment} include rows of other experiments: {stray[0]}")
        kept = [row for row in self._rows if (row.paper, row.experiment) != (paper, experiment)]
        self._rows = kept + list(rows)
        write_json_atomic(self.path, [row.to_dict() for row in self._rows])

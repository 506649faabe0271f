"""What an experiment is, the options of a reproduction, and what an experiment sees while it runs.

An :class:`Experiment` names one table or figure of a paper. It may ask for training runs
(:class:`Job`: a folder name under ``DIR/runs`` from the experiment's spec, a module-level function and
its JSON arguments), which the runner trains first (several at once, or one after the other) and reuses
when finished; its ``rows`` function then turns the finished runs, or its own measurements, into
:class:`~compactvideo.reproduce.results.Row` objects and, where the paper has a figure, a PNG.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compactvideo.demo import DemoOptions, make_data
from compactvideo.errors import CompactVideoError, check_at_least
from compactvideo.reproduce.results import Row

SCALES = ("demo", "paper")

# The demo scale's data set and per-run budget: the demo's recipe (Adam 6e-3 halved four times, four
# validations, the best kept) on a budget that lets every araujo2018 experiment, three seeds each, finish
# within an hour on two CPU cores (see ``compactvideo reproduce --list``).
DEMO_BUDGET = DemoOptions(train_videos=8000, valid_videos=1000, classes=100, max_frames=60, examples=8000)


class ExperimentUnavailable(CompactVideoError):
    """An input the experiment needs is missing (e.g. published weights); it is skipped, not failed."""


@dataclass(frozen=True)
class ReproduceOptions:
    """How a reproduction runs.

    - ``scale``: "demo" (synthetic data written by the command, or ``train``/``valid``, and the
      ``budget`` per run) or "paper" (the papers' hyper-parameters on real data, under ``torchrun``).
    - ``seeds``: training runs per row (default 3 at demo scale, 1 at paper scale); rows of one
      comparison share the seeds 0..seeds-1, hence their data order and initialisation.
    - ``workers``: training runs at once at demo scale (each on one thread).
    - ``nproc_per_node``: processes (GPUs) per paper-scale run.
    - ``thetis_weights``: the published THETIS network (``../shared/fixtures``) for rasmussen2022.
    """

    scale: str = "demo"
    seeds: int | None = None
    budget: DemoOptions = field(default_factory=lambda: dataclasses.replace(DEMO_BUDGET))
    train: str | None = None
    valid: str | None = None
    workers: int = 1
    nproc_per_node: int = 1
    thetis_weights: Path | None = None

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise CompactVideoError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if (self.train is None) != (self.valid is None):
            raise CompactVideoError("give both --train and --valid, or neither")
        if self.scale == "paper" and self.train is None:
            raise CompactVideoError(
                "--scale paper trains on real data: give --train and --valid (YouTube-8M frame-level "
                "shards for araujo2018 and cheng2015, THETIS clip folders for rasmussen2022)"
            )
        for name in ("seeds", "workers", "nproc_per_node"):
            check_at_least(name, getattr(self, name), 1)

    @property
    def seed_list(self) -> list[int]:
        """The seeds every trained row uses."""
        count = self.seeds if self.seeds is not None else (3 if self.scale == "demo" else 1)
        return list(range(count))

    def settings(self) -> dict[str, Any]:
        """What the results depend on (kept in ``DIR/reproduce.json``; a later call must match it)."""
        settings: dict[str, Any] = {"scale": self.scale, "seeds": len(self.seed_list)}
        if self.scale == "demo":
            budget = dataclasses.asdict(self.budget)
            settings["budget"] = {name: value for name, value in budget.items() if name != "models"}
        else:
            settings["nproc_per_node"] = self.nproc_per_node
        return settings | {"train": self.train, "valid": self.valid}


@dataclass(frozen=True)
class Job:
    """One training run: ``function(run_dir, **arguments)`` fills ``DIR/runs/<key>`` and writes its
    ``result.json`` last. ``arguments`` are JSON values; a finished run is reused only when they match."""

    key: str
    function: Callable[..., None]
    arguments: dict[str, Any]


@dataclass
class Context:
    """What an experiment sees: the output folder, the options, and the data (written on first use)."""

    out: Path
    options: ReproduceOptions
    _frame_data: dict[float, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def scale(self) -> str:
        return self.options.scale

    @property
    def classes(self) -> int:
        """Classes of the frame-level data at demo scale (``budget.classes``; 3,862 for YouTube-8M)."""
        return self.options.budget.classes

    def frame_data(self, outlier_frames: float = 0.0) -> tuple[str, str]:
        """(train, valid) patterns of frame-level records: the user's, or synthetic ones written once
        (under ``DIR/data``; with ``outlier_frames``, a harder variant under ``DIR/outlier-frames-Q``)."""
        if outlier_frames not in self._frame_data:
            if self.options.train is not None:
                if outlier_frames:
                    raise ExperimentUnavailable("outlier frames are a setting of the synthetic data only")
                self._frame_data[outlier_frames] = (self.options.train, self.options.valid)
            else:
                folder = self.out / f"outlier-frames-{outlier_frames:g}" if outlier_frames else self.out
                self._frame_data[outlier_frames] = make_data(folder, self.options.budget, outlier_frames)
        return self._frame_data[outlier_frames]

    def run_dir(self, key: str) -> Path:
        return self.out / "runs" / key

    def figure_path(self, paper: str, experiment: str) -> Path:
        return self.out / "figures" / f"{paper}-{experiment}.png"


def _no_jobs(context: Context) -> list[Job]:
    return []


@dataclass(frozen=True)
class Experiment:
    """One table or figure of a paper.

    ``demo_minutes``: estimated wall time at demo scale on two CPU cores, counting only the runs that no
    experiment listed before it in its paper also trains. ``notes`` are printed above its table.
    """

    paper: str
    name: str
    title: str
    demo_minutes: float
    rows: Callable[[Context], list[Row]]
    jobs: Callable[[Context], list[Job]] = _no_jobs
    figure: bool = False
    notes: tuple[str, ...] = ()

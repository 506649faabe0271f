"""Running a reproduction into a folder, resumably.

``reproduce(paper, out, options, experiments)``:

1. checks ``DIR/reproduce.json``, which records what the results depend on (scale, seeds, data, budget):
   a folder holds one reproduction, and a later call with other settings is refused rather than mixed in;
2. skips every experiment that already has rows in ``DIR/results.json`` (finished experiments are not
   recomputed);
3. trains the runs the other experiments need, each once, however many experiments share it
   (:func:`~compactvideo.reproduce.runs.run_jobs`: finished runs reused, interrupted ones resumed);
4. computes each experiment's rows and figures in this process, one experiment at a time (so timings
   never share the machine with training), and stores them as soon as each is done;
5. rewrites ``DIR/report.md`` from every stored row.

An experiment whose input is missing (:class:`~compactvideo.reproduce.experiment.ExperimentUnavailable`,
e.g. the published THETIS weights) is reported as not run, with the reason, and tried again next time.
"""

from __future__ import annotations

import shlex
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compactvideo.errors import CompactVideoError
from compactvideo.profiling import describe_machine
from compactvideo.reproduce import araujo2018, cheng2015, rasmussen2022
from compactvideo.reproduce.experiment import (
    Context,
    Experiment,
    ExperimentUnavailable,
    Job,
    ReproduceOptions,
)
from compactvideo.reproduce.report import render_report
from compactvideo.reproduce.results import ResultStore, Row, read_json, write_json_atomic
from compactvideo.reproduce.runs import run_jobs, unique_jobs

PAPERS: dict[str, list[Experiment]] = {
    araujo2018.PAPER: araujo2018.EXPERIMENTS,
    cheng2015.PAPER: cheng2015.EXPERIMENTS,
    rasmussen2022.PAPER: rasmussen2022.EXPERIMENTS,
}
ALL_EXPERIMENTS = [experiment for experiments in PAPERS.values() for experiment in experiments]


def select(paper: str, names: Sequence[str] | None = None) -> list[Experiment]:
    """The experiments of ``paper`` named in ``names`` (all by default), in the paper's order."""
    if paper not in PAPERS:
        raise CompactVideoError(f"unknown paper {paper!r}; choose one of {', '.join(PAPERS)}")
    known = {experiment.name: experiment for experiment in PAPERS[paper]}
    unknown = [name for name in names or () if name not in known]
    if unknown:
        raise CompactVideoError(
            f"{paper} has no experiment {', '.join(map(repr, unknown))}; its experiments: {', '.join(known)}"
        )
    return [experiment for experiment in PAPERS[paper] if names is None or experiment.name in names]


class Manifest:
    """``DIR/reproduce.json``: the settings the results depend on, wall times, and skipped experiments."""

    def __init__(self, out: Path, options: ReproduceOptions) -> None:
        self.path = out / "reproduce.json"
        settings = options.settings()
        self.data: dict[str, Any] = {"settings": settings, "seconds": {}, "skipped": {}}
        if self.path.exists():
            stored = read_json(self.path, "reproduction manifest")
            if stored.get("settings") != settings:
                before = stored.get("settings", {})
                changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
                raise CompactVideoError(
                    f"{out} holds a reproduction with other settings ({', '.join(changed)} differ: "
                    f"{', '.join(f'{k}={before.get(k)!r}' for k in changed)}); choose another --out"
                )
            self.data = stored

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def _header(manifest: Manifest) -> list[str]:
    settings = manifest.data["settings"]
    seeds = settings["seeds"]
    if settings["scale"] == "demo":
        budget = settings["budget"]
        data = (
            f"synthetic YouTube-8M records written by compactvideo ({budget['train_videos']:,} training and "
            f"{budget['valid_videos']:,} validation videos, {budget['classes']} classes, up to "
            f"{budget['max_frames']} frames)"
            if settings["train"] is None
            else f"training {settings['train']}, validation {settings['valid']}"
        )
        lines = [
            f"Scale: **demo**. Data: {data}. Every frame-level model trains for {budget['examples']:,} "
            f"examples (batch {budget['batch_size']}, Adam at {budget['learning_rate']:g} multiplied by "
            f"{budget['lr_decay']:g} {budget['lr_decays']} times, {budget['validations']} validations, the "
            f"best kept) with each of {seeds} seed(s); rows compared in one table share the seeds.",
        ]
    else:
        lines = [
            f"Scale: **paper**. Training data {settings['train']}, validation {settings['valid']}; "
            f"{settings['nproc_per_node']} process(es) per run, {seeds} seed(s).",
        ]
    seconds = manifest.data["seconds"]
    if seconds:
        times = ", ".join(f"{key} {value / 60:.1f} min" for key, value in seconds.items())
        lines.append(f"Wall time: {times}; total {sum(seconds.values()) / 60:.1f} min.")
    lines.append(f"Machine: {describe_machine()}.")
    return ["", *(f"{line}\n" for line in lines)]


def write_plan(jobs: Sequence[Job], out: Path) -> Path:
    """``DIR/plan.json`` (every run's function and arguments) and, for runs launched by a command line,
    ``DIR/plan.sh`` with those lines, their model configs written beside them; returns the script."""
    records = []
    lines = [
        "#!/bin/sh",
        "# The paper-scale training runs of this reproduction, one torchrun each.",
        "set -e",
    ]
    for job in unique_jobs(jobs):
        records.append({"key": job.key, "function": job.function.__qualname__, "arguments": job.arguments})
        if "command" in job.arguments:
            run_dir = out / "runs" / job.key
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(run_dir / "model.json", job.arguments["config"])
            lines.append(shlex.join(job.arguments["command"]))
    write_json_atomic(out / "plan.json", records)
    script = out / "plan.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def reproduce(
    paper: str,
    out: str | Path,
    options: ReproduceOptions | None = None,
    experiments: Sequence[str] | None = None,
    plan_only: bool = False,
) -> list[Row]:
    """Reproduce ``paper``'s ``experiments`` (all by default) into ``out`` (see the module docstring);
    return their rows. ``plan_only``: write the training plan (``plan.json``, ``plan.sh``) and stop."""
    options = options or ReproduceOptions()
    chosen = select(paper, experiments)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, options)
    manifest.save()
    context = Context(out, options)
    store = ResultStore(out / "results.json")
    pending = [experiment for experiment in chosen if not store.finished(experiment.paper, experiment.name)]
    jobs = [job for experiment in pending for job in experiment.jobs(context)]
    if plan_only:
        write_plan(jobs, out)
        return store.rows(paper)
    seconds, skipped = manifest.data["seconds"], manifest.data["skipped"]
    if jobs:
        started = time.perf_counter()
        run_jobs(jobs, out / "runs", options.workers if options.scale == "demo" else 1)
        seconds[f"{paper} training runs"] = (
            seconds.get(f"{paper} training runs", 0.0) + time.perf_counter() - started
        )
        manifest.save()
    for experiment in pending:
        key = f"{experiment.paper}/{experiment.name}"
        started = time.perf_counter()
        try:
            rows = experiment.rows(context)
        except ExperimentUnavailable as missing:
            skipped[key] = str(missing)
            warnings.warn(f"{key} not run: {missing}", stacklevel=2)
            manifest.save()
            continue
        store.replace(experiment.paper, experiment.name, rows)
        skipped.pop(key, None)
        seconds[key] = time.perf_counter() - started
        manifest.save()
    report = render_report(store.rows(), ALL_EXPERIMENTS, out, _header(manifest), skipped)
    (out / "report.md").write_text(report)
    return [row for experiment in chosen for row in store.rows(experiment.paper, experiment.name)]


def format_listing() -> str:
    """Every experiment with its estimated wall time at demo scale on two CPU cores."""
    lines = [f"{'paper':<14} {'experiment':<12} {'minutes':>7}  {'figure':<6}  what it reproduces"]
    for paper, experiments in PAPERS.items():
        for experiment in experiments:
            lines.append(
                f"{paper:<14} {experiment.name:<12} {experiment.demo_minutes:>7.1f}  "
                f"{'PNG' if experiment.figure else '':<6}  {experiment.title}"
            )
        total = sum(experiment.demo_minutes for experiment in experiments)
        lines.append(f"{paper:<14} {'(all)':<12} {total:>7.1f}")
    lines.append(
        "\nminutes: estimated wall time at demo scale (3 seeds) on 2 CPU cores, one run per core; a run "
        "shared with an experiment listed before it in its paper is counted there only."
    )
    return "\n".join(lines)

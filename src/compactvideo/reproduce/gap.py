"""GAP experiments: frame-level models trained on the same seeds, compared with a reference row.

Each :class:`Entry` names a model of a paper module's catalogue and the paper's GAP@20 for it. Every
entry is trained once per seed (run folder ``<model>-seed<s>``, shared by every experiment that trains
the same model): at demo scale in this process or a worker (:func:`~compactvideo.reproduce.runs.
train_frame_model`), at paper scale by ``torchrun`` (:func:`~compactvideo.reproduce.plan.train_command`).
A model's score is its peak validation GAP@20, as the papers report each curve's peak.

Rows: "GAP@20" for every entry (mean and spread over seeds) beside the paper's, and for every other
entry "GAP@20 - <reference>", the seed-by-seed difference to the reference entry beside the paper's
difference, marked within or beyond noise (:func:`~compactvideo.reproduce.results.noise_note`). The
figure plots validation GAP against training examples seen for every entry, as the papers' figures do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from compactvideo.reproduce import figures
from compactvideo.reproduce.experiment import Context, Job
from compactvideo.reproduce.plan import paper_training, train_command
from compactvideo.reproduce.results import Row, SeedStats, noise_note, paired_difference
from compactvideo.reproduce.runs import best_gap, torchrun_train, train_frame_model, validation_curve

ConfigFor = Callable[[str, Context], Any]
GAP = "GAP@20"


@dataclass(frozen=True)
class Entry:
    """One row of a GAP experiment: ``model`` (a catalogue key) and the paper's GAP@20 for it, trained
    on the synthetic data with ``outlier_frames`` (:mod:`compactvideo.data.synthetic`) when not 0."""

    label: str
    model: str
    published: float | None
    outlier_frames: float = 0.0


def run_key(entry: Entry, seed: int) -> str:
    data = f"-outliers{entry.outlier_frames:g}" if entry.outlier_frames else ""
    return f"{entry.model}{data}-seed{seed}"


def frame_jobs(entries: Sequence[Entry], config_for: ConfigFor, context: Context) -> list[Job]:
    """One training run per entry and seed, at the context's scale."""
    jobs = []
    for entry in entries:
        train_data, valid_data = context.frame_data(entry.outlier_frames)
        config = config_for(entry.model, context).to_dict()
        for seed in context.options.seed_list:
            key = run_key(entry, seed)
            if context.scale == "demo":
                budget = dataclasses.asdict(dataclasses.replace(context.options.budget, seed=seed))
                budget.pop("models")
                arguments = {
                    "config": config,
                    "budget": budget,
                    "train_data": train_data,
                    "valid_data": valid_data,
                }
                jobs.append(Job(key, train_frame_model, arguments))
            else:
                run_dir = context.run_dir(key)
                processes = context.options.nproc_per_node
                options = paper_training(processes, seed)
                command = train_command(
                    run_dir / "model.json", train_data, valid_data, run_dir, options, processes
                )
                jobs.append(Job(key, torchrun_train, {"config": config, "command": command}))
    return jobs


def seed_gaps(entry: Entry, context: Context) -> list[float]:
    """The entry's peak validation GAP@20 for every seed."""
    return [best_gap(context.run_dir(run_key(entry, seed))) for seed in context.options.seed_list]


def gap_rows(paper: str, experiment: str, entries: Sequence[Entry], context: Context) -> list[Row]:
    """GAP rows of every entry, then differences to the first entry (the reference), see the module."""
    gaps = {entry.label: seed_gaps(entry, context) for entry in entries}
    stats = {label: SeedStats.of(values) for label, values in gaps.items()}
    rows = [
        Row(
            paper,
            experiment,
            entry.label,
            GAP,
            stats[entry.label].mean,
            entry.published,
            GAP,
            stats[entry.label].spread,
            stats[entry.label].seeds,
        )
        for entry in entries
    ]
    reference = entries[0]
    for entry in entries[1:]:
        difference = paired_difference(gaps[reference.label], gaps[entry.label])
        published = (
            None
            if entry.published is None or reference.published is None
            else round(entry.published - reference.published, 6)
        )
        rows.append(
            Row(
                paper,
                experiment,
                entry.label,
                f"{GAP} - {reference.label}",
                difference.mean,
                published,
                GAP,
                difference.spread,
                difference.seeds,
                noise_note(difference, stats[reference.label], stats[entry.label]),
            )
        )
    return rows


def plot_gap_curves(
    paper: str, experiment: str, entries: Sequence[Entry], context: Context, title: str
) -> None:
    """Validation GAP against training examples seen, every entry (mean over seeds and their range)."""
    curves = {
        entry.label: [
            validation_curve(context.run_dir(run_key(entry, seed))) for seed in context.options.seed_list
        ]
        for entry in entries
    }
    published = {entry.label: entry.published for entry in entries}
    figures.gap_curves(curves, published, context.figure_path(paper, experiment), title)


def compare(paper: str, experiment: str, entries: Sequence[Entry], title: str, context: Context) -> list[Row]:
    """A GAP experiment's rows (:func:`gap_rows`) and its curves (:func:`plot_gap_curves`)."""
    plot_gap_curves(paper, experiment, entries, context, title)
    return gap_rows(paper, experiment, entries, context)

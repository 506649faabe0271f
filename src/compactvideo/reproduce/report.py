"""``DIR/report.md``: every finished experiment as a Markdown table, ours beside the published number.

One section per paper and one table per experiment (row | metric | ours | published | difference |
note), under the experiment's title and notes, with its figures (``figures/<paper>-<experiment>*.png``)
below. ``ours`` shows the mean over seeds with its spread (sample standard deviation) when several seeds
were trained; the difference is ours minus published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from compactvideo.reproduce.experiment import Experiment
from compactvideo.reproduce.results import Row

# How a number of each unit is printed (anything else: 4 significant digits).
FORMATS = {
    "GAP@20": "{:.3f}",
    "accuracy": "{:.3f}",
    "parameters": "{:,.0f}",
    "MB": "{:.1f}",
    "M": "{:.2f}",
    "%": "{:.1f}",
    "x": "{:.2f}",
    "ex/s": "{:.0f}",
    "rank": "{:.0f}",
    "GFLOPs": "{:.3f}",
    "exponent": "{:.2f}",
}


def format_value(value: float | None, unit: str, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = FORMATS.get(unit, "{:.4g}").format(value)
    if text.startswith("-") and not text.strip("-0.,"):
        text = text[1:]  # a negative number that rounds to zero
    return f"+{text}" if signed and value > 0 and text.strip("0.,") else text


def _ours(row: Row) -> str:
    text = format_value(row.ours, row.unit)
    if row.spread is not None:
        text += f" ± {format_value(row.spread, row.unit)}"
    if row.seeds is not None and row.seeds > 1:
        text += f" ({row.seeds} seeds)"
    return text


def experiment_table(rows: Sequence[Row]) -> str:
    """The Markdown table of one experiment's rows."""
    lines = [
        "| row | metric | ours | published | difference | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        metric = row.metric if row.unit in row.metric else f"{row.metric} ({row.unit})"
        lines.append(
            f"| {row.row} | {metric} | {_ours(row)} | {format_value(row.published, row.unit)} | "
            f"{format_value(row.difference, row.unit, signed=True)} | {row.note} |"
        )
    return "\n".join(lines)


def render_report(
    rows: Sequence[Row],
    experiments: Sequence[Experiment],
    out: Path,
    header: Sequence[str] = (),
    skipped: Mapping[str, str] | None = None,
) -> str:
    """The report's Markdown: ``experiments`` (in their order) that have rows in ``rows`` or a reason
    in ``skipped`` (keyed ``paper/experiment``); figures are linked relative to ``out``."""
    skipped = skipped or {}
    lines = ["# Reproduction report", "", *header]
    paper = None
    for experiment in experiments:
        key = f"{experiment.paper}/{experiment.name}"
        mine = [row for row in rows if (row.paper, row.experiment) == (experiment.paper, experiment.name)]
        if not mine and key not in skipped:
            continue
        if experiment.paper != paper:
            paper = experiment.paper
            lines += ["", f"## {paper}"]
        lines += ["", f"### {experiment.name}: {experiment.title}", ""]
        lines += [f"- {note}" for note in experiment.notes]
        if key in skipped:
            lines += ["", f"**Not run:** {skipped[key]}"]
            continue
        lines += ["", experiment_table(mine)]
        for figure in sorted((out / "figures").glob(f"{experiment.paper}-{experiment.name}*.png")):
            lines += ["", f"![{figure.stem}]({figure.relative_to(out).as_posix()})"]
    return "\n".join(lines) + "\n"

"""The demo, compactvideo's main job in miniature: dense against circulant classifiers, end to end.

1. Writes a synthetic frame-level data set in the YouTube-8M format (:mod:`compactvideo.data.synthetic`),
   a training and a validation split.
2. Trains demo-sized twins of the paper's models, dense and circulant (DBoF, NetVLAD, NetFV; the
   circulant twin has its FC layer diagonal-circulant, as in the "compact FC" rows of Araujo et al.,
   Table 3), and a DBoF twin with every compact layer at once (circulant frame projection, FC and
   mixture of experts, as ``paper-compact-all``), with the same budget of training examples each.
3. Validates each ``validations`` times during training and keeps the best weights (the paper reports
   each model's peak validation GAP), evaluates them (GAP@20, Hit@1), times batch-1 inference on one
   thread, and writes ``results.json``, a size-versus-GAP plot ``size_vs_gap.png`` and the table it
   prints.

Each model trains in its own run directory; a demo that is interrupted and started again with the
same ``--out`` keeps the finished models and resumes the unfinished one from its checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from compactvideo.evaluate import evaluate
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import build_model, load_model, resolve_model_spec, task_for
from compactvideo.profiling import count_parameters, measure_latency, megabytes, torch_threads
from compactvideo.train import TrainOptions, train

DEMO_MODELS = (
    "small-dbof-dense",
    "small-dbof-circulant",
    "small-dbof-compact-all",
    "small-netvlad-dense",
    "small-netvlad-circulant",
    "small-netfv-dense",
    "small-netfv-circulant",
)


@dataclass
class DemoOptions:
    """The demo's data set and training budget (the defaults finish in minutes on a 2-core CPU)."""

    train_videos: int = 8000
    valid_videos: int = 1000
    classes: int = 100
    max_frames: int = 60
    examples: int = 16000
    validations: int = 4
    batch_size: int = 64
    learning_rate: float = 6e-3
    lr_decays: int = 4
    lr_decay: float = 0.5
    seed: int = 0
    models: tuple[str, ...] = DEMO_MODELS


def make_data(out: Path, options: DemoOptions, outlier_frames: float = 0.0) -> tuple[str, str]:
    """Write (once) the synthetic training and validation shards under ``out/data``; return their glob
    patterns. ``outlier_frames``: the generator's share of frames showing an unrelated class."""
    from compactvideo.data.synthetic import synthesize

    splits = {
        "train": (options.train_videos, 4, options.seed),
        "valid": (options.valid_videos, 1, options.seed + 1),
    }
    for split, (videos, shards, seed) in splits.items():
        folder = out / "data" / split
        if not (folder / ".complete").exists():
            synthesize(
                folder,
                level="frame",
                videos=videos,
                classes=options.classes,
                shards=shards,
                seed=seed,
                max_frames=options.max_frames,
                prefix=split,
                vocabulary_seed=options.seed,
                outlier_frames=outlier_frames,
            )
            (folder / ".complete").write_text("")
    return str(out / "data" / "train" / "*.tfrecord"), str(out / "data" / "valid" / "*.tfrecord")


def inference_ms_per_video(checkpoint: Path, valid_pattern: str) -> float:
    """Median batch-1 forward time (ms) on one thread, over one validation video."""
    model = load_model(checkpoint)
    context = _local()
    loader = make_loader(model.config, valid_pattern, LoaderOptions(), 1, training=False, context=context)
    inputs = task_for(model.config).inputs(next(iter(loader)), context.device)
    with torch_threads(1), torch.no_grad():
        return measure_latency(lambda: model(*inputs), warmup=2, repeats=10).median_ms


def _local():
    from compactvideo.distributed import DistributedContext

    return DistributedContext(torch.device("cpu"))


def train_options(options: DemoOptions) -> TrainOptions:
    """The demo's training budget for one model: ``examples`` examples of Adam at ``learning_rate``,
    multiplied by ``lr_decay`` ``lr_decays`` times at equal intervals (staircase), ``validations``
    validations (the best weights are kept), seeded by ``seed`` (data order and initialisation)."""
    return TrainOptions(
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        lr_decay=options.lr_decay,
        lr_decay_examples=max(1, options.examples // (options.lr_decays + 1)),
        max_examples=options.examples,
        seed=options.seed,
        log_every=10,
        valid_every=max(1, options.examples // options.batch_size // options.validations),
        checkpoint_every=50,
        data=LoaderOptions(shuffle_buffer=2048),
    )


def data_contract(options: DemoOptions) -> dict[str, Any]:
    """The demo's data contract (fields of the model's ``config.data``): the first ``max_frames`` frames
    of each video, as many as its synthetic videos have."""
    return {"max_frames": options.max_frames}


def run_model(name: str, out: Path, options: DemoOptions, train_pattern: str, valid_pattern: str) -> dict:
    """Train (or resume, or reuse) one demo model and measure it; the row is saved as result.json."""
    run_dir = out / name
    result_file = run_dir / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    config = resolve_model_spec(name, num_classes=options.classes)
    budget = train_options(options)
    resume = (run_dir / "checkpoint.pt").exists()
    summary = train(
        config, train_pattern, run_dir, budget, valid_pattern, resume=resume, contract=data_contract(options)
    )
    best = run_dir / "best.pt"
    metrics = evaluate(best, valid_pattern, options.batch_size, budget.data)
    parameters = count_parameters(build_model(config), convention="paper")
    row = {
        "model": name,
        "parameters": parameters,
        "megabytes": megabytes(parameters),
        "gap": metrics["gap"],
        "hit_at_1": metrics["hit_at_one"],
        "best_step": summary["best"]["step"],
        "train_examples_per_s": summary["examples_per_s"],
        "inference_ms_per_video": inference_ms_per_video(best, valid_pattern),
    }
    result_file.write_text(json.dumps(row, indent=2))
    return row


def format_results(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'model':<26} {'parameters':>11} {'MB':>7} {'GAP@20':>7} {'Hit@1':>6} "
        f"{'train ex/s':>10} {'ms/video':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['model']:<26} {row['parameters']:>11,} {row['megabytes']:>7.2f} {row['gap']:>7.3f} "
            f"{row['hit_at_1']:>6.3f} {row['train_examples_per_s']:>10.0f} "
            f"{row['inference_ms_per_video']:>9.2f}"
        )
    return "\n".join(lines)


# How each kind of model is drawn, by the end of its name (other presets: "other").
_MARKERS = {
    "dense": ("s", "C0", "dense"),
    "circulant": ("o", "C1", "circulant FC"),
    "compact-all": ("^", "C2", "every layer circulant"),
    "other": ("D", "C3", "other"),
}


def _kind(model: str) -> str:
    """The kind of a demo model from its name: ``small-dbof-compact-all`` -> ``compact-all``."""
    return next((kind for kind in _MARKERS if model.endswith("-" + kind)), "other")


def plot_size_vs_gap(rows: list[dict[str, Any]], path: Path) -> None:
    """Model size (MB, log scale) against GAP@20; each dense model joined to its compact twins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    by_name = {row["model"]: row for row in rows}
    for row in rows:
        kind = _kind(row["model"])
        marker, color, _ = _MARKERS[kind]
        axes.scatter(row["megabytes"], row["gap"], marker=marker, color=color)
        axes.annotate(
            row["model"].removeprefix("small-"),
            (row["megabytes"], row["gap"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
        dense = by_name.get(row["model"].removesuffix(kind) + "dense")
        if kind != "dense" and dense is not None:
            axes.plot(
                [dense["megabytes"], row["megabytes"]], [dense["gap"], row["gap"]], color="0.7", zorder=0
            )
    for kind in dict.fromkeys(_kind(row["model"]) for row in rows):
        marker, color, label = _MARKERS[kind]
        axes.scatter([], [], marker=marker, color=color, label=label)
    axes.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    axes.xaxis.set_major_formatter(plain)
    axes.xaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 5)))  # 0.02 0.05 ... 20 50
    axes.xaxis.set_minor_formatter(plain)
    axes.set_xlabel("model size (MB, float32)")
    axes.set_ylabel("GAP@20 (validation)")
    axes.set_title("compactvideo demo: size against accuracy")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_demo(out: str | Path, options: DemoOptions | None = None) -> list[dict[str, Any]]:
    """Run the whole demo into ``out``; return the result rows (also in results.json)."""
    options = options or DemoOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_pattern, valid_pattern = make_data(out, options)
    rows = [run_model(name, out, options, train_pattern, valid_pattern) for name in options.models]
    (out / "results.json").write_text(json.dumps({"options": asdict(options), "results": rows}, indent=2))
    plot_size_vs_gap(rows, out / "size_vs_gap.png")
    return rows

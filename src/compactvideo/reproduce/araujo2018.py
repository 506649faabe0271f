"""Araujo, Negrevergne, Chevaleyre, Atif, *Training compact deep learning models for video classification
using circulant matrices* (ECCV 2018 workshops): its tables and figures, and the numbers they publish.

Models come in two sizes from one catalogue (:data:`MODELS`): at paper scale each row is the paper's
model (the ``paper-*`` presets, and the same changes made to them for the rows no preset covers); at demo
scale the same change is made to the demo's small twins (``small-*``: DBoF 1,024 clusters, NetVLAD 16,
NetFV 8, FC 256, 2 experts). Published numbers are from ``../shared/reference/araujo2018.md`` (tables A,
B, C and the figures), YouTube-8M 2018, GAP@20 on the validation data.

Absolute GAP on the synthetic data (100 classes) says nothing about GAP on YouTube-8M (3,862 classes);
what carries over is how the rows of a table compare, so every table also lists each row's difference
to its reference row, beside the paper's difference.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import torch

from compactvideo.demo import data_contract, train_options
from compactvideo.distributed import DistributedContext
from compactvideo.loaders import make_loader
from compactvideo.models import PAPER_PARAMETERS, PRESETS, build_model, override_data, task_for
from compactvideo.models.catalogue import describe_preset
from compactvideo.models.presets import CIRCULANT, CIRCULANT_ONLY, PAPER_PRESETS
from compactvideo.nn.linear import Projection
from compactvideo.profiling import count_parameters, measure_interleaved, megabytes, torch_threads
from compactvideo.reproduce import figures
from compactvideo.reproduce.experiment import Context, Experiment, Job
from compactvideo.reproduce.gap import Entry, compare, frame_jobs, gap_rows, plot_gap_curves, seed_gaps
from compactvideo.reproduce.plan import paper_training
from compactvideo.reproduce.results import Row, SeedStats
from compactvideo.train import train_step

PAPER = "araujo2018"
ModelFactory = Callable[[str, int], Any]

# Sizes in MB (float32, 2^20 bytes) as the tables print them.
PUBLISHED_MEGABYTES = {
    "paper-video-dense": 173,
    "paper-video-compact-dbof": 141,
    "paper-video-compact-fc": 157,
    "paper-video-compact-moe": 48,
    "paper-dbof-dense": 251,
    "paper-dbof-compact-fc": 227,
    "paper-netvlad-dense": 330,
    "paper-netvlad-compact-fc": 194,
    "paper-netfv-dense": 466,
    "paper-netfv-compact-fc": 195,
}


# ---------------------------------------------------------------------------------------------- models


def _dense(kind: str, scale: str, classes: int) -> Any:
    """The dense DBoF / NetVLAD / NetFV model (audio and video) at ``scale`` (demo: ``classes``)."""
    if scale == "paper":
        return PRESETS[f"paper-{kind}-dense"]
    return replace(PRESETS[f"small-{kind}-dense"], num_classes=classes)


def _embedding(config: Any, **changes: Any) -> Any:
    """``config`` with its (single) embedding changed."""
    return replace(config, embeddings=(replace(config.embeddings[0], **changes),))


def _video_only(config: Any) -> Any:
    return replace(config, modalities=("rgb",))


def _compact_moe(config: Any) -> Any:
    """The paper's "compact MoE": circulant gates and experts without diagonals, no context gating."""
    return replace(
        config, head=replace(config.head, gates=CIRCULANT_ONLY, experts=CIRCULANT_ONLY, context_gating=False)
    )


def _circulant_fc(kind: str, factors: int = 1, diagonal: str = "learned") -> ModelFactory:
    projection = Projection("circulant", factors=factors, diagonal=diagonal)
    return lambda *size: _embedding(_dense(kind, *size), fc=projection)


def _compact_fc_model(
    parts: Sequence[tuple[str, float]], hidden: float = 1.0, mixtures: float = 1.0
) -> ModelFactory:
    """A model of the benchmark figure: the embeddings ``(kind, cluster multiplier)`` of the dense
    models, each with a circulant FC, the hidden size and the number of experts scaled."""

    def build(scale: str, classes: int) -> Any:
        base = _dense("dbof", scale, classes)
        embeddings = []
        for kind, factor in parts:
            embedding = _dense(kind, scale, classes).embeddings[0]
            embeddings.append(replace(embedding, clusters=round(embedding.clusters * factor), fc=CIRCULANT))
        return replace(
            base,
            embeddings=tuple(embeddings),
            hidden_size=round(base.hidden_size * hidden),
            head=replace(base.head, mixtures=max(1, round(base.head.mixtures * mixtures))),
        )

    return build


# Every model the experiments train, by run-folder name: (scale, classes) -> config.
MODELS: dict[str, ModelFactory] = {
    "video-dense": lambda *size: _video_only(_dense("dbof", *size)),
    "video-compact-dbof": lambda *size: _video_only(_embedding(_dense("dbof", *size), projection=CIRCULANT)),
    "video-compact-fc": lambda *size: _video_only(_embedding(_dense("dbof", *size), fc=CIRCULANT)),
    "video-compact-moe": lambda *size: _video_only(_compact_moe(_dense("dbof", *size))),
    "dbof-dense": lambda *size: _dense("dbof", *size),
    "dbof-circulant": _circulant_fc("dbof"),
    "dbof-circulant-3": _circulant_fc("dbof", factors=3),
    "dbof-circulant-6": _circulant_fc("dbof", factors=6),
    "dbof-circulant-sign": _circulant_fc("dbof", diagonal="sign"),
    "dbof-circulant-nodiag": _circulant_fc("dbof", diagonal="none"),
    "dbof-mean": lambda *size: _embedding(_dense("dbof", *size), pooling="mean", samples=1),
    "dbof-max": lambda *size: _embedding(_dense("dbof", *size), pooling="max", samples=1),
    "netvlad-dense": lambda *size: _dense("netvlad", *size),
    "netvlad-circulant": _circulant_fc("netvlad"),
    "netfv-dense": lambda *size: _dense("netfv", *size),
    "netfv-circulant": _circulant_fc("netfv"),
    "netvlad-half-circulant": _compact_fc_model([("netvlad", 0.5)], hidden=0.5, mixtures=0.5),
    "netvlad-x4-circulant": _compact_fc_model([("netvlad", 4)], hidden=2),
    "netvlad-x2-netfv-circulant": _compact_fc_model([("netvlad", 2), ("netfv", 1)], hidden=2),
    "netvlad-x4-netfv-x2-circulant": _compact_fc_model([("netvlad", 4), ("netfv", 2)], hidden=2),
    "dbof-netvlad-x2-circulant": _compact_fc_model([("dbof", 1), ("netvlad", 2)], hidden=2),
    "dbof-x2-netvlad-x4-circulant": _compact_fc_model([("dbof", 2), ("netvlad", 4)], hidden=2),
}

# Paper-scale models that are presets (the catalogue reproduces them exactly; tested).
PRESET_OF = {
    "video-dense": "paper-video-dense",
    "video-compact-dbof": "paper-video-compact-dbof",
    "video-compact-fc": "paper-video-compact-fc",
    "video-compact-moe": "paper-video-compact-moe",
    "dbof-dense": "paper-dbof-dense",
    "dbof-circulant": "paper-dbof-compact-fc",
    "netvlad-dense": "paper-netvlad-dense",
    "netvlad-circulant": "paper-netvlad-compact-fc",
    "netfv-dense": "paper-netfv-dense",
    "netfv-circulant": "paper-netfv-compact-fc",
}


def model_config(model: str, context: Context) -> Any:
    """The config of catalogue model ``model`` at the context's scale; at demo scale its data contract is
    the demo's (:func:`compactvideo.demo.data_contract`: the first ``budget.max_frames`` frames)."""
    config = MODELS[model](context.scale, context.classes)
    if context.scale == "demo":
        config = override_data(config, data_contract(context.options.budget), trained=False)
    return config


def paper_size_config(model: str) -> Any:
    """The config of catalogue model ``model`` at the paper's size (YouTube-8M's 3,862 classes)."""
    return MODELS[model]("paper", 3862)


def parameters_of(config: Any) -> int:
    """Parameters counted the paper's way (batch-norm moving statistics included), built on ``meta``."""
    with torch.device("meta"):
        return count_parameters(build_model(config), convention="paper")


def fc_parameters(config: Any) -> int:
    """Parameters of the FC layers (every modality's and embedding's layer down to the hidden size)."""
    with torch.device("meta"):
        model = build_model(config)
    return sum(
        parameter.numel()
        for embeddings in model.embeddings.values()
        for embedding in embeddings
        for parameter in embedding.fc.linear.parameters()
    )


def _jobs(entries: Sequence[Entry] | Callable[[Context], Sequence[Entry]]) -> Callable[[Context], list[Job]]:
    """The training runs of ``entries`` (or of the entries a function of the context gives)."""

    def jobs(context: Context) -> list[Job]:
        chosen = entries(context) if callable(entries) else entries
        return frame_jobs(chosen, model_config, context)

    return jobs


def _size_rows(
    experiment: str, entries: Sequence[Entry], published: Sequence[int], context: Context
) -> list[Row]:
    """Parameters of each entry at this scale beside the paper's, and the share each removes against
    the first entry ("CR", % fewer parameters)."""
    counts = [parameters_of(model_config(entry.model, context)) for entry in entries]
    rows = [
        Row(PAPER, experiment, entry.label, "parameters", count, paper, "parameters")
        for entry, count, paper in zip(entries, counts, published, strict=True)
    ]
    for entry, count, paper in zip(entries[1:], counts[1:], published[1:], strict=True):
        rows.append(
            Row(
                PAPER,
                experiment,
                entry.label,
                f"parameters removed vs {entries[0].label}",
                100 * (1 - count / counts[0]),
                round(100 * (1 - paper / published[0]), 2),
                "%",
            )
        )
    return rows


# --------------------------------------------------------------------------------------------- parameters


def parameters_rows(context: Context) -> list[Row]:
    rows = []
    for name in PAPER_PRESETS:
        described = describe_preset(name)
        rows.append(
            Row(
                PAPER,
                "parameters",
                name,
                "parameters",
                described["parameters"],
                PAPER_PARAMETERS[name],
                "parameters",
            )
        )
        size = megabytes(described["parameters"])
        printed = PUBLISHED_MEGABYTES[name]
        note = (
            ""
            if round(size) == printed
            else f"the table prints {printed}; {size:.2f} rounds to {round(size)}"
        )
        rows.append(Row(PAPER, "parameters", name, "size", round(size, 1), printed, "MB", note=note))
    return rows


# ------------------------------------------------------------------------------------------- compactness

COMPACTNESS = [
    Entry("dense", "video-dense", 0.846),
    Entry("compact DBoF", "video-compact-dbof", 0.838),
    Entry("compact FC", "video-compact-fc", 0.845),
    Entry("compact MoE", "video-compact-moe", 0.805),
]
COMPACTNESS_PARAMETERS = [45_359_764, 36_987_540, 41_181_844, 12_668_504]


def compactness_rows(context: Context) -> list[Row]:
    title = "Effect of the compactness of different layers (video only, DBoF)"
    plot_gap_curves(PAPER, "compactness", COMPACTNESS, context, title)
    return gap_rows(PAPER, "compactness", COMPACTNESS, context) + _size_rows(
        "compactness", COMPACTNESS, COMPACTNESS_PARAMETERS, context
    )


# ---------------------------------------------------------------------------------------------- factors

FACTORS = [
    Entry("dense FC", "dbof-dense", 0.861),
    Entry("1 factor", "dbof-circulant", 0.861),
    Entry("3 factors", "dbof-circulant-3", 0.861),
    Entry("6 factors", "dbof-circulant-6", 0.859),
]
FACTORS_RATE = [1007, 1052, 858, 568]  # training examples/s, Table B
FACTORS_FC_PARAMETERS = [6_291_456, 12_288, 73_728, 147_456]


def training_speed(configs: Sequence[Any], context: Context, rounds: int = 3, steps: int = 6) -> list[float]:
    """Training examples per second of each model: forward, loss, backward, per-parameter clipping and an
    Adam step on the same ``steps`` batches, timed in interleaved rounds in this process (1 thread on a
    CPU; at paper scale batch 80 on the first GPU when there is one)."""
    train_data, _ = context.frame_data()
    if context.scale == "demo":
        options, device = train_options(context.options.budget), torch.device("cpu")
    else:
        options = paper_training(1)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loader = make_loader(
        configs[0], train_data, options.data, options.batch_size, True, DistributedContext(device)
    )
    batches = list(itertools.islice(loader, steps))
    variants = {}
    for index, config in enumerate(configs):
        torch.manual_seed(index)
        model = build_model(config).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
        task, cycle = task_for(config), itertools.cycle(batches)

        def step(model=model, optimizer=optimizer, task=task, cycle=cycle) -> None:
            train_step(
                model, model, optimizer, task, next(cycle), options.learning_rate, options.clip_norm, device
            )
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        variants[index] = step
    with torch_threads(1 if device.type == "cpu" else torch.get_num_threads()):
        times = measure_interleaved(variants, rounds=rounds, repeats=len(batches), warmup=2)
    examples = sum(len(batch["ids"]) for batch in batches) / len(batches)
    return [examples / (times[index] / 1e3) for index in range(len(configs))]


def factors_rows(context: Context) -> list[Row]:
    plot_gap_curves(
        PAPER, "factors", FACTORS, context, "Number of circulant factors in the FC (DBoF, audio + video)"
    )
    rows = gap_rows(PAPER, "factors", FACTORS, context)
    configs = [model_config(entry.model, context) for entry in FACTORS]
    for entry, config, paper in zip(FACTORS, configs, FACTORS_FC_PARAMETERS, strict=True):
        note = "the paper's 12,288 is half of its code's 2 x (8,192 + 4,096)" if paper == 12_288 else ""
        rows.append(
            Row(
                PAPER,
                "factors",
                entry.label,
                "FC parameters",
                fc_parameters(config),
                paper,
                "parameters",
                note=note,
            )
        )
    rates = training_speed(configs, context)
    for entry, rate, paper in zip(FACTORS, rates, FACTORS_RATE, strict=True):
        rows.append(
            Row(
                PAPER,
                "factors",
                entry.label,
                "training examples/s",
                rate,
                paper,
                "ex/s",
                note="different hardware: compare the ratios",
            )
        )
        rows.append(
            Row(
                PAPER,
                "factors",
                entry.label,
                "training speed vs dense FC",
                rate / rates[0],
                round(paper / FACTORS_RATE[0], 3),
                "x",
            )
        )
    return rows


# ------------------------------------------------------------------------------------------- embeddings

EMBEDDINGS = {
    "DBoF": [
        Entry("DBoF, dense FC", "dbof-dense", 0.861),
        Entry("DBoF, circulant FC", "dbof-circulant", 0.861),
    ],
    "NetVLAD": [
        Entry("NetVLAD, dense FC", "netvlad-dense", 0.864),
        Entry("NetVLAD, circulant FC", "netvlad-circulant", 0.851),
    ],
    "NetFV": [
        Entry("NetFV, dense FC", "netfv-dense", 0.860),
        Entry("NetFV, circulant FC", "netfv-circulant", 0.848),
    ],
}
EMBEDDINGS_PARAMETERS = {
    "DBoF": [65_795_732, 59_528_852],
    "NetVLAD": [86_333_460, 50_821_140],
    "NetFV": [122_054_676, 51_030_036],
}


def embeddings_rows(context: Context) -> list[Row]:
    entries = [entry for pair in EMBEDDINGS.values() for entry in pair]
    plot_gap_curves(
        PAPER, "embeddings", entries, context, "Compression of the FC layer by embedding (audio + video)"
    )
    rows = []
    for kind, pair in EMBEDDINGS.items():
        rows += gap_rows(PAPER, "embeddings", pair, context)
        rows += _size_rows("embeddings", pair, EMBEDDINGS_PARAMETERS[kind], context)
    return rows


# --------------------------------------------------------------------------------------------- diagonal

DIAGONAL = [
    Entry("learned diagonal", "dbof-circulant", 0.861),
    Entry("fixed random +-1 diagonal (Cheng et al.)", "dbof-circulant-sign", 0.831),
    Entry("no diagonal", "dbof-circulant-nodiag", None),
]


# ---------------------------------------------------------------------------------------------- pooling

POOLING = [
    Entry("robust pooling", "dbof-dense", 0.861),
    Entry("mean pooling", "dbof-mean", 0.855),
    Entry("max pooling", "dbof-max", 0.852),
]
# The same comparison on synthetic data where 10% of the frames show a class the video is not labelled
# with (compactvideo.data.synthetic, outlier_frames), the noise robust pooling is meant to resist.
OUTLIER_FRAMES = 0.1
POOLING_OUTLIERS = [
    replace(entry, label=f"{entry.label}, {OUTLIER_FRAMES:.0%} outlier frames", outlier_frames=OUTLIER_FRAMES)
    for entry in POOLING
]


def pooling_entries(context: Context) -> list[Entry]:
    """The pooling rows, and on synthetic data also the rows with outlier frames."""
    return POOLING + (POOLING_OUTLIERS if context.options.train is None else [])


def pooling_rows(context: Context) -> list[Row]:
    rows = compare(PAPER, "pooling", POOLING, "DBoF pooling: robust, mean, max (dense FC)", context)
    if context.options.train is None:
        title = f"DBoF pooling on synthetic data with {OUTLIER_FRAMES:.0%} outlier frames"
        plot_gap_curves(PAPER, "pooling-outlier-frames", POOLING_OUTLIERS, context, title)
        rows += gap_rows(PAPER, "pooling", POOLING_OUTLIERS, context)
    return rows


# -------------------------------------------------------------------------------------------- benchmark

# The paper's figure "benchmark of compact models" (all with a circulant FC): millions of weights, GAP.
# The headline model first: every other row is compared with it.
BENCHMARK = [
    (Entry("DBoF 8192, FC 512, MoE 4", "dbof-circulant", 0.861), 59),
    (Entry("NetVLAD 32, FC 256, MoE 2", "netvlad-half-circulant", 0.831), 25),
    (Entry("NetVLAD 64, FC 512, MoE 4", "netvlad-circulant", 0.851), 50),
    (Entry("NetFV 64, FC 512, MoE 4", "netfv-circulant", 0.848), 51),
    (Entry("NetVLAD 256, FC 1024, MoE 4", "netvlad-x4-circulant", 0.858), 87),
    (Entry("NetVLAD 128 + NetFV 64, FC 1024", "netvlad-x2-netfv-circulant", 0.861), 158),
    (Entry("NetVLAD 256 + NetFV 128, FC 1024", "netvlad-x4-netfv-x2-circulant", 0.863), 159),
    (Entry("DBoF 8192 + NetVLAD 128, FC 1024", "dbof-netvlad-x2-circulant", 0.861), 166),
    (Entry("DBoF 16384 + NetVLAD 256, FC 1024", "dbof-x2-netvlad-x4-circulant", 0.861), 176),
]


def benchmark_rows(context: Context) -> list[Row]:
    entries = [entry for entry, _ in BENCHMARK]
    rows = gap_rows(PAPER, "benchmark", entries, context)
    for entry, millions in BENCHMARK:
        weights = parameters_of(paper_size_config(entry.model)) / 1e6
        rows.append(Row(PAPER, "benchmark", entry.label, "weights at paper size", weights, millions, "M"))
    ours = []
    for entry in entries:
        stats = SeedStats.of(seed_gaps(entry, context))
        ours.append(
            (entry.label, parameters_of(model_config(entry.model, context)), stats.mean, stats.spread)
        )
    published = [(entry.label, millions, entry.published) for entry, millions in BENCHMARK]
    scale = "demo-size twins, synthetic data" if context.scale == "demo" else "YouTube-8M"
    figures.weights_against_gap(ours, published, context.figure_path(PAPER, "benchmark"), f"ours ({scale})")
    plot_gap_curves(
        PAPER, "benchmark-curves", entries, context, "Benchmark of compact models: validation curves"
    )
    return rows


EXPERIMENTS = [
    Experiment(
        PAPER,
        "parameters",
        "Parameter counts and sizes of the ten models of tables A and C",
        demo_minutes=0.2,
        rows=parameters_rows,
        notes=(
            "Counted as the authors do: every TensorFlow variable, batch-norm moving mean and variance "
            "included; MB = parameters x 4 / 2^20, the tables' rounding.",
        ),
    ),
    Experiment(
        PAPER,
        "compactness",
        "Table A: effect of the compactness of different layers (video only, DBoF)",
        demo_minutes=4.3,
        rows=compactness_rows,
        jobs=_jobs(COMPACTNESS),
        figure=True,
        notes=(
            "Absolute GAP on synthetic data is not comparable to YouTube-8M; compare the differences to "
            "the dense row.",
        ),
    ),
    Experiment(
        PAPER,
        "factors",
        "Table B: number of diagonal-circulant factors in the FC (DBoF, audio + video)",
        demo_minutes=7.5,
        rows=factors_rows,
        jobs=_jobs(FACTORS),
        figure=True,
        notes=(
            "Training speed is measured in one process, the four models taking turns on the same batches "
            "(1 thread at demo scale), as a ratio to the dense FC.",
            "At demo scale the FC is a small share of a training step (the DBoF projection and the MoE "
            "dominate), so the ratios stay near 1 whatever the FFT costs.",
        ),
    ),
    Experiment(
        PAPER,
        "embeddings",
        "Table C: impact of the compression of the FC layer, by embedding (audio + video)",
        demo_minutes=3.6,
        rows=embeddings_rows,
        jobs=_jobs([entry for pair in EMBEDDINGS.values() for entry in pair]),
        figure=True,
    ),
    Experiment(
        PAPER,
        "diagonal",
        "Figure: learned diagonal against a fixed random +-1 diagonal (Cheng et al.) and none",
        demo_minutes=2.9,
        rows=partial(
            compare, PAPER, "diagonal", DIAGONAL, "Circulant FC: learned, fixed +-1 or no diagonal (DBoF)"
        ),
        jobs=_jobs(DIAGONAL),
        figure=True,
        notes=(
            "The paper gives no number for a circulant FC without diagonal.",
            "The circulant layers start from d = +-1 (init ecai2020), so the learned and the fixed "
            "diagonal differ only in whether d is trained.",
        ),
    ),
    Experiment(
        PAPER,
        "pooling",
        "Figure: robust DBoF pooling against mean and max pooling",
        demo_minutes=6.1,
        rows=pooling_rows,
        jobs=_jobs(pooling_entries),
        figure=True,
        notes=(
            "Robust pooling averages the max over n random samples of 15 frames (n = 10 in the paper, 4 in "
            "the demo models); mean and max pool all frames.",
            "In the standard synthetic videos a label shows in segments of 4 to 12 frames among "
            "background frames; nothing in them is the kind of noise robust pooling is meant to resist, "
            "so the first rows can show the paper's ordering only by chance.",
            f"The rows with {OUTLIER_FRAMES:.0%} outlier frames train and validate on a harder variant of "
            f"the synthetic data (outlier_frames={OUTLIER_FRAMES:g}): each frame, with that probability, "
            "shows a class the video is not labelled with, as strongly as its labels show. Max pooling "
            "responds to every such frame, robust pooling only in the samples that draw it (22% of "
            "samples of 15 frames from 60), mean pooling with weight 1/N. Synthetic data only.",
        ),
    ),
    Experiment(
        PAPER,
        "benchmark",
        "Figure: benchmark of compact models, weights against GAP (all with a circulant FC)",
        demo_minutes=25.5,
        rows=benchmark_rows,
        jobs=_jobs([entry for entry, _ in BENCHMARK]),
        figure=True,
        notes=(
            "Weights at paper size are our count of the paper-size model; GAP is at this run's scale.",
            "The four two-embedding models: compactvideo averages the embeddings' FC outputs per modality, "
            "as the paper's text describes, and counts 87M to 105M weights; the paper's 158M to 176M match "
            "a head on the *concatenated* outputs (a MoE on 4,096 inputs instead of 2,048, +71M).",
        ),
    ),
]

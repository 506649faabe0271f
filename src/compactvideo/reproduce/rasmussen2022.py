"""Rasmussen, Clemmensen, Baum, *Compressing CNN kernels for videos using Tucker decompositions* (NLDL
2022): the EVBMF ranks of the THETIS network, its parameter and FLOP budget, its speed-up and accuracy.

Published numbers are from ``../shared/reference/tucker.md`` and ``../shared/fixtures/README.md``: ranks
c1 (2, 2), c2 (3, 2), l1 (7, 4), l2 rank 1 as (R_out, R_in); parameters 696,428 -> 13,598 (x51);
15.77 -> 2.63 GFLOPs per 4 x 28 x 120 x 160 clip (theoretical x6); measured x1.4 on a CPU; accuracy
92% -> 68% after compression -> 90% after fine-tuning on two THETIS classes.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compactvideo.checkpoint import load_checkpoint
from compactvideo.compress.tucker import CompressionReport, compress_model, unfold
from compactvideo.compress.vbmf import VBMFResult, evbmf
from compactvideo.data.synthetic_clips import synthesize_clips
from compactvideo.errors import CompactVideoError
from compactvideo.evaluate import evaluate
from compactvideo.loaders import LoaderOptions
from compactvideo.models import PRESETS, build_model, config_from_dict
from compactvideo.nn.tucker import plain_path
from compactvideo.pipelines import compress_checkpoint
from compactvideo.profiling import measure_interleaved, torch_threads
from compactvideo.reproduce.experiment import Context, Experiment, ExperimentUnavailable, Job
from compactvideo.reproduce.results import (
    Row,
    SeedStats,
    noise_note,
    paired_difference,
    read_json,
    write_json_atomic,
)
from compactvideo.reproduce.runs import is_finished
from compactvideo.train import TrainOptions, train

PAPER = "rasmussen2022"
# The paper's ranks as (rank_out, rank_in), the form compress_model takes; l2 is a rank-1 Tucker-1.
PAPER_RANKS = {"c1": (2, 2), "c2": (3, 2), "l1": (7, 4), "l2": (1, 1)}
PUBLISHED = {"parameters": (696_428, 13_598), "gflops": (15.77, 2.63), "measured speed-up": 1.4}
PUBLISHED_ACCURACY = {"original": 0.92, "compressed": 0.68, "fine-tuned": 0.90}

# The published weights (../shared/fixtures/README.md): where a source checkout keeps them, and their hash.
FIXTURE = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "thetis_net2_state_dict.pt"
FIXTURE_SHA256 = "2781ff4be91b602e069ade5573c19b93e25201eb5aca37f2eb01c5fe2bcececa"
PORT_TAU = 2.5129  # the public EVBMF ports' tau_ = 2.5129 sqrt(alpha)


def thetis_weights(context: Context) -> dict[str, torch.Tensor]:
    """The published THETIS weights (``--thetis-weights``, else the shared fixture), checked by hash."""
    path = Path(context.options.thetis_weights or FIXTURE)
    if not path.is_file():
        raise ExperimentUnavailable(
            f"the published THETIS weights are not at {path}; pass --thetis-weights PATH (the file "
            "'Trained networks/THETIS_new.pt' of github.com/tobirasmu/Master-Thesis-2020, commit f00064e, "
            "as ../shared/fixtures/README.md describes)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != FIXTURE_SHA256:
        raise CompactVideoError(
            f"{path}: sha256 {digest}, not the published THETIS weights ({FIXTURE_SHA256})"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------------ ranks


def port_first_probe_rank(result: VBMFResult, shape: tuple[int, int]) -> int:
    """The rank the authors' EVBMF port returns when its bounded minimiser stops at its first probe,
    sigma^2 = lo + (3 - sqrt 5) / 2 (hi - lo), with the port's tau_ = 2.5129 sqrt(alpha)."""
    length, m = sorted(shape)
    alpha = length / m
    low, high = result.search_interval
    probe = low + (3 - math.sqrt(5)) / 2 * (high - low)
    tau = PORT_TAU * math.sqrt(alpha)
    threshold = math.sqrt(m * probe * (1 + tau) * (1 + alpha / tau))
    return int((result.singular_values > threshold).sum())


def ranks_rows(context: Context) -> list[Row]:
    weights = thetis_weights(context)
    rows = []
    for layer in ("c1", "c2", "l1"):
        weight = weights[f"{layer}.weight"]
        published = dict(zip(("R_out", "R_in"), PAPER_RANKS[layer], strict=True))
        for mode, name in ((0, "R_out"), (1, "R_in")):
            unfolding = unfold(weight, mode)
            result = evbmf(unfolding)
            note = f"EVBMF of the mode-{mode} unfolding ({unfolding.shape[0]} x {unfolding.shape[1]})"
            if result.rank != published[name]:
                note = (
                    "the authors' EVBMF port stops its noise-variance search at its first probe (scipy's "
                    "absolute tolerance 1e-5 is wider than the whole interval "
                    f"[{result.search_interval[0]:.4g}, {result.search_interval[1]:.4g}]); the exact "
                    f"minimiser sigma^2 = {result.sigma2:.4g} keeps {result.rank}"
                )
            rows.append(Row(PAPER, "ranks", layer, name, result.rank, published[name], "rank", note=note))
            if result.rank != published[name]:
                port = port_first_probe_rank(result, tuple(unfolding.shape))
                rows.append(
                    Row(
                        PAPER,
                        "ranks",
                        layer,
                        f"{name}, the authors' port (first probe)",
                        port,
                        published[name],
                        "rank",
                        note="the paper's rank, reproduced",
                    )
                )
    l2 = evbmf(weights["l2.weight"]).rank
    rows.append(
        Row(
            PAPER,
            "ranks",
            "l2",
            "Tucker-1 rank",
            l2,
            PAPER_RANKS["l2"][0],
            "rank",
            note="EVBMF of the 84 x 128 weight",
        )
    )
    return rows


# ----------------------------------------------------------------------------------------------- budget


def thetis_models(
    weights: dict[str, torch.Tensor] | None = None,
) -> tuple[nn.Module, nn.Module, CompressionReport]:
    """The THETIS network (``weights``, or seeded random ones: sizes and FLOPs do not depend on them) in
    eval mode, and its Tucker version with the paper's ranks, with the compression report."""
    torch.manual_seed(0)
    original = build_model("thetis").eval()
    if weights is not None:
        original.load_state_dict(weights)
    compressed = copy.deepcopy(original)
    report = compress_model(compressed, ranks=PAPER_RANKS)
    return original, compressed.eval(), report


def budget_rows(context: Context) -> list[Row]:
    _, _, report = thetis_models()
    (before, after), (gflops_before, gflops_after) = PUBLISHED["parameters"], PUBLISHED["gflops"]
    rows = [
        Row(PAPER, "budget", "original", "parameters", report.params_before, before, "parameters"),
        Row(
            PAPER,
            "budget",
            "Tucker, the paper's ranks",
            "parameters",
            report.params_after,
            after,
            "parameters",
        ),
        Row(
            PAPER,
            "budget",
            "compression",
            "parameters ratio",
            report.params_before / report.params_after,
            round(before / after, 2),
            "x",
            note="the paper's x51",
        ),
        Row(
            PAPER,
            "budget",
            "original",
            "GFLOPs per clip",
            round(report.flops_before / 1e9, 2),
            gflops_before,
            "GFLOPs",
        ),
        Row(
            PAPER,
            "budget",
            "Tucker, the paper's ranks",
            "GFLOPs per clip",
            round(report.flops_after / 1e9, 2),
            gflops_after,
            "GFLOPs",
        ),
        Row(
            PAPER,
            "budget",
            "compression",
            "theoretical speed-up",
            report.flops_before / report.flops_after,
            6.0,
            "x",
            note="FLOPs before / after, Rasmussen et al.'s count",
        ),
    ]
    try:
        weights = thetis_weights(context)
    except ExperimentUnavailable as missing:
        exact, note = None, f"not computed: {missing}"
    else:
        model = build_model("thetis")
        model.load_state_dict(weights)
        exact_report = compress_model(model, ranks="vbmf")
        ranks = ", ".join(f"{layer.name} {layer.ranks}" for layer in exact_report.layers if layer.ranks)
        exact, note = exact_report.params_after, f"ranks {ranks}: l1's exact R_out is 2, not 7 (see ranks)"
    rows.append(
        Row(PAPER, "budget", "Tucker, exact EVBMF ranks", "parameters", exact, after, "parameters", note=note)
    )
    return rows


# ---------------------------------------------------------------------------------------------- speedup


def speed_variants(
    original: nn.Module, compressed: nn.Module, clip: torch.Tensor
) -> dict[str, Callable[[], Any]]:
    """Batch-1 forward passes to time: the original network, the Tucker network as three nn.Conv3d per
    layer (the paper's implementation) and through compactvideo's fast CPU path."""

    def plain() -> torch.Tensor:
        with plain_path(compressed):
            return compressed(clip)

    return {
        "original (nn.Conv3d)": lambda: original(clip),
        "tucker, plain (3 nn.Conv3d)": plain,
        "tucker, fast path": lambda: compressed(clip),
    }


def speedup_rows(context: Context) -> list[Row]:
    try:
        weights = thetis_weights(context)
    except ExperimentUnavailable:
        weights = None  # the speed does not depend on the weights' values
    original, compressed, report = thetis_models(weights)
    variants = speed_variants(original, compressed, torch.randn(1, 4, 28, 120, 160))
    with torch_threads(1), torch.no_grad():
        times = measure_interleaved(variants, rounds=5, repeats=3)
    baseline = times["original (nn.Conv3d)"]
    rows = [
        Row(
            PAPER,
            "speedup",
            "theoretical",
            "FLOPs before / after",
            report.flops_before / report.flops_after,
            6.0,
            "x",
        ),
    ]
    for name in ("tucker, plain (3 nn.Conv3d)", "tucker, fast path"):
        rows.append(
            Row(
                PAPER,
                "speedup",
                name,
                "measured speed-up, batch 1, 1 thread",
                baseline / times[name],
                PUBLISHED["measured speed-up"],
                "x",
                note=f"{times[name]:.1f} ms against {baseline:.1f} ms for the original",
            )
        )
    return rows


# --------------------------------------------------------------------------------------------- accuracy

# Demo scale: the synthetic swing clips of benchmarks/thetis_synthetic.py (forehand / backhand, RGB +
# depth, H.264), 60 training and 30 test videos per class, the network's input 4 x 8 x 48 x 64; paper
# scale: the user's THETIS folders at the paper's 4 x 28 x 120 x 160.
DEMO_CLIPS = {"train_per_class": 60, "test_per_class": 30, "video_frames": 16, "video_size": (128, 96)}
DEMO_ACCURACY = {
    "config": replace(PRESETS["thetis"], frames=8, height=48, width=64),
    "epochs": 16,
    "finetune_epochs": 4,
}
PAPER_ACCURACY = {"config": PRESETS["thetis"], "epochs": 100, "finetune_epochs": 100}
CLIP_TRAINING = {"learning_rate": 1e-3, "batch_size": 20}


def synthetic_clips(
    root: Path,
    train_per_class: int,
    test_per_class: int,
    video_frames: int,
    video_size: tuple[int, int],
    seed: int = 0,
) -> tuple[str, str]:
    """Write (once) the synthetic training and test clip folders under ``root``; return them."""
    folders = []
    for split, per_class, offset in (("train", train_per_class, 1), ("test", test_per_class, 2)):
        folder = root / split
        if not (folder / ".complete").exists():
            synthesize_clips(folder, 2, per_class, video_frames, video_size, True, seed * 10 + offset)
            (folder / ".complete").write_text("")
        folders.append(str(folder))
    return folders[0], folders[1]


def train_compress_finetune(
    run_dir: Path,
    config: dict[str, Any],
    train_data: str,
    test_data: str,
    epochs: int,
    finetune_epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    clip_cache: str | None = None,
) -> None:
    """Job: the paper's procedure on a clip model: train ``epochs`` epochs (``run_dir/original``),
    compress with the paper's ranks (``compressed.pt``), fine-tune ``finetune_epochs`` epochs
    (``run_dir/finetuned``), and write the test accuracy at the three points to ``result.json``.

    Adam at ``learning_rate`` (flat), no gradient clipping: ``train`` offers no SGD, the paper's
    optimiser (momentum 0.7, weight decay 0.01), which on the synthetic clips stayed at chance anyway.
    Every phase resumes or is reused when run again.
    """
    data = LoaderOptions(clip_cache=clip_cache)
    options = TrainOptions(
        batch_size=batch_size,
        learning_rate=learning_rate,
        lr_decay=1.0,
        clip_norm=None,
        epochs=epochs,
        seed=seed,
        log_every=5,
        checkpoint_every=20,
        data=data,
    )
    original, finetuned, compressed = run_dir / "original", run_dir / "finetuned", run_dir / "compressed.pt"
    train(
        config_from_dict(config), train_data, original, options, resume=(original / "checkpoint.pt").exists()
    )
    if not compressed.exists():
        compress_checkpoint(original / "checkpoint.pt", compressed, ranks=PAPER_RANKS)
    resume = (finetuned / "checkpoint.pt").exists()
    train(
        None,
        train_data,
        finetuned,
        replace(options, epochs=finetune_epochs),
        resume=resume,
        init=None if resume else compressed,
    )
    checkpoints = {
        "original": original / "checkpoint.pt",
        "compressed": compressed,
        "fine-tuned": finetuned / "checkpoint.pt",
    }
    accuracy = {
        name: evaluate(path, test_data, batch_size, data)["accuracy"] for name, path in checkpoints.items()
    }
    write_json_atomic(
        run_dir / "result.json",
        {"accuracy": accuracy, "compression": load_checkpoint(compressed)["compression"]},
    )


def accuracy_jobs(context: Context) -> list[Job]:
    setting = DEMO_ACCURACY if context.scale == "demo" else PAPER_ACCURACY
    if context.options.train is not None:
        train_data, test_data = context.options.train, context.options.valid
    else:
        train_data, test_data = synthetic_clips(context.out / "data" / "clips", **DEMO_CLIPS)
    arguments = {
        "config": setting["config"].to_dict(),
        "train_data": train_data,
        "test_data": test_data,
        "epochs": setting["epochs"],
        "finetune_epochs": setting["finetune_epochs"],
        **CLIP_TRAINING,
        "clip_cache": str(context.out / "data" / "clip-cache"),
    }
    return [
        Job(f"thetis-{context.scale}-seed{seed}", train_compress_finetune, {**arguments, "seed": seed})
        for seed in context.options.seed_list
    ]


def accuracy_rows(context: Context) -> list[Row]:
    results = []
    for job in accuracy_jobs(context):
        run_dir = context.run_dir(job.key)
        if not is_finished(run_dir):
            raise CompactVideoError(f"{run_dir} has not finished")
        results.append(read_json(run_dir / "result.json", "run result"))
    values = {name: [result["accuracy"][name] for result in results] for name in PUBLISHED_ACCURACY}
    stats = {name: SeedStats.of(v) for name, v in values.items()}
    rows = [
        Row(
            PAPER,
            "accuracy",
            name,
            "test accuracy",
            stats[name].mean,
            PUBLISHED_ACCURACY[name],
            "accuracy",
            stats[name].spread,
            stats[name].seeds,
        )
        for name in PUBLISHED_ACCURACY
    ]
    for name in ("compressed", "fine-tuned"):
        difference = paired_difference(values["original"], values[name])
        rows.append(
            Row(
                PAPER,
                "accuracy",
                name,
                "test accuracy - original",
                difference.mean,
                round(PUBLISHED_ACCURACY[name] - PUBLISHED_ACCURACY["original"], 2),
                "accuracy",
                difference.spread,
                difference.seeds,
                noise_note(difference, stats["original"], stats[name]),
            )
        )
    compression = results[0]["compression"]
    rows.append(
        Row(
            PAPER,
            "accuracy",
            "compression at this input size",
            "parameters ratio",
            compression["params_before"] / compression["params_after"],
            None,
            "x",
            note=f"{compression['params_before']:,} -> {compression['params_after']:,} parameters",
        )
    )
    return rows


EXPERIMENTS = [
    Experiment(
        PAPER,
        "ranks",
        "EVBMF ranks of the published THETIS network, layer by layer",
        demo_minutes=0.1,
        rows=ranks_rows,
        notes=(
            "R_out and R_in are the EVBMF ranks of the kernel's mode-0 (output channels) and mode-1 (input "
            "channels) unfoldings (Nakajima et al. 2013, noise variance at the free energy's minimum).",
        ),
    ),
    Experiment(
        PAPER,
        "budget",
        "Parameters and FLOPs of the THETIS network before and after Tucker compression",
        demo_minutes=0.3,
        rows=budget_rows,
        notes=(
            "FLOPs per 4 x 28 x 120 x 160 clip as the paper counts them: a convolution costs "
            "T F'H'W' (2 S k_F k_H k_W - 1), a linear layer (2 n_in - 1) n_out.",
        ),
    ),
    Experiment(
        PAPER,
        "speedup",
        "Measured against theoretical speed-up of the Tucker network (batch 1, CPU)",
        demo_minutes=1,
        rows=speedup_rows,
        notes=(
            "The plain path runs each Tucker layer as three nn.Conv3d, as the paper did; PyTorch sends "
            "small-channel Conv3d at batch 1 to a slow fallback kernel, which is why the paper saw x1.4 "
            "for x6 fewer FLOPs. The fast path runs the 1x1x1 convolutions as matrix products and the core "
            "through oneDNN.",
        ),
    ),
    Experiment(
        PAPER,
        "accuracy",
        "Train, compress with the paper's ranks, fine-tune: test accuracy at each point",
        demo_minutes=8,
        rows=accuracy_rows,
        jobs=accuracy_jobs,
        notes=(
            "Demo scale: synthetic forehand / backhand swing clips (RGB + depth, H.264), 120 training and "
            "60 test videos, input 4 x 8 x 48 x 64, 16 epochs then 4 of fine-tuning; paper scale: the "
            "user's THETIS folders (--train, --valid) at 4 x 28 x 120 x 160, 100 + 100 epochs.",
            "Adam (lr 1e-3) instead of the paper's SGD (momentum 0.7, weight decay 0.01): compactvideo's "
            "train() has no SGD option, and SGD at 1e-3 stayed at chance on the synthetic clips.",
        ),
    ),
]

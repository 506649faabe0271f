"""The paper scale: Araujo et al.'s training recipe, and the ``torchrun`` command lines that run it.

Every frame-level run at paper scale is one ``compactvideo train`` under ``torchrun`` (one process per
GPU, DistributedDataParallel) with the paper's hyper-parameters (sec. 4 and the authors' code):
batch 80 per GPU, Adam at 2e-4 multiplied by 0.8 every 4M examples (staircase), each variable's gradient
clipped to norm 1, 15 epochs, robust pooling's 10 samples of 15 frames, each video split in two halves
(split-half augmentation), L2-normalised frames, and a validation every million examples (the best is
kept, as the paper reports each curve's peak). Train on the training set plus 70% of the validation set
and validate on the other 30%, as the authors did.

Expected cost: an epoch is 4,822,555 videos (twice as many examples after splitting), so a run is 15
epochs, about 72M videos. At the paper's 1,007 examples/s on 4 P100 GPUs (Table B) that is 20 to 40
hours per run (the paper does not say whether its rate counts videos or halves), plus validations; the
araujo2018 experiments train 22 distinct models, 450 to 900 hours of such a node (less on current GPUs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from pathlib import Path

from compactvideo.loaders import LoaderOptions
from compactvideo.models import FrameData
from compactvideo.train import TrainOptions

PAPER_EPOCH_VIDEOS = 4_822_555
PAPER_BATCH_PER_GPU = 80
VALID_EVERY_EXAMPLES = 1_000_000
LOADER_WORKERS = 4
# The paper's data contract: robust pooling's samples of 15 frames (the model's 10 samples; mean and max
# pooling read every frame) from the first 300 frames, each frame L2-normalised. The presets' own.
PAPER_DATA = FrameData(frames_per_sample=15, max_frames=300, l2_normalize=True)
# Written out in every command line even where they equal compactvideo's defaults, so the plan shows them.
RECIPE = (
    "batch_size",
    "learning_rate",
    "lr_decay",
    "lr_decay_examples",
    "clip_norm",
    "frames_per_sample",
    "max_frames",
    "l2_normalize",
)


def paper_training(nproc_per_node: int, seed: int = 0) -> TrainOptions:
    """Araujo et al.'s recipe (module docstring) for a run on ``nproc_per_node`` GPUs."""
    steps_between_validations = math.ceil(VALID_EVERY_EXAMPLES / (PAPER_BATCH_PER_GPU * nproc_per_node))
    return TrainOptions(
        batch_size=PAPER_BATCH_PER_GPU,
        learning_rate=2e-4,
        lr_decay=0.8,
        lr_decay_examples=4_000_000,
        clip_norm=1.0,
        epochs=15,
        seed=seed,
        valid_every=steps_between_validations,
        checkpoint_every=1000,
        data=LoaderOptions(split_half=True, num_workers=LOADER_WORKERS),
    )


def _default(field: dataclasses.Field) -> object:
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def train_flags(
    options: TrainOptions | LoaderOptions | FrameData, explicit: Collection[str] = RECIPE
) -> list[str]:
    """The ``compactvideo train`` flags that give ``options`` (or a data contract): one per field that
    differs from its default or is named in ``explicit`` (booleans as ``--flag`` / ``--no-flag``; no
    gradient clipping as ``--clip-norm 0``)."""
    flags: list[str] = []
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if dataclasses.is_dataclass(value):
            flags += train_flags(value, explicit)
            continue
        if value == _default(field) and field.name not in explicit:
            continue
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        else:
            flags += [flag, "0" if field.name == "clip_norm" and value is None else str(value)]
    return flags


def train_command(
    config_file: Path,
    train: str,
    valid: str,
    run_dir: Path,
    options: TrainOptions,
    nproc_per_node: int,
    data: FrameData = PAPER_DATA,
) -> list[str]:
    """``torchrun --standalone --nproc_per_node=N -m compactvideo.cli train ...`` for one run, the
    model's data contract ``data`` written out as its flags."""
    return [
        "torchrun",
        "--standalone",
        f"--nproc_per_node={nproc_per_node}",
        "-m",
        "compactvideo.cli",
        "train",
        "--model",
        str(config_file),
        "--train",
        train,
        "--valid",
        valid,
        "--out",
        str(run_dir),
        *train_flags(options),
        *train_flags(data),
    ]

"""Arguments shared by several commands: how records become batches.

Two kinds: the model's data contract (``--frame-sampling``, ``--frames``, ``--samples``,
``--frames-per-sample``, ``--max-frames``, ``--l2-normalize``, ``--clip-sampling``; each named like its
field of :mod:`compactvideo.models.config`), which ``train`` records in the model's config and other
commands read from the checkpoint unless a flag overrides it (with a warning); and the loader options
(:class:`compactvideo.loaders.LoaderOptions`), which do not change the model's input.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from compactvideo.errors import check_at_least
from compactvideo.loaders import FRAME_DTYPE_CHOICES, LoaderOptions
from compactvideo.models.config import CLIP_SAMPLINGS, FRAME_SAMPLING_MODES, ClipData, FrameData

# One flag per field of the frame-level and clip contracts (video-level records have none).
CONTRACT_FIELDS = tuple(
    field.name for contract in (FrameData, ClipData) for field in dataclasses.fields(contract)
)


def add_loader_options(parser: argparse.ArgumentParser) -> None:
    contract = parser.add_argument_group(
        "data contract",
        "how the model's input is made; train records it in the model, other commands read it from the "
        "checkpoint (a flag overrides it, with a warning). Defaults shown are the presets'.",
    )
    frame, clip = FrameData(), ClipData()
    contract.add_argument(
        "--frame-sampling",
        choices=FRAME_SAMPLING_MODES,
        help=f"frames fed to the model; auto: what its pooling asks for, robust samples or all "
        f"(default {frame.frame_sampling})",
    )
    contract.add_argument(
        "--frames", type=int, help=f"frames drawn by --frame-sampling random (default {frame.frames})"
    )
    contract.add_argument(
        "--samples",
        type=int,
        help="robust sampling: number of samples n (default: the model's pooling groups)",
    )
    contract.add_argument(
        "--frames-per-sample",
        type=int,
        help=f"robust sampling: frames per sample k (default {frame.frames_per_sample})",
    )
    contract.add_argument(
        "--max-frames", type=int, help=f"frames kept per video (default {frame.max_frames})"
    )
    contract.add_argument(
        "--l2-normalize",
        action=argparse.BooleanOptionalAction,
        help="L2-normalise each 1152-d frame vector, as the starter code does "
        f"(default {frame.l2_normalize})",
    )
    contract.add_argument(
        "--clip-sampling",
        choices=CLIP_SAMPLINGS,
        help=f"clip models: T consecutive frames around the middle, or T frames spread over the video "
        f"(default {clip.clip_sampling})",
    )
    group = parser.add_argument_group("data loading")
    defaults = LoaderOptions()
    group.add_argument(
        "--split-half",
        action=argparse.BooleanOptionalAction,
        default=defaults.split_half,
        help="training only: each video becomes two examples, its first and second half",
    )
    group.add_argument(
        "--shuffle-buffer", type=int, default=defaults.shuffle_buffer, help="records (training)"
    )
    group.add_argument(
        "--num-workers", type=int, default=defaults.num_workers, help="DataLoader worker processes"
    )
    group.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="skip damaged records (counted, and reported in the JSON output and log.jsonl) instead of "
        "stopping at the first",
    )
    group.add_argument(
        "--max-skipped",
        type=int,
        default=defaults.max_skipped,
        metavar="N",
        help="with --skip-corrupt: stop once more than N damaged records were skipped (training: in an "
        "epoch; evaluation: in the pass); default: no limit",
    )
    group.add_argument(
        "--clip-cache",
        default=defaults.clip_cache,
        help="clip models: 'memory', or a folder for decoded clips (default: decode every epoch)",
    )
    group.add_argument(
        "--frame-dtype",
        choices=FRAME_DTYPE_CHOICES,
        default=defaults.frame_dtype,
        help="frame-level records: batches carry the sampled frames as stored (uint8, dequantised on the "
        "model's device) or dequantised by the loader (float32); auto: uint8 for a GPU (default auto)",
    )
    group.add_argument(
        "--pin-memory",
        action=argparse.BooleanOptionalAction,
        default=defaults.pin_memory,
        help="batches in page-locked memory for asynchronous copies to a GPU (default: on for a GPU)",
    )
    group.add_argument(
        "--prefetch-factor",
        type=int,
        default=defaults.prefetch_factor,
        help="batches each worker prepares ahead (needs --num-workers; default torch's, 2)",
    )
    group.add_argument(
        "--persistent-workers",
        action="store_true",
        help="keep the validation loader's workers alive between validations (needs --num-workers)",
    )


def loader_options(args: argparse.Namespace) -> LoaderOptions:
    """The LoaderOptions the arguments of :func:`add_loader_options` describe (one argument per field)."""
    return LoaderOptions(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(LoaderOptions)}
    )


def contract_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The data-contract fields given on the command line (those left out keep the model's value); the
    counts among them checked here, so that an error names the flag whatever the model."""
    given = {name: getattr(args, name) for name in CONTRACT_FIELDS if getattr(args, name) is not None}
    for name in ("frames", "samples", "frames_per_sample", "max_frames"):
        check_at_least(name, given.get(name), 1)
    return given

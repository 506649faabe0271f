"""Arguments shared by several commands: how records become batches."""

from __future__ import annotations

import argparse
import dataclasses

from compactvideo.loaders import LoaderOptions


def add_loader_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    defaults = LoaderOptions()
    group.add_argument(
        "--frame-sampling",
        choices=("auto", "all", "random", "robust"),
        default=defaults.frame_sampling,
        help="frames fed to the model; auto: what the model's pooling asks for (robust samples or all)",
    )
    group.add_argument(
        "--frames", type=int, default=defaults.frames, help="frames drawn by --frame-sampling random"
    )
    group.add_argument(
        "--samples", type=int, default=defaults.samples, help="robust pooling: number of samples n"
    )
    group.add_argument(
        "--frames-per-sample",
        type=int,
        default=defaults.frames_per_sample,
        help="robust pooling: frames per sample k",
    )
    group.add_argument("--max-frames", type=int, default=defaults.max_frames, help="frames kept per video")
    group.add_argument(
        "--split-half",
        action=argparse.BooleanOptionalAction,
        default=defaults.split_half,
        help="training only: each video becomes two examples, its first and second half",
    )
    group.add_argument(
        "--l2-normalize",
        action=argparse.BooleanOptionalAction,
        default=defaults.l2_normalize,
        help="L2-normalise each 1152-d frame vector, as the starter code does",
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
        help="skip damaged records (counted and reported) instead of failing",
    )
    group.add_argument(
        "--clip-sampling",
        choices=("center", "uniform"),
        default=defaults.clip_sampling,
        help="clip models: T consecutive frames around the middle, or T frames spread over the video",
    )
    group.add_argument(
        "--clip-cache",
        default=defaults.clip_cache,
        help="clip models: 'memory', or a folder for decoded clips (default: decode every epoch)",
    )


def loader_options(args: argparse.Namespace) -> LoaderOptions:
    """The LoaderOptions the arguments of :func:`add_loader_options` describe (one argument per field)."""
    return LoaderOptions(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(LoaderOptions)}
    )

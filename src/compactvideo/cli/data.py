"""``compactvideo data ...``: YouTube-8M records and video clips (inspect, synthesise, download).

Each sub-command is one ``_add_<name>`` function below, registered in :func:`register`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _run_synth(args: argparse.Namespace) -> int:
    from compactvideo.data.synthetic import synthesize

    paths = synthesize(
        args.out_dir,
        level=args.level,
        videos=args.videos,
        classes=args.classes,
        shards=args.shards,
        seed=args.seed,
        difficulty=args.difficulty,
        max_frames=args.max_frames,
        min_frames=args.min_frames,
        prefix=args.prefix,
        vocabulary_seed=args.vocabulary_seed,
    )
    print(f"wrote {args.videos} {args.level}-level videos in {len(paths)} shards to {args.out_dir}")
    return 0


def _add_synth(data_commands: argparse._SubParsersAction) -> None:
    parser = data_commands.add_parser(
        "synth", help="write synthetic, learnable YouTube-8M records (the real TFRecord format)"
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--level", choices=("frame", "video"), default="frame")
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--vocabulary-seed",
        type=int,
        help="seed of the classes' prototypes (default: --seed); give splits of one data set the same one",
    )
    parser.add_argument(
        "--difficulty", type=float, default=0.5, help="0 (strong, frequent label segments) to 1 (rare, weak)"
    )
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--min-frames", type=int, help="shortest video (default: max-frames // 4)")
    parser.add_argument("--prefix", default="train", help="shard names: PREFIX0000.tfrecord ...")
    parser.set_defaults(run=_run_synth)


def _run_inspect(args: argparse.Namespace) -> int:
    from compactvideo.data.files import resolve_files
    from compactvideo.data.inspection import format_inspection, inspect_records
    from compactvideo.errors import check_at_least

    check_at_least("max_skipped", args.max_skipped, 0)
    paths = [path for pattern in args.files for path in resolve_files(pattern)]
    report = inspect_records(paths, max_skipped=args.max_skipped)
    print(json.dumps(report, indent=2) if args.json else format_inspection(report))
    return 1 if report["skipped"] else 0


def _add_inspect(data_commands: argparse._SubParsersAction) -> None:
    parser = data_commands.add_parser(
        "inspect",
        help="record counts, frame-count histogram, label statistics and damaged records",
        description="Exits with status 1 when a record is damaged (each is listed with its file and offset).",
    )
    parser.add_argument("files", nargs="+", help="TFRecord files, globs or folders")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--max-skipped",
        type=int,
        metavar="N",
        help="stop with an error once more than N damaged records were skipped (default: read everything)",
    )
    parser.set_defaults(run=_run_inspect)


def _run_download(args: argparse.Namespace) -> int:
    from compactvideo.data.download import Downloader, download_partition

    report = download_partition(
        args.partition,
        args.out,
        shards=args.shards,
        mirror=args.mirror,
        base_url=args.base_url,
        downloader=Downloader(retries=args.retries, allow_http=args.allow_http),
    )
    print(
        f"downloaded {len(report.downloaded)} files ({report.bytes / 2**20:.1f} MiB), "
        f"{len(report.skipped)} already complete, into {args.out}"
    )
    if report.plain_http_hosts:
        print(f"over plain HTTP, unauthenticated, from {', '.join(report.plain_http_hosts)}")
    return 0


def _add_download(data_commands: argparse._SubParsersAction) -> None:
    parser = data_commands.add_parser(
        "download", help="download YouTube-8M shards from the official mirrors (resumable, MD5-verified)"
    )
    parser.add_argument("--partition", required=True, help="VERSION/LEVEL/SPLIT, e.g. 2/frame/train")
    parser.add_argument("--shards", default="1/1", help="M/N: the M-th of N disjoint parts (default: all)")
    parser.add_argument("--mirror", choices=("us", "eu", "asia"), default="us")
    parser.add_argument("--out", type=Path, required=True, help="folder for the shards (run again to resume)")
    parser.add_argument(
        "--base-url", help="serve plan and files from here instead (a local mirror), scheme as given"
    )
    parser.add_argument("--retries", type=int, default=5, help="per file, with exponential back-off")
    parser.add_argument(
        "--allow-http",
        action="store_true",
        help="UNSAFE: when a server gives no verified HTTPS answer, fetch from it over plain HTTP. Anyone on "
        "the network path can then replace the download plan and the files together, and the plan's MD5s, "
        "which come with it, cannot tell (they only catch damage in transit)",
    )
    parser.set_defaults(run=_run_download)


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 160x120, got {text!r}")
    return int(width), int(height)


def _run_synth_clips(args: argparse.Namespace) -> int:
    from compactvideo.data.synthetic_clips import synthesize_clips

    truth = synthesize_clips(
        args.out_dir,
        classes=args.classes,
        videos_per_class=args.videos_per_class,
        frames=args.frames,
        size=args.size,
        depth=args.depth,
        seed=args.seed,
        distractors=args.distractors,
    )
    print(
        f"wrote {len(truth['videos'])} {truth['codec']} videos ({', '.join(truth['classes'])}; "
        f"{args.frames} frames of {args.size[0]}x{args.size[1]}{', with depth' if args.depth else ''}) "
        f"to {args.out_dir}"
    )
    return 0


def _add_synth_clips(data_commands: argparse._SubParsersAction) -> None:
    parser = data_commands.add_parser(
        "synth-clips",
        help="write encoded videos of a learnable swing task (direction of motion is the class), "
        "one folder per class",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--classes", type=int, default=2, help="2: backhand, forehand; more: swing angles")
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--size", type=_size, default=(160, 120), help="WIDTHxHEIGHT, both even")
    parser.add_argument(
        "--depth", action=argparse.BooleanOptionalAction, default=True, help="write NAME.depth.mp4 too"
    )
    parser.add_argument("--distractors", type=int, default=4, help="at most this many moving shapes")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_synth_clips)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "data", help="YouTube-8M records and video clips: inspect, synthesise, download"
    )
    parser.set_defaults(run=lambda args: parser.print_help() or 2)
    data_commands = parser.add_subparsers(title="data commands", metavar="COMMAND")
    _add_synth(data_commands)
    _add_inspect(data_commands)
    _add_download(data_commands)
    _add_synth_clips(data_commands)

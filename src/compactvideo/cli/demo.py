"""``compactvideo demo``: synthetic YouTube-8M data, dense and circulant models trained and compared."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def _run_demo(args: argparse.Namespace) -> int:
    from compactvideo.demo import DemoOptions, format_results, run_demo

    options = DemoOptions(
        train_videos=args.train_videos,
        valid_videos=args.valid_videos,
        classes=args.classes,
        max_frames=args.max_frames,
        examples=args.examples,
        validations=args.validations,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        seed=args.seed,
        models=tuple(args.models),
    )
    rows = run_demo(args.out, options)
    print(format_results(rows))
    print(f"\nresults: {args.out / 'results.json'}; plot: {args.out / 'size_vs_gap.png'}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    from compactvideo.demo import DemoOptions

    defaults = {field.name: field.default for field in dataclasses.fields(DemoOptions)}
    parser = commands.add_parser(
        "demo", help="train dense and circulant DBoF / NetVLAD / NetFV on synthetic YouTube-8M data"
    )
    parser.add_argument("--out", type=Path, default=Path("demo-run"), help="run directory (resumable)")
    parser.add_argument("--train-videos", type=int, default=defaults["train_videos"])
    parser.add_argument("--valid-videos", type=int, default=defaults["valid_videos"])
    parser.add_argument("--classes", type=int, default=defaults["classes"])
    parser.add_argument("--max-frames", type=int, default=defaults["max_frames"])
    parser.add_argument(
        "--examples", type=int, default=defaults["examples"], help="training examples per model"
    )
    parser.add_argument(
        "--validations", type=int, default=defaults["validations"], help="per model; the best is kept"
    )
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    parser.add_argument(
        "--learning-rate", type=float, default=defaults["learning_rate"], help="halved 4 times in the budget"
    )
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument("--models", nargs="+", default=list(defaults["models"]), help="presets to train")
    parser.set_defaults(run=_run_demo)

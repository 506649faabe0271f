"""``compactvideo reproduce``: re-run a paper's tables and figures beside the published numbers."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

YOUTUBE8M_CLASSES = 3862


def _run_reproduce(args: argparse.Namespace) -> int:
    from compactvideo.errors import CompactVideoError
    from compactvideo.reproduce import DEMO_BUDGET, ReproduceOptions, format_listing, reproduce
    from compactvideo.reproduce.report import experiment_table

    if args.list:
        print(format_listing())
        return 0
    if args.paper is None or args.out is None:
        raise CompactVideoError("name a paper and --out DIR (or ask for --list)")
    classes = args.classes or (DEMO_BUDGET.classes if args.train is None else YOUTUBE8M_CLASSES)
    options = ReproduceOptions(
        scale=args.scale,
        seeds=args.seeds,
        budget=dataclasses.replace(DEMO_BUDGET, examples=args.examples, classes=classes),
        train=args.train,
        valid=args.valid,
        workers=args.workers,
        nproc_per_node=args.nproc_per_node,
        thetis_weights=args.thetis_weights,
    )
    experiments = [name.strip() for name in args.experiments.split(",")] if args.experiments else None
    rows = reproduce(args.paper, args.out, options, experiments, plan_only=args.plan_only)
    if args.plan_only:
        print(f"plan: {args.out / 'plan.json'}; command lines: {args.out / 'plan.sh'}")
        return 0
    for experiment in dict.fromkeys(row.experiment for row in rows):
        print(f"\n{args.paper} {experiment}\n")
        print(experiment_table([row for row in rows if row.experiment == experiment]))
    print(f"\nreport: {args.out / 'report.md'}; rows: {args.out / 'results.json'}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    from compactvideo.reproduce import DEMO_BUDGET, PAPERS

    parser = commands.add_parser(
        "reproduce",
        help="re-run a paper's tables and figures (demo or paper scale) beside the published numbers",
        description="Re-run the experiments of a paper into --out: results.json (ours beside published), "
        "report.md (Markdown tables) and figures/*.png. Finished runs and experiments are reused, so an "
        "interrupted reproduction resumes when run again.",
    )
    parser.add_argument("paper", nargs="?", choices=list(PAPERS), help="the paper to reproduce")
    parser.add_argument("--list", action="store_true", help="list every experiment with its estimated time")
    parser.add_argument(
        "--experiments", help="comma-separated experiment names (default: all of the paper's)"
    )
    parser.add_argument("--out", type=Path, help="output folder (resumable)")
    parser.add_argument(
        "--scale",
        choices=("demo", "paper"),
        default="demo",
        help="demo: synthetic data (or --train/--valid) and small budgets on a CPU; paper: the papers' "
        "hyper-parameters on real data under torchrun",
    )
    parser.add_argument("--train", help="training data (frame-level TFRecord glob, or a clip folder)")
    parser.add_argument("--valid", help="validation data, same forms as --train")
    parser.add_argument("--seeds", type=int, help="seeds per trained row (default: 3 demo, 1 paper)")
    parser.add_argument(
        "--examples", type=int, default=DEMO_BUDGET.examples, help="demo scale: training examples per run"
    )
    parser.add_argument(
        "--classes",
        type=int,
        help="demo scale: classes of the data (default: 100 synthetic, 3,862 with --train)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="demo scale: training runs at once, one thread each (default: the CPU count)",
    )
    parser.add_argument("--nproc-per-node", type=int, default=1, help="paper scale: processes (GPUs) per run")
    parser.add_argument(
        "--thetis-weights",
        type=Path,
        help="rasmussen2022: the published THETIS network (default: ../shared/fixtures of a source checkout)",
    )
    parser.add_argument(
        "--plan-only", action="store_true", help="write the training runs (plan.json, plan.sh) and stop"
    )
    parser.set_defaults(run=_run_reproduce)

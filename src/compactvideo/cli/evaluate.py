"""``compactvideo eval`` and ``compactvideo predict``: metrics and Kaggle submissions of a checkpoint.

Both also run under ``torchrun`` (each rank a share of the data; rank 0 prints and writes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compactvideo.cli.options import add_loader_options, contract_overrides, loader_options


def _run_eval(args: argparse.Namespace) -> int:
    from compactvideo.distributed import is_main_process
    from compactvideo.evaluate import evaluate

    result = evaluate(
        args.checkpoint,
        args.data,
        args.batch_size,
        loader_options(args),
        args.out,
        args.device,
        contract=contract_overrides(args),
    )
    if is_main_process():  # under torchrun, one report
        print(json.dumps(result, indent=2))
    return 0


def _add_eval(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="GAP@20, Hit@1, PERR, mAP (or accuracy) of a checkpoint")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, help="a glob of TFRecord shards, or a clip folder")
    parser.add_argument("--out", type=Path, help="also write the metrics to this JSON file")
    parser.add_argument(
        "--batch-size", type=int, default=256, help="videos per loaded batch (results do not depend on it)"
    )
    parser.add_argument("--device", default="cpu")
    add_loader_options(parser)
    parser.set_defaults(run=_run_eval)


def _run_predict(args: argparse.Namespace) -> int:
    from compactvideo.distributed import is_main_process
    from compactvideo.evaluate import predict

    report = predict(
        args.checkpoint,
        args.data,
        args.out,
        args.top_k,
        args.batch_size,
        loader_options(args),
        args.device,
        contract=contract_overrides(args),
    )
    if is_main_process():  # the rows written, and what was read (records, damaged records skipped)
        print(json.dumps(report, indent=2))
    return 0


def _add_predict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("predict", help="top-20 predictions of every video, Kaggle CSV format")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, help="a glob of TFRecord shards")
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    add_loader_options(parser)
    parser.set_defaults(run=_run_predict)


def register(commands: argparse._SubParsersAction) -> None:
    _add_eval(commands)
    _add_predict(commands)

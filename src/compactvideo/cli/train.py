"""``compactvideo train``: one process, or many under torchrun."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from compactvideo.cli.options import add_loader_options, contract_overrides, loader_options
from compactvideo.precision import PRECISIONS
from compactvideo.train import TrainOptions


def _run_train(args: argparse.Namespace) -> int:
    from compactvideo.distributed import is_main_process
    from compactvideo.errors import check_at_least
    from compactvideo.models import resolve_model_spec
    from compactvideo.train import train

    options = TrainOptions(
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lr_decay=args.lr_decay,
        lr_decay_examples=int(args.lr_decay_examples),
        clip_norm=None if args.clip_norm == 0 else args.clip_norm,
        max_examples=args.max_examples,
        epochs=args.epochs,
        seed=args.seed,
        log_every=args.log_every,
        valid_every=args.valid_every,
        valid_max_videos=args.valid_max_videos,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        data=loader_options(args),
    )
    check_at_least("num_classes", args.num_classes, 1)
    model = resolve_model_spec(args.model, args.num_classes) if args.model else None
    summary = train(
        model,
        args.train,
        args.out,
        options,
        args.valid,
        resume=args.resume,
        init=args.init,
        contract=contract_overrides(args),
    )
    if is_main_process():  # under torchrun, one summary
        print(json.dumps(summary, indent=2))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a model (one process, or many under torchrun)")
    parser.add_argument(
        "--model", help="a preset name (see `compactvideo models`) or a YAML/JSON config file"
    )
    parser.add_argument("--num-classes", type=int, help="override the preset's number of classes")
    parser.add_argument(
        "--train", required=True, help="training data: a glob of TFRecord shards, or a clip folder"
    )
    parser.add_argument("--valid", help="validation data, same forms as --train")
    parser.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, logs)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (mid-epoch: same ranks and --num-workers)",
    )
    parser.add_argument(
        "--init", type=Path, help="start from this checkpoint's model and weights (fine-tuning)"
    )
    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults["batch_size"],
        help="examples per step and rank (a last batch of one joins the one before)",
    )
    parser.add_argument("--learning-rate", type=float, default=defaults["learning_rate"])
    parser.add_argument("--lr-decay", type=float, default=defaults["lr_decay"], help="staircase decay factor")
    parser.add_argument(
        "--lr-decay-examples",
        type=float,
        default=defaults["lr_decay_examples"],
        help="examples between decays",
    )
    parser.add_argument(
        "--clip-norm", type=float, default=defaults["clip_norm"], help="per-parameter gradient norm (0: off)"
    )
    parser.add_argument("--max-examples", type=int, help="stop after this many training examples (all ranks)")
    parser.add_argument("--epochs", type=int, help="stop after this many passes over the data")
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument("--log-every", type=int, default=defaults["log_every"], help="steps")
    parser.add_argument(
        "--valid-every", type=int, help="steps between validations (default: at the end only)"
    )
    parser.add_argument(
        "--valid-max-videos", type=int, help="validate on the first N videos of --valid (default: all)"
    )
    parser.add_argument("--checkpoint-every", type=int, default=defaults["checkpoint_every"], help="steps")
    parser.add_argument(
        "--device",
        default=defaults["device"],
        help="auto (a GPU when there is one), cpu, or cuda (under torchrun: each rank's local GPU)",
    )
    parser.add_argument(
        "--precision",
        default=defaults["precision"],
        help=f"{', '.join(PRECISIONS)}: float32, or the forward pass under torch.autocast in bfloat16 "
        "or float16 (with loss scaling); circulant FFTs stay float32 (default 32)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the training steps through torch.compile: faster steps after minutes of compiling "
        "(measured in the README)",
    )
    add_loader_options(parser)
    parser.set_defaults(run=_run_train)

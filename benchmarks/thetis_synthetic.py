"""Train, Tucker-compress and fine-tune the THETIS network on synthetic swing clips (issue 6's experiment).

Rasmussen et al. (NLDL 2022) report 92% accuracy for their THETIS network, 68% right after Tucker
compression and 90% after fine-tuning. This script repeats the procedure end to end on the synthetic
forehand/backhand clips of :mod:`compactvideo.data.synthetic_clips` (real H.264 files, RGB + depth,
decoded by :mod:`compactvideo.data.clips`), with the library's
:func:`compactvideo.reproduce.rasmussen2022.train_compress_finetune` (what ``compactvideo reproduce
rasmussen2022 --experiments accuracy`` runs for each seed):

1. write ``--train-per-class`` and ``--test-per-class`` videos per class (different seeds); clips are
   ``--frames`` around the middle, area-resized to ``--size``, decoded once into a cache;
2. train the network with Adam at ``--lr``, batch ``--batch-size``, for ``--epochs`` (``train``; the
   paper's SGD with momentum 0.7 and weight decay 0.01 stayed at chance after 24 epochs on these clips,
   and ``train`` offers Adam only);
3. compress with the paper's ranks (c1 (2,2), c2 (3,2), l1 (7,4), l2 Tucker-1 rank 1);
4. fine-tune the compressed network for ``--finetune-epochs``;

and prints the test accuracy at the three points, parameters and FLOPs before and after, and the time,
on 1 thread; ``--out`` keeps the runs (resumable) and ``results.json``.

The network's last conv (l1) spans whatever volume is left after c2, so the network accepts any clip of
at least 8x32x32; the paper's 4x28x120x160 costs about 2 s per clip and training step on one core, so
the defaults use a smaller clip to fit a run in minutes. ``--frames 28 --size 160x120`` is the paper's.

    python benchmarks/thetis_synthetic.py [--epochs 16] [--size 64x48] [--frames 8]

Measured (AMD EPYC, 2 vCPUs shared with other jobs, 1 thread; the defaults: 120 training / 60 test clips,
input 4x8x48x64): accuracy 86.7% -> 81.7% after compression -> 91.7% after fine-tuning; 45,164 -> 4,694
parameters (x9.62), 716.3M -> 119.9M FLOPs (x5.97); 535 s in all.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from compactvideo.models import PRESETS
from compactvideo.profiling import describe_machine
from compactvideo.reproduce.rasmussen2022 import PUBLISHED_ACCURACY, synthetic_clips, train_compress_finetune


def size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("thetis_synthetic"))
    parser.add_argument("--train-per-class", type=int, default=60)
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--video-frames", type=int, default=16, help="frames per synthetic video")
    parser.add_argument("--video-size", type=size, default=(128, 96), help="synthetic videos' WxH")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (around the middle)")
    parser.add_argument("--size", type=size, default=(64, 48), help="the network's input WxH")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    train_data, test_data = synthetic_clips(
        args.out / "clips", args.train_per_class, args.test_per_class, args.video_frames, args.video_size
    )
    width, height = args.size
    config = replace(PRESETS["thetis"], frames=args.frames, height=height, width=width)
    run_dir = args.out / f"seed{args.seed}"
    train_compress_finetune(
        run_dir,
        config.to_dict(),
        train_data,
        test_data,
        args.epochs,
        args.finetune_epochs,
        args.lr,
        args.batch_size,
        args.seed,
        str(args.out / "clip-cache"),
    )
    result = json.loads((run_dir / "result.json").read_text())
    total = time.perf_counter() - started

    print(f"\n{describe_machine()}, 1 thread")
    print(
        f"data: {2 * args.train_per_class} training and {2 * args.test_per_class} test clips (synthetic "
        f"swings), input 4x{args.frames}x{height}x{width}; Adam lr {args.lr}, batch {args.batch_size}, "
        f"{args.epochs} epochs, fine-tuning {args.finetune_epochs}"
    )
    print(f"\n{'model':<12} {'accuracy':>9} {'paper':>6}")
    for name, accuracy in result["accuracy"].items():
        print(f"{name:<12} {accuracy:>9.1%} {PUBLISHED_ACCURACY[name]:>6.0%}")
    compression = result["compression"]
    print(
        f"\nparameters {compression['params_before']:,} -> {compression['params_after']:,} "
        f"(x{compression['params_before'] / compression['params_after']:.2f}); FLOPs "
        f"{compression['flops_before'] / 1e6:.1f}M -> {compression['flops_after'] / 1e6:.1f}M "
        f"(x{compression['flops_before'] / compression['flops_after']:.2f}); {total:.0f} s in all"
    )
    summary = {
        "args": {k: str(v) for k, v in vars(args).items()},
        **result,
        "paper": PUBLISHED_ACCURACY,
        "total_seconds": total,
        "machine": describe_machine(),
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

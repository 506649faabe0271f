"""Training throughput of the paper's presets, with the data loader included and excluded (issue 16).

For each preset (dense and compact-FC DBoF and NetVLAD, Araujo et al. 2018, Table 3) on synthetic
300-frame videos in the real format, at the paper's layout (split-half, robust 10 x 15 frames,
batch 80), three rates in examples/s, each after ``--warmup`` untimed steps:

- **loader**: the training loader alone, each batch copied to the device (what the input pipeline can
  deliver: uint8 frames to a GPU, float32 on a CPU; see :mod:`compactvideo.loaders`);
- **steps**: :func:`compactvideo.train.train_step` on batches already on the device, cycled (what the
  model can take: forward, loss, backward, per-parameter clipping, Adam);
- **both**: the training loop, the loader feeding the steps.

The slower of the first two binds: "loader" means more workers (or a faster disk) would speed training
up, "model" that only a faster device would. ``both`` / min(loader, steps) shows how well the two
overlap. With ``--compile`` the steps are also timed through ``torch.compile`` (ratio to eager).

On a CPU (1 torch thread, as every benchmark here) the budgets are small: the paper's DBoF takes
seconds per step. Ready for a GPU as it is:

    python benchmarks/train_throughput.py --device cuda --precision bf16-mixed --steps 50 --warmup 10

prints the peak GPU memory of each preset as well (``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator

import torch

from compactvideo.distributed import DistributedContext, resolve_device
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import build_model, task_for
from compactvideo.precision import PRECISIONS, Precision
from compactvideo.profiling import describe_machine
from compactvideo.train import TrainOptions, train_step

PRESETS = ("paper-dbof-dense", "paper-dbof-compact-fc", "paper-netvlad-dense", "paper-netvlad-compact-fc")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(config, pattern: str, options: LoaderOptions, batch_size: int, device: torch.device) -> Iterator:
    """Training batches epoch after epoch (seed 0), as training reads them."""
    context = DistributedContext(device)
    for epoch in itertools.count():
        yield from make_loader(config, pattern, options, batch_size, True, context, epoch=epoch)


def rate(run: Callable[[], int], warmup: int, steps: int, device: torch.device) -> float:
    """Examples/s of ``steps`` calls of ``run`` (each returns its examples) after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    synchronize(device)
    started, examples = time.perf_counter(), 0
    for _ in range(steps):
        examples += run()
    synchronize(device)
    return examples / (time.perf_counter() - started)


def measure(name: str, pattern: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(name).to(device).train()
    config, task = model.config, task_for(model.config)
    optimizer = torch.optim.Adam(model.parameters())
    precision = Precision(args.precision, device)
    options = LoaderOptions(split_half=True, num_workers=args.num_workers)
    lr = TrainOptions.learning_rate  # the paper's 2e-4
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step_on(batch: dict, wrapped: torch.nn.Module) -> int:
        train_step(model, wrapped, optimizer, task, batch, lr, 1.0, device, precision=precision)
        return task.batch_size(batch)

    stream = batches(config, pattern, options, args.batch_size, device)

    def load() -> int:
        batch = next(stream)
        task.inputs(batch, device)  # the copy to the device
        return task.batch_size(batch)

    results = {"loader": rate(load, args.warmup, args.steps, device)}
    on_device = [
        {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
        for batch in itertools.islice(stream, min(args.steps, 4))
    ]
    cycle = itertools.cycle(on_device)
    results["steps"] = rate(lambda: step_on(next(cycle), model), args.warmup, args.steps, device)
    results["both"] = rate(lambda: step_on(next(stream), model), args.warmup, args.steps, device)
    if args.compile:
        compiled = torch.compile(model)
        results["compiled"] = rate(lambda: step_on(next(cycle), compiled), args.warmup, args.steps, device)
    if device.type == "cuda":
        results["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--precision", default="32", choices=PRECISIONS)
    parser.add_argument("--batch-size", type=int, default=80)
    parser.add_argument("--steps", type=int, help="timed steps (default: 3 on a CPU, 50 on a GPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: 1 on a CPU, 10 on a GPU)")
    parser.add_argument("--num-workers", type=int, help="loader workers (default: 1 on a CPU, 6 on a GPU)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd steps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    args.steps = args.steps or (50 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    args.num_workers = args.num_workers if args.num_workers is not None else (6 if gpu else 1)
    torch.set_num_threads(1)
    from compactvideo.data.synthetic import synthesize

    print(describe_machine() + (f"; {torch.cuda.get_device_name(device)}" if gpu else ""))
    # one epoch holds every batch the three measurements read (two examples per video)
    videos = (args.warmup + args.steps + 2) * args.batch_size
    with tempfile.TemporaryDirectory() as folder:
        (path,) = synthesize(folder, "frame", videos, classes=3862, shards=1, min_frames=300, max_frames=300)
        print(
            f"{device}, precision {args.precision}, batch {args.batch_size}, split-half, each preset's frame "
            f"sampling, {args.num_workers} loader workers; {args.steps} timed steps after {args.warmup}"
        )
        header = f"{'preset':<26} {'loader':>8} {'steps':>8} {'both':>8} {'binds':>6} {'overlap':>7}"
        header += " compiled/eager" if args.compile else ""
        header += "  peak GiB" if gpu else ""
        print(header + "   (examples/s)")
        for name in args.presets:
            result = measure(name, str(path), args, device)
            binding = "loader" if result["loader"] < result["steps"] else "model"
            overlap = result["both"] / min(result["loader"], result["steps"])
            line = f"{name:<26} {result['loader']:>8.0f} {result['steps']:>8.1f} {result['both']:>8.1f}"
            line += f" {binding:>6} {overlap:>7.2f}"
            if args.compile:
                line += f" {result['compiled'] / result['steps']:>14.2f}"
            if gpu:
                line += f" {result['peak_gib']:>9.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()

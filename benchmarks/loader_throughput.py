"""Training loader throughput at the paper's layout, against reading the same records alone (issue 16).

Synthetic 300-frame videos in the real YouTube-8M format (:mod:`compactvideo.data.synthetic`) go to one
temporary shard; the loader then delivers training batches as Araujo et al. trained: each video split
into its two halves (``--split-half``), robust sampling of 10 samples x 15 frames per half, batch 80,
read by 0 (the main process), 1 and 2 DataLoader workers, with float32 batches (dequantised by the
loader) and uint8 batches (the stored bytes, dequantised on the model's device). Every rate is the best
of ``--repeats`` passes over the whole shard, the configurations taking turns within each repeat, from
the page cache, on 1 torch thread per process.

Reading alone is :func:`compactvideo.data.read_records` over the same shard: records framed, both CRCs
checked, parsed; as uint8 views (what the loader starts from) and dequantised to float32 (what the
loader started from before issue 16). Its videos/s x 2 is the examples/s ceiling of one process.

Handing a batch from a worker to the main process means writing it into fresh shared memory; the
script times that (a uint8 batch of the paper's layout filled in shared memory) against filling the same
batch in the main process's memory, since on some machines (VMs) page faults in shared memory dominate.

``--baseline REV`` also measures the loader of another revision of this repository (``git archive`` of
its ``src/`` into a temporary folder, run in a subprocess on the same shard, taking turns with this
one): e.g. the commit before issue 16, for "float mode >= 2x today". Targets: uint8 batches at least
2,000 examples/s per worker; float32 batches at least 2x the baseline's.

    python benchmarks/loader_throughput.py [--videos 800] [--repeats 3] [--baseline 241fdc6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from compactvideo.data.yt8m import read_records
from compactvideo.distributed import DistributedContext
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import resolve_model_spec
from compactvideo.profiling import describe_machine

PRESET = "paper-dbof-dense"  # robust pooling over 10 samples; the data contract's 15 frames per sample
WORKERS = (0, 1, 2)
FRAME_DTYPES = ("float32", "uint8")
REPOSITORY = Path(__file__).resolve().parents[1]


def loader_rate(pattern: str, workers: int, batch_size: int, frame_dtype: str | None) -> float:
    """Examples/s of one pass of the training loader over ``pattern`` (``frame_dtype`` None: a loader
    from before issue 16, which had no such option and always gave float32)."""
    dtype = {} if frame_dtype is None else {"frame_dtype": frame_dtype}
    options = LoaderOptions(split_half=True, num_workers=workers, **dtype)
    context = DistributedContext(torch.device("cpu"))
    config = resolve_model_spec(PRESET)
    started = time.perf_counter()
    loader = make_loader(config, pattern, options, batch_size, training=True, context=context)
    examples = sum(len(batch["ids"]) for batch in loader)
    return examples / (time.perf_counter() - started)


def reading_rate(path: Path, quantized: bool) -> float:
    """Videos/s of reading the shard alone: framing, CRCs, parsing (and dequantising, unless quantized)."""
    started = time.perf_counter()
    videos = sum(1 for _ in read_records(path, quantized=quantized))
    return videos / (time.perf_counter() - started)


def fill_ms(batch: np.ndarray, shared: bool, repeats: int = 10) -> float:
    """Best ms to allocate a tensor like ``batch`` (shared memory, or numpy's) and copy ``batch`` in."""
    from compactvideo._torch_compat import empty_shared  # (not in a baseline's compactvideo)

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        shape = batch.shape
        target = empty_shared(shape, torch.uint8).numpy() if shared else np.empty(shape, np.uint8)
        target[...] = batch
        times.append(time.perf_counter() - started)
        del target
    return 1e3 * min(times)


def measure_here(path: Path, batch_size: int, dtypes: tuple[str | None, ...]) -> dict[str, float]:
    """One pass of each configuration of this checkout (or, from ``--measure``, of a baseline)."""
    rates = {}
    for workers in WORKERS:
        for dtype in dtypes:
            rates[f"{dtype or 'float32'} {workers}"] = loader_rate(str(path), workers, batch_size, dtype)
    return rates


def baseline_source(revision: str, folder: Path) -> Path:
    """The ``src/`` of ``revision`` of this repository, unpacked into ``folder``."""
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", revision, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def measure_baseline(source: Path, path: Path, batch_size: int) -> dict[str, float]:
    """One pass of each worker count of the baseline's loader, in a subprocess importing ``source``."""
    environment = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--measure", str(path), "--batch-size", str(batch_size)]
    output = subprocess.run(command, env=environment, check=True, capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def best(passes: list[dict[str, float]]) -> dict[str, float]:
    return {name: max(rates[name] for rates in passes) for name in passes[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=80)
    parser.add_argument("--baseline", help="a git revision whose loader to measure in the same run")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # a baseline's subprocess
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.measure is not None:
        print(json.dumps(measure_here(args.measure, args.batch_size, (None,))))
        return
    from compactvideo.data.synthetic import synthesize

    print(describe_machine())
    with tempfile.TemporaryDirectory() as folder:
        (path,) = synthesize(
            folder, "frame", args.videos, classes=3862, shards=1, min_frames=300, max_frames=300
        )
        source = baseline_source(args.baseline, Path(folder)) if args.baseline else None
        here, baseline, reading = [], [], []
        for _ in range(args.repeats):
            reading.append({str(q): reading_rate(path, q) for q in (True, False)})
            here.append(measure_here(path, args.batch_size, FRAME_DTYPES))
            if source is not None:
                baseline.append(measure_baseline(source, path, args.batch_size))
        megabytes = path.stat().st_size / 2**20
    frames = np.random.default_rng(0).integers(0, 256, (args.batch_size, 150, 1152), dtype=np.uint8)
    handover = {shared: fill_ms(frames, shared) for shared in (True, False)}
    reading_best = best(reading)
    ceiling = 2 * reading_best["True"]  # examples/s: two halves per video
    print(
        f"{args.videos} videos of 300 frames ({megabytes:.0f} MiB), split-half, robust 10 x 15 frames, "
        f"batch {args.batch_size}; best of {args.repeats} passes"
    )
    print(f"reading alone, uint8 frames:   {reading_best['True']:>6.0f} videos/s = {ceiling:.0f} examples/s")
    print(f"reading alone, float32 frames: {reading_best['False']:>6.0f} videos/s")
    columns = f"{'batches':<9} {'workers':>7} {'examples/s':>10} {'per worker':>10} {'/ reading':>9}"
    print(columns + (f" {'/ baseline':>10}" if baseline else ""))
    rates, before = best(here), best(baseline) if baseline else {}
    for name, rate in rates.items():
        dtype, workers = name.split()
        per_worker = rate / max(int(workers), 1)
        line = f"{dtype:<9} {workers:>7} {rate:>10.0f} {per_worker:>10.0f} {rate / ceiling:>9.2f}"
        baseline_rate = before.get(f"float32 {workers}")  # a baseline loader gives float32 batches only
        if baseline_rate is not None:
            line += f" {rate / baseline_rate:>9.2f}x"
        print(line)
    for name, rate in before.items():
        workers = name.split()[1]
        print(f"{'baseline':<9} {workers:>7} {rate:>10.0f} {rate / max(int(workers), 1):>10.0f}", end="")
        print(f" {rate / ceiling:>9.2f}  ({args.baseline}, float32)")
    print(
        f"filling a {frames.nbytes / 2**20:.0f} MiB uint8 batch: {handover[True]:.1f} ms in shared memory "
        f"(how workers hand batches over), {handover[False]:.1f} ms in ordinary memory "
        f"({handover[True] / handover[False]:.1f}x)"
    )
    print("targets: uint8 >= 2000 examples/s per worker; float32 >= 2x the baseline")


if __name__ == "__main__":
    main()

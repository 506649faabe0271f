"""CirculantLinear against nn.Linear: forward and forward+backward time, n x n maps, 1 thread.

Both layers are timed in the same run, alternately, so the ratio (dense time / circulant time) is
robust to the machine's load. Targets (issue 2): forward+backward at n=8192, batch 256 >= 20x;
at n=1024, batch 256 >= 3x.

    python benchmarks/circulant_vs_dense.py [--repeats 7]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from compactvideo.nn import CirculantLinear
from compactvideo.profiling import describe_machine, measure_latency

SIZES = (512, 1024, 4096, 8192)
BATCHES = (1, 256)


def step_functions(layer: nn.Module, x: torch.Tensor):
    def forward() -> None:
        with torch.no_grad():
            layer(x)

    def forward_backward() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    return forward, forward_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per measurement (median kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"# {describe_machine()}")
    print("# median ms over repeated calls; ratio = nn.Linear time / CirculantLinear time")
    print(
        f"{'n':>5} {'batch':>5} | {'dense fwd':>9} {'circ fwd':>9} {'ratio':>6} | "
        f"{'dense f+b':>9} {'circ f+b':>9} {'ratio':>6}"
    )
    for n in SIZES:
        dense, circulant = nn.Linear(n, n), CirculantLinear(n, n)
        for batch in BATCHES:
            x = torch.randn(batch, n)
            (dense_fwd, dense_step), (circ_fwd, circ_step) = (
                step_functions(dense, x),
                step_functions(circulant, x),
            )
            repeats = args.repeats if n * n * batch < 2**30 else max(3, args.repeats // 2)
            times = {}
            for name, fn in [
                ("dense fwd", dense_fwd),
                ("circ fwd", circ_fwd),
                ("dense step", dense_step),
                ("circ step", circ_step),
            ]:
                times[name] = measure_latency(fn, warmup=2, repeats=repeats).median_ms
            print(
                f"{n:>5} {batch:>5} | {times['dense fwd']:9.3f} {times['circ fwd']:9.3f} "
                f"{times['dense fwd'] / times['circ fwd']:6.1f} | {times['dense step']:9.3f} "
                f"{times['circ step']:9.3f} {times['dense step'] / times['circ step']:6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

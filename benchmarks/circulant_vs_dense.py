"""CirculantLinear against nn.Linear: forward and forward+backward time, n x n maps, 1 thread.

Both layers are timed in the same run, alternately, so the ratio (dense time / circulant time) is
robust to the machine's load (:func:`compactvideo.reproduce.cheng2015.measure_speed`, which
``compactvideo reproduce cheng2015`` runs over n = 2^8..2^14). Targets (issue 2): forward+backward at
n=8192, batch 256 >= 20x; at n=1024, batch 256 >= 3x.

    python benchmarks/circulant_vs_dense.py [--repeats 7]
"""

from __future__ import annotations

import argparse

import torch

from compactvideo.profiling import describe_machine
from compactvideo.reproduce.cheng2015 import measure_speed

SIZES = (512, 1024, 4096, 8192)
BATCHES = (1, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per measurement (median kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# {describe_machine()}")
    print("# median ms over repeated calls; ratio = nn.Linear time / CirculantLinear time")
    print(
        f"{'n':>5} {'batch':>5} | {'dense fwd':>9} {'circ fwd':>9} {'ratio':>6} | "
        f"{'dense f+b':>9} {'circ f+b':>9} {'ratio':>6}"
    )
    measurements = measure_speed(SIZES, BATCHES, args.repeats)
    ms = {(m["n"], m["batch"], m["layer"], m["pass"]): m["ms"] for m in measurements}
    for n in SIZES:
        for batch in BATCHES:
            fwd = [ms[n, batch, layer, "forward"] for layer in ("dense", "circulant")]
            step = [ms[n, batch, layer, "forward+backward"] for layer in ("dense", "circulant")]
            print(
                f"{n:>5} {batch:>5} | {fwd[0]:9.3f} {fwd[1]:9.3f} {fwd[0] / fwd[1]:6.1f} | "
                f"{step[0]:9.3f} {step[1]:9.3f} {step[0] / step[1]:6.1f}"
            )


if __name__ == "__main__":
    main()

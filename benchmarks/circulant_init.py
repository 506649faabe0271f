"""Why CirculantLinear defaults to the ECAI 2020 initialisation: output scale at initialisation.

Prints E|y|^2 / E|x|^2 of a freshly initialised CirculantLinear (no bias) for both schemes, for the
paper's shapes and 1, 3 and 6 factors (truncated outputs rescaled by n / out). The ECCV 2018 code's
N(0, 1/out) for d and c multiplies the scale by about n / out^2 per factor, so deep products vanish;
ECAI 2020's d = +-1, c ~ N(0, 2/n) multiplies it by 2 per factor whatever the shape.

    python benchmarks/circulant_init.py
"""

from __future__ import annotations

import torch

from compactvideo.nn import CirculantLinear
from compactvideo.profiling import describe_machine

SHAPES = ((8192, 512), (1024, 1024), (1024, 8192))


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    print(f"# {describe_machine()}")
    print(
        f"{'in -> out':>13} {'factors':>7} | {'ecai2020':>10} {'eccv2018':>10} | {'n/out^2 per factor':>18}"
    )
    for n, m in SHAPES:
        x = torch.randn(64, n, generator=generator, dtype=torch.float64)
        for factors in (1, 3, 6):
            scales = []
            for init in ("ecai2020", "eccv2018"):
                layer = CirculantLinear(n, m, bias=False, factors=factors, init=init, generator=generator)
                with torch.no_grad():
                    y = layer.double()(x)
                scales.append((y.pow(2).sum(-1) / x.pow(2).sum(-1) * n / m).mean().item())
            predicted = (n / m**2) ** factors
            print(f"{n:>6} -> {m:<5} {factors:>7} | {scales[0]:10.3g} {scales[1]:10.3g} | {predicted:18.3g}")


if __name__ == "__main__":
    main()

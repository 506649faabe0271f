"""Tucker-2 speed-ups on CPU: theoretical (FLOPs) against measured, 1 thread, batch 1.

(a) The THETIS network of Rasmussen et al. (NLDL 2022) with the paper's ranks (c1 (2,2), c2 (3,2),
    l1 (7,4), l2 Tucker-1 rank 1) against the original network. Target: >= 2x (the paper: 1.4x).
(b) A 64 -> 64 3x3x3 Conv3d on a 64x8x56x56 clip at ranks (16, 16). Target: >= half of the
    theoretical 12.3x.

Every variant is timed in the same run, in interleaved rounds, so ratios are robust to the machine's
load. "dense, oneDNN" runs the original layers through the same oneDNN formulation as the Tucker fast
path (:func:`compactvideo.nn.tucker.fast_conv`): it shows how much of the speed-up is the
decomposition and how much the better kernel.

On a VM, first touches of freshly mapped pages (large temporaries; glibc maps blocks above its adaptive
mmap threshold) cost measurable time, and earlier allocations move that threshold: run alone, or with
``MALLOC_MMAP_THRESHOLD_`` set, every variant gets faster, the plain Tucker chain the most.

    python benchmarks/tucker_speedup.py [--rounds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from compactvideo.compress.tucker import paper_flops
from compactvideo.nn.tucker import TuckerConv, fast_conv, plain_path
from compactvideo.profiling import describe_machine, measure_interleaved
from compactvideo.reproduce.rasmussen2022 import FIXTURE, speed_variants, thetis_models


class OneDNNConv(nn.Module):
    """A dense Conv3d run through :func:`fast_conv` (oneDNN directly), for the comparison row."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        return fast_conv(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)


def with_onednn_convs(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Conv3d):
            model.set_submodule(name, OneDNNConv(module))
    return model


def time_interleaved(variants: dict[str, callable], rounds: int, repeats: int) -> dict[str, float]:
    """Median ms per variant over ``rounds`` interleaved rounds of ``repeats`` calls each, autograd off."""
    with torch.no_grad():
        return measure_interleaved(variants, rounds, repeats)


def print_rows(title: str, times: dict[str, float], baseline: str, theoretical: float, target: float) -> None:
    print(f"\n## {title}: theoretical speed-up x{theoretical:.2f}, target >= x{target:.2f}")
    print(f"{'variant':<34} {'ms':>9} {'speed-up':>9}")
    for name, ms in times.items():
        print(f"{name:<34} {ms:9.2f} {'x' + format(times[baseline] / ms, '.2f'):>9}")


def thetis(rounds: int, repeats: int) -> None:
    weights, source = None, "random weights (fixture not found)"
    if FIXTURE.is_file():
        weights, source = (
            torch.load(FIXTURE, map_location="cpu", weights_only=True),
            f"weights {FIXTURE.name}",
        )
    original, compressed, report = thetis_models(weights)
    clip = torch.randn(1, 4, 28, 120, 160)
    variants = speed_variants(original, compressed, clip)
    dense_onednn = with_onednn_convs(original)
    variants = {
        "original (nn.Conv3d)": variants["original (nn.Conv3d)"],
        "original, oneDNN": lambda: dense_onednn(clip),
        **variants,
    }
    times = time_interleaved(variants, rounds, repeats)
    theoretical = report.flops_before / report.flops_after
    print_rows(f"(a) THETIS network, 4x28x120x160, {source}", times, "original (nn.Conv3d)", theoretical, 2.0)
    print(
        f"parameters {report.params_before:,} -> {report.params_after:,}; "
        f"GFLOPs {report.flops_before / 1e9:.3f} -> {report.flops_after / 1e9:.3f} (Rasmussen et al.'s count)"
    )


def single_layer(rounds: int, repeats: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv3d(64, 64, 3, padding=1).eval()
    tucker = TuckerConv.like(conv, 16, 16).eval()
    x = torch.randn(1, 64, 8, 56, 56)
    flops = paper_flops(conv, (x,))[""]
    tucker_flops = sum(paper_flops(tucker, (x,)).values())
    dense_onednn = OneDNNConv(conv)

    def plain() -> torch.Tensor:
        with plain_path(tucker):
            return tucker(x)

    times = time_interleaved(
        {
            "original (nn.Conv3d)": lambda: conv(x),
            "original, oneDNN": lambda: dense_onednn(x),
            "tucker, plain (3 nn.Conv3d)": plain,
            "tucker, fast path": lambda: tucker(x),
        },
        rounds,
        repeats,
    )
    theoretical = flops / tucker_flops
    print_rows(
        "(b) Conv3d 64->64 3x3x3 on 64x8x56x56, ranks (16, 16)",
        times,
        "original (nn.Conv3d)",
        theoretical,
        theoretical / 2,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median kept)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per variant and round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# {describe_machine()}")
    print("# batch 1, float32, eval mode; median ms; speed-up = original (nn.Conv3d) time / variant time")
    single_layer(args.rounds, args.repeats)
    thetis(args.rounds, args.repeats)


if __name__ == "__main__":
    main()

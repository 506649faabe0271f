"""The one switch for structure: every projection in every model is built by :func:`make_linear`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from compactvideo.nn.circulant import BlockCirculantLinear, CirculantLinear

LINEAR_KINDS = ("dense", "circulant", "block-circulant")


def make_linear(
    kind: str, in_features: int, out_features: int, bias: bool = True, **options: Any
) -> nn.Module:
    """Build a projection R^in -> R^out of the given structure.

    - ``"dense"``: :class:`torch.nn.Linear` (no options);
    - ``"circulant"``: :class:`CirculantLinear` (options ``factors``, ``diagonal``, ``init``);
    - ``"block-circulant"``: :class:`BlockCirculantLinear` (option ``block_size``, required).
    """
    if kind == "dense":
        if options:
            raise ValueError(f"a dense projection takes no options, got {sorted(options)}")
        linear = nn.Linear(in_features, out_features, bias=bias)
        if out_features >= in_features:
            # Input-major storage (W^T contiguous; same shape, same state_dict): a square or expanding
            # matrix-vector product then streams W^T row by row, on 1 thread 2x faster at batch 1 for
            # the MoE's 512 -> 19,310 gates and 1.1x for the 3,862^2 context gating, the same speed at
            # batch 80. (Shrinking products are faster with the usual output-major storage.)
            linear.weight = nn.Parameter(linear.weight.detach().t().contiguous().t())
        return linear
    if kind == "circulant":
        return CirculantLinear(in_features, out_features, bias=bias, **options)
    if kind == "block-circulant":
        if "block_size" not in options:
            raise ValueError("a block-circulant projection needs the option block_size")
        return BlockCirculantLinear(in_features, out_features, bias=bias, **options)
    raise ValueError(f"unknown projection kind {kind!r}; expected one of {LINEAR_KINDS}")


@dataclass(frozen=True)
class Projection:
    """The structure of one projection, as configs store it: ``Projection("circulant", factors=3)``."""

    kind: str = "dense"
    factors: int = 1
    diagonal: str = "learned"
    init: str = "ecai2020"
    block_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in LINEAR_KINDS:
            raise ValueError(f"unknown projection kind {self.kind!r}; expected one of {LINEAR_KINDS}")

    def build(self, in_features: int, out_features: int, bias: bool = True) -> nn.Module:
        if self.kind == "dense":
            return make_linear("dense", in_features, out_features, bias)
        if self.kind == "circulant":
            options = {"factors": self.factors, "diagonal": self.diagonal, "init": self.init}
        else:
            options = {"block_size": self.block_size}
        return make_linear(self.kind, in_features, out_features, bias, **options)


DENSE = Projection()

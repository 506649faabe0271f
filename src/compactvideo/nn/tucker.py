"""Tucker-2 factorised convolutions and linear maps.

A convolution kernel W in R^{T x S x k_1 x ... x k_d} (T output, S input channels) decomposed on its two
channel modes (Tucker-2, Kim et al., ICLR 2016, eq. 5; Rasmussen et al., NLDL 2022, sec. 2) is

    W ~= G x_0 U_out x_1 U_in,   G in R^{R_out x R_in x k_1 x ... x k_d},
    U_out in R^{T x R_out},  U_in in R^{S x R_in},

and since convolution is linear in the channels, the layer becomes three convolutions
(Kim et al. 2016, eqs. 6-8):

    z = U_in^T x              (1 x ... x 1 conv, S -> R_in, no bias)
    z' = G * z                (the original kernel size, stride, padding and dilation, R_in -> R_out)
    y = U_out z' + b          (1 x ... x 1 conv, R_out -> T, the original bias).

Zero padding commutes with the bias-free first step (U_in^T 0 = 0), so the result equals the original
layer with the reconstructed kernel exactly. A rank equal to its channel count leaves that mode
unfactored (Tucker-1): the corresponding pointwise step is dropped. Multiplications per output position
fall from S T Lambda to S R_in + R_in R_out Lambda + R_out T (Lambda = k_1 ... k_d).
"""

from __future__ import annotations

import torch
from torch import nn

from compactvideo.errors import CompactVideoError

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class TuckerRankError(CompactVideoError, ValueError):
    """Ranks that do not fit the layer they factor."""


def _check_ranks(in_channels: int, out_channels: int, rank_out: int, rank_in: int) -> None:
    if not 1 <= rank_in <= in_channels or not 1 <= rank_out <= out_channels:
        raise TuckerRankError(
            f"ranks (rank_out, rank_in) = ({rank_out}, {rank_in}) must lie in [1, {out_channels}] x "
            f"[1, {in_channels}] for a layer with {in_channels} input and {out_channels} output channels"
        )


class TuckerConv(nn.Module):
    r"""A Tucker-2 (or Tucker-1) factorised 1-D, 2-D or 3-D convolution: ``last(core(first(x)))``.

    ``first``: pointwise conv S -> R_in without bias (``None`` when R_in = S); ``core``: the original
    kernel, stride, padding and dilation, R_in -> R_out; ``last``: pointwise conv R_out -> T with the
    original bias (``None`` when R_out = T, the core then carries the bias). See the module docstring.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        rank_out: int,
        rank_in: int,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        bias: bool = True,
        dims: int = 3,
    ) -> None:
        super().__init__()
        if dims not in _CONVS:
            raise TuckerRankError(f"dims must be 1, 2 or 3, got {dims}")
        _check_ranks(in_channels, out_channels, rank_out, rank_in)
        conv = _CONVS[dims]
        self.in_channels, self.out_channels = in_channels, out_channels
        self.rank_out, self.rank_in, self.dims = rank_out, rank_in, dims
        factored_out = rank_out < out_channels
        self.first = conv(in_channels, rank_in, 1, bias=False) if rank_in < in_channels else None
        self.core = conv(
            rank_in, rank_out, kernel_size, stride, padding, dilation, bias=bias and not factored_out
        )
        self.last = conv(rank_out, out_channels, 1, bias=bias) if factored_out else None

    @classmethod
    def like(cls, conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, rank_out: int, rank_in: int) -> TuckerConv:
        """An untrained TuckerConv shaped like ``conv``: kernel, stride, padding, dilation, device, dtype."""
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise TuckerRankError(
                f"only ungrouped convolutions with numeric zero padding can be factored, got groups="
                f"{conv.groups}, padding={conv.padding!r}, padding_mode={conv.padding_mode!r}"
            )
        module = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            rank_out,
            rank_in,
            conv.stride,
            conv.padding,
            conv.dilation,
            bias=conv.bias is not None,
            dims=len(conv.kernel_size),
        )
        return module.to(device=conv.weight.device, dtype=conv.weight.dtype)

    def steps(self) -> list[nn.Module]:
        """The convolutions applied in order (two or three)."""
        return [step for step in (self.first, self.core, self.last) if step is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps():
            x = step(x)
        return x

    def extra_repr(self) -> str:
        return f"rank_out={self.rank_out}, rank_in={self.rank_in}"


class TuckerLinear(nn.Module):
    r"""A factorised linear map y = U_out G U_in^T x + b as up to three matrix products.

    The same structure as :class:`TuckerConv` with a 1 x 1 kernel: ``first`` (in -> R_in, no bias),
    ``core`` (R_in -> R_out) and ``last`` (R_out -> out, with the bias), a factor dropped where its rank
    equals its size. ``rank_out = out_features`` gives the paper's Tucker-1 "2-matmul split" W ~= G U_in^T
    (Rasmussen et al. 2022, layer l2: 128 -> 1 -> 84).
    """

    def __init__(
        self, in_features: int, out_features: int, rank_out: int, rank_in: int, bias: bool = True
    ) -> None:
        super().__init__()
        _check_ranks(in_features, out_features, rank_out, rank_in)
        self.in_features, self.out_features = in_features, out_features
        self.rank_out, self.rank_in = rank_out, rank_in
        factored_out = rank_out < out_features
        self.first = nn.Linear(in_features, rank_in, bias=False) if rank_in < in_features else None
        self.core = nn.Linear(rank_in, rank_out, bias=bias and not factored_out)
        self.last = nn.Linear(rank_out, out_features, bias=bias) if factored_out else None

    @classmethod
    def like(cls, linear: nn.Linear, rank_out: int, rank_in: int) -> TuckerLinear:
        """An (untrained) TuckerLinear with ``linear``'s sizes, bias, device and dtype."""
        module = cls(linear.in_features, linear.out_features, rank_out, rank_in, bias=linear.bias is not None)
        return module.to(device=linear.weight.device, dtype=linear.weight.dtype)

    def steps(self) -> list[nn.Module]:
        return [step for step in (self.first, self.core, self.last) if step is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps():
            x = step(x)
        return x

    def extra_repr(self) -> str:
        return f"rank_out={self.rank_out}, rank_in={self.rank_in}"


def tucker_like(module: nn.Module, rank_out: int, rank_in: int) -> TuckerConv | TuckerLinear:
    """The factorised counterpart of a Conv1d/2d/3d or Linear ``module`` (same shapes, fresh weights)."""
    if isinstance(module, nn.Linear):
        return TuckerLinear.like(module, rank_out, rank_in)
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return TuckerConv.like(module, rank_out, rank_in)
    raise TuckerRankError(f"only Conv1d/2d/3d and Linear layers can be factored, got {type(module).__name__}")

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

Fast CPU path. At batch 1 PyTorch sends convolutions with few channels to its slow vol2col kernel
(``use_mkldnn`` in ATen's Convolution.cpp), and oneDNN, when used, vectorises over output channels, so a
core with R_out = 2 fills 2 of 16 AVX-512 lanes. In eval mode on CPU (float32) :class:`TuckerConv`
therefore runs (``fast_path=True``, the default; :func:`set_fast_path` switches a whole model), for
inputs of at least ``FAST_PATH_MIN_POSITIONS`` positions per channel:

- the pointwise steps as matrix products on the [B, C, positions] view (no im2col, no slow kernel);
- the core through oneDNN directly (``aten.mkldnn_convolution``, via :mod:`compactvideo._torch_compat`),
  either as one 3-D conv or, when that wastes vector lanes, as a 2-D conv of every (padded) frame whose
  output channels are the (temporal tap, output channel) pairs, G'[(k, o), i] = G[o, i, k], followed by
  the sum over taps y[o, t] = sum_k Y[t s + k d, (k, o)] (:func:`fast_conv`).

Both compute the same sums in another order: results agree with the plain path to float32 rounding.
The fast path is differentiable, but training, tracing, ``torch.compile``/``torch.export``, ONNX
export and any active dispatch mode (FLOP counting, fake tensors) take the plain path: three standard
convolutions, which every exporter understands.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from compactvideo._torch_compat import dispatch_mode_active, mkldnn_convolution
from compactvideo.errors import CompactVideoError

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
# Below this many input positions per channel the fast path's fixed cost (oneDNN primitive set-up,
# about 0.1 ms) outweighs its gain and the plain path runs (measured with torch 2.13, 1 thread).
FAST_PATH_MIN_POSITIONS = 4096


def _vector_lanes() -> int:
    """float32 lanes of the widest vector unit ATen uses on this CPU (oneDNN blocks channels by it)."""
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


def _exporting() -> bool:
    """True while tracing, scripting, compiling or exporting: the plain path must be recorded then."""
    return (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


def fast_path_applies(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether the oneDNN path can run: float32 CPU tensors, oneDNN on, no autocast, nothing tracing or
    intercepting the calls."""
    return (
        not _exporting()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and all(w.device.type == "cpu" and w.dtype == torch.float32 for w in weights)
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not torch.is_autocast_enabled("cpu")
        and not dispatch_mode_active()
    )


def pointwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, channels_last: bool = False
) -> torch.Tensor:
    """A 1 x ... x 1 convolution as one matrix product per example: y[b, :, p] = W x[b, :, p] + bias.

    ``x`` [B, C, ...] may be contiguous or channels-last (both are a [B, C, positions] view, so neither
    is copied); the result is contiguous, or channels-last when ``channels_last`` is set.
    """
    batch, channels = x.shape[:2]
    matrix = weight.reshape(weight.shape[0], channels)
    flat = x.reshape(batch, channels, -1)
    if channels_last:
        y = torch.matmul(flat.transpose(1, 2), matrix.t())
        if bias is not None:
            y += bias
        return y.view(batch, *x.shape[2:], weight.shape[0]).movedim(-1, 1)
    matrix = matrix.expand(batch, -1, -1)
    y = torch.bmm(matrix, flat) if bias is None else torch.baddbmm(bias.view(1, -1, 1), matrix, flat)
    return y.view(batch, weight.shape[0], *x.shape[2:])


def _use_frame_taps(shape: torch.Size, weight: torch.Tensor, stride, padding, dilation) -> bool:
    """Whether the per-frame 2-D formulation of a 3-D conv fills vector lanes better than the 3-D conv.

    oneDNN's cost is about (output frames) x ceil(C_out / lanes) x k_t for the 3-D conv and
    (padded input frames) x ceil(k_t C_out / lanes) for the per-frame 2-D conv (same input channels and
    spatial taps), since both vectorise over output channels.
    """
    if len(shape) != 5 or weight.shape[2] == 1:
        return False
    lanes, out_channels, taps = _vector_lanes(), weight.shape[0], weight.shape[2]
    padded = shape[2] + 2 * padding[0]
    frames_out = (padded - dilation[0] * (taps - 1) - 1) // stride[0] + 1
    direct = frames_out * math.ceil(out_channels / lanes) * taps
    return padded * math.ceil(taps * out_channels / lanes) < direct


def _frame_taps_conv3d(x, weight, bias, stride, padding, dilation) -> torch.Tensor:
    """A 3-D conv (k_t >= 2) as one 2-D oneDNN conv of all padded frames with (tap, channel) outputs,
    then the sum over taps."""
    batch, in_channels, frames = x.shape[:3]
    out_channels, taps = weight.shape[0], weight.shape[2]
    padded = frames + 2 * padding[0]
    buffer = x.new_zeros(batch, padded, *x.shape[3:], in_channels)  # channels-last frames
    buffer[:, padding[0] : padding[0] + frames] = x.permute(0, 2, 3, 4, 1)
    planes = buffer.view(batch * padded, *x.shape[3:], in_channels).permute(0, 3, 1, 2)
    tap_weight = weight.permute(2, 0, 1, 3, 4).reshape(taps * out_channels, in_channels, *weight.shape[3:])
    y = mkldnn_convolution(planes, tap_weight, None, padding[1:], stride[1:], dilation[1:])
    height, width = y.shape[2:]
    y = y.permute(0, 2, 3, 1).reshape(batch, padded, height, width, taps, out_channels)
    frames_out = (padded - dilation[0] * (taps - 1) - 1) // stride[0] + 1

    def tap(k: int) -> torch.Tensor:  # [B, C_out, T', H', W'] view of tap k's frames
        start = k * dilation[0]
        frames_k = y[:, start : start + stride[0] * (frames_out - 1) + 1 : stride[0], :, :, k]
        return frames_k.permute(0, 4, 1, 2, 3)

    out = tap(0).contiguous()
    for k in range(1, taps):
        out += tap(k)
    if bias is not None:
        out += bias.view(1, -1, 1, 1, 1)
    return out


def fast_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> torch.Tensor:
    """An ungrouped, zero-padded conv through oneDNN (see the module docstring); float32 CPU tensors."""
    if _use_frame_taps(x.shape, weight, stride, padding, dilation):
        return _frame_taps_conv3d(x, weight, bias, stride, padding, dilation)
    return mkldnn_convolution(x, weight, bias, padding, stride, dilation)


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
        fast_path: bool = True,
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
        self.fast_path = fast_path

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
        if (
            self.fast_path
            and not self.training
            and fast_path_applies(x, *self.parameters())
            and x.dim() == self.dims + 2
            and math.prod(x.shape[2:]) >= FAST_PATH_MIN_POSITIONS
        ):
            return self.fast_forward(x)
        for step in self.steps():
            x = step(x)
        return x

    def fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fast CPU path (module docstring): pointwise steps as matrix products, the core via oneDNN."""
        core = self.core
        geometry = core.stride, core.padding, core.dilation
        # A direct oneDNN core with >= 8 input channels reads and writes channels-last data without the
        # reorders NCDHW costs (oneDNN's nCdhw16c block is channels-last at 16 channels); the frame-tap
        # formulation wants contiguous input, and so do skinny matrix products.
        channels_last = core.in_channels >= 8 and not _use_frame_taps(x.shape, core.weight, *geometry)
        if self.first is not None:
            x = pointwise(x, self.first.weight, channels_last=channels_last)
        x = fast_conv(x, core.weight, core.bias, *geometry)
        if self.last is not None:
            return pointwise(x, self.last.weight, self.last.bias)
        return x.contiguous()

    def extra_repr(self) -> str:
        return f"rank_out={self.rank_out}, rank_in={self.rank_in}, fast_path={self.fast_path}"


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


def set_fast_path(model: nn.Module, enabled: bool) -> int:
    """Switch the fast CPU path of every :class:`TuckerConv` in ``model``; returns how many were set."""
    layers = [module for module in model.modules() if isinstance(module, TuckerConv)]
    for layer in layers:
        layer.fast_path = enabled
    return len(layers)


@contextlib.contextmanager
def plain_path(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model``'s TuckerConvs as three standard convolutions inside the block, then restore them.

    For anything that must see the sub-layers being called: forward hooks, exporters that do not
    report themselves (:func:`fast_path_applies` already covers tracing, compiling and ONNX export).
    """
    layers = [module for module in model.modules() if isinstance(module, TuckerConv)]
    saved = [layer.fast_path for layer in layers]
    try:
        for layer in layers:
            layer.fast_path = False
        yield model
    finally:
        for layer, enabled in zip(layers, saved, strict=True):
            layer.fast_path = enabled

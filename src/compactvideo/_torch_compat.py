"""Every private PyTorch API compactvideo uses, each behind one small name (written against torch 2.13).

Nothing else in the package touches ``torch._*``, ``torch.utils._*``, private ``aten`` operators or
private tensor attributes; ``tests/test_torch_compat.py`` checks each entry on its own, so a torch
upgrade that moves one fails in one named test instead of deep inside a model.

- :func:`mkldnn_convolution`: oneDNN's convolution called directly (``aten.mkldnn_convolution``), the
  fast path of :class:`compactvideo.nn.tucker.TuckerConv`.
- :func:`dispatch_mode_active`: whether a ``TorchDispatchMode`` (FLOP counting, fake tensors) intercepts
  calls (``torch.utils._python_dispatch._get_current_dispatch_mode``).
- :func:`tensor_version`: the counter autograd bumps on every in-place change (``Tensor._version``).
- :func:`foreach_norm`, :func:`foreach_mul_`: fused norms and scaling of a list of tensors
  (``torch._foreach_norm``, ``torch._foreach_mul_``).
- :func:`builtin_flop_formula`, :func:`raw_flop_formula` and the ``ATEN_*`` operators: the formula
  registry of ``torch.utils.flop_counter`` and its protocol for formulas that take tensors rather than
  shapes (the ``_get_raw`` mark), with the FFT operators ``aten._fft_r2c`` / ``_fft_c2r`` / ``_fft_c2c``.
- :func:`empty_shared`: an uninitialised tensor in shared memory (``UntypedStorage._new_shared``, what
  torch's own ``default_collate`` uses), so that a DataLoader worker's batch reaches the main process
  without the copy into shared memory that sending an ordinary tensor costs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode
from torch.utils.flop_counter import flop_registry

_aten = torch.ops.aten

ATEN_MM = _aten.mm
ATEN_BMM = _aten.bmm
ATEN_MUL = _aten.mul
ATEN_FFT_R2C = _aten._fft_r2c
ATEN_FFT_C2R = _aten._fft_c2r
ATEN_FFT_C2C = _aten._fft_c2c


def mkldnn_convolution(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> torch.Tensor:
    """An ungrouped convolution through oneDNN directly, bypassing ATen's choice of kernel."""
    return _aten.mkldnn_convolution(x, weight, bias, list(padding), list(stride), list(dilation), 1)


def dispatch_mode_active() -> bool:
    """Whether a ``TorchDispatchMode`` (a FLOP counter, fake tensors, ...) intercepts operator calls now."""
    return _get_current_dispatch_mode() is not None


def tensor_version(tensor: torch.Tensor) -> int:
    """A counter that grows with every in-place change of ``tensor`` (shared by its views)."""
    return tensor._version


def foreach_norm(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each tensor, in one fused call."""
    return list(torch._foreach_norm(list(tensors)))


def foreach_mul_(tensors: Sequence[torch.Tensor], factors: Sequence[torch.Tensor]) -> None:
    """Multiply each tensor in place by its factor (a 0-d tensor), in one fused call."""
    torch._foreach_mul_(list(tensors), list(factors))


def empty_shared(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous CPU tensor whose storage is in shared memory from the start."""
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, tuple(shape))


def builtin_flop_formula(operator: torch._ops.OpOverloadPacket) -> Callable:
    """``torch.utils.flop_counter``'s own formula for ``operator`` (called with shapes)."""
    return flop_registry[operator]


def raw_flop_formula(formula: Callable) -> Callable:
    """Mark a ``FlopCounterMode`` formula as taking the tensors themselves (for dtypes), not their shapes."""
    formula._get_raw = True
    return formula

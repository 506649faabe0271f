"""Training precision: float32, or mixed precision with ``torch.autocast`` (and loss scaling for float16).

- ``"32"``: everything in float32.
- ``"bf16-mixed"``: under ``torch.autocast`` of the model's device, matrix products and convolutions run
  in bfloat16 (8 significant bits, float32's exponent range); weights, gradients and Adam's moments stay
  float32. No loss scaling is needed: bfloat16 holds gradients as small as float32 does.
- ``"16-mixed"``: the same in float16 (11 significant bits, but nothing below 6e-8), so the loss is
  multiplied by a scale S before the backward pass and the gradients divided by S before clipping and
  the step; a step whose gradients hold an inf or NaN is skipped and S halved, and S doubles after
  2,000 good steps (``torch.amp.GradScaler``, whose state is saved with the checkpoint).

Circulant layers keep their FFTs in float32 (``torch.fft`` has no bfloat16; see
:mod:`compactvideo.nn.circulant`), and so do the frame-level input transform and the loss.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch

from compactvideo.errors import OptionError

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
_AUTOCAST_DTYPES = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def check_precision(name: str) -> None:
    """Raise :class:`OptionError` (``--precision``) unless ``name`` is one of :data:`PRECISIONS`."""
    if name not in PRECISIONS:
        raise OptionError("precision", f"one of {', '.join(PRECISIONS)}", name)


class Precision:
    """How the training steps of a model on ``device`` run in precision ``name`` (module docstring)."""

    def __init__(self, name: str, device: torch.device) -> None:
        check_precision(name)
        if name == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            expected = "16-mixed or 32 on this GPU, which has no bfloat16 (Ampere and newer have it)"
            raise OptionError("precision", expected, name)
        self.name, self.device = name, device
        self.dtype = _AUTOCAST_DTYPES[name]
        self.scaler = torch.amp.GradScaler(device.type) if name == "16-mixed" else None

    def autocast(self) -> AbstractContextManager:
        """The context of the forward pass and the loss: autocast to :attr:`dtype`, or nothing for "32"."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of ``loss`` (of S x loss for float16, see :meth:`unscale`)."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale, so that clipping sees the true gradients."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step (skipped by float16 scaling when a gradient is not finite)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The loss scaler's state (empty without one), for checkpoints."""
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

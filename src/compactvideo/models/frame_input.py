"""The first step of a frame-level model: its data contract's per-frame preprocessing, on its device.

A frame-level model takes the frames a loader sampled, rgb [B, T, 1024] and audio [B, T, 128] (the
modalities it reads), with the real frame counts n [B]. They come either as the
records store them, quantised bytes q (uint8), or already dequantised (float32, the loader's CPU path,
and what exported models and random test inputs give). :class:`FrameInput` turns both into the same
numbers, frame by frame:

    x_t = q_t * 4/255 - 1.9921875                              (uint8 frames only, in float32)
    x_t <- x_t / max(||x_t||_2, 1e-12)                           (``l2_normalize``)
    x_t <- 0  for t >= n                                         (padding)

with the norm over the concatenation of the modalities the model reads ([rgb ; audio], 1152-d, or one
of them alone), as the YouTube-8M starter code's ``tf.nn.l2_normalize`` of the features it was given. The
dequantisation is float32(q) * float32(4/255) + float32(-1.9921875), bit for bit what
:func:`compactvideo.data.yt8m.dequantize` computes on the CPU, so a uint8 batch and its float32 twin give
identical inputs. Normalising is per frame, so it commutes with frame sampling: the loader can draw the
frames first and leave this work to the device. The results are float32; under ``torch.autocast`` the
model's first matrix product casts them to bfloat16 or float16.
"""

from __future__ import annotations

import torch
from torch import nn

from compactvideo.data.yt8m import DEQUANTIZE_OFFSET, DEQUANTIZE_SCALE
from compactvideo.nn.masking import frame_mask

NORM_EPSILON = 1e-12


def dequantize_frames(frames: torch.Tensor) -> torch.Tensor:
    """Stored uint8 frames as float32 numbers on their device (other dtypes: already numbers, unchanged)."""
    if frames.dtype != torch.uint8:
        return frames
    return frames.to(torch.float32) * float(DEQUANTIZE_SCALE) + float(DEQUANTIZE_OFFSET)


class FrameInput(nn.Module):
    """Dequantise (uint8 frames), L2-normalise each frame (``l2_normalize``), zero the padding.

    forward({modality: frames [B, T, D]}, num_frames [B]) -> {modality: float frames [B, T, D]}.
    Parameter-free: adding it changed no checkpoint's weights.
    """

    def __init__(self, l2_normalize: bool) -> None:
        super().__init__()
        self.l2_normalize = l2_normalize

    def forward(self, frames: dict[str, torch.Tensor], num_frames: torch.Tensor) -> dict[str, torch.Tensor]:
        values = {name: dequantize_frames(x) for name, x in frames.items()}
        first = next(iter(values.values()))
        keep = frame_mask(num_frames, first.shape[1]).unsqueeze(-1).to(first.dtype)
        if self.l2_normalize:
            squares = sum(x.square().sum(dim=-1, keepdim=True) for x in values.values())
            keep = keep / squares.sqrt().clamp(min=NORM_EPSILON)
        return {name: x * keep for name, x in values.items()}

    def extra_repr(self) -> str:
        return f"l2_normalize={self.l2_normalize}"

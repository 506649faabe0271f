"""3-D CNNs on raw clips: the THETIS network of Rasmussen et al. (NLDL 2022) and a C3D-style network.

Both take clips [B, C, T, H, W] and return logits [B, classes]. A :class:`ClipConfig` describes the
model completely, including which layers were Tucker-decomposed and with which ranks (``tucker``, see
:class:`~compactvideo.models.config.ModelConfig`), so ``build_model(config)`` rebuilds a compressed
model's architecture and its checkpoint's ``state_dict`` loads into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compactvideo.errors import ConfigError
from compactvideo.models.config import ClipData, ModelConfig, check_choice, check_int
from compactvideo.models.family import Family, Input, Inputs
from compactvideo.nn.linear import DENSE, Projection, make_linear
from compactvideo.tasks import SingleLabelTask

CLIP_ARCHS = ("thetis", "c3d")
C3D_CHANNELS = (64, 128, 256, 256)


@dataclass(frozen=True)
class ClipConfig(ModelConfig):
    """A clip classifier: ``arch`` is "thetis" (Rasmussen et al.'s Net2) or "c3d" (3x3x3 conv blocks).

    ``in_channels`` x ``frames`` x ``height`` x ``width`` is the clip shape the model takes (the THETIS
    network's last conv spans the whole remaining volume, so it depends on it); with ``data``
    (:class:`~compactvideo.models.config.ClipData`) it is the model's data contract. ``channels``: the
    c3d blocks' output channels (empty: 64, 128, 256, 256); the THETIS network's layers are fixed by the
    paper, so it must stay empty there. ``fc``: the structure of the fully connected layers (THETIS l2 and
    l_out, the c3d classifier).
    """

    family: str = "clip"
    arch: str = "thetis"
    num_classes: int = 2
    in_channels: int = 4
    frames: int = 28
    height: int = 120
    width: int = 160
    dropout: float = 0.2
    channels: tuple[int, ...] = ()
    fc: Projection = DENSE
    data: ClipData = ClipData()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.arch, CLIP_ARCHS, "arch")
        for name in ("num_classes", "in_channels", "frames", "height", "width"):
            check_int(getattr(self, name), 1, name)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"must lie in [0, 1), got {self.dropout}", "dropout")
        if self.arch == "thetis" and self.channels:
            raise ConfigError(f"the thetis network's channels are fixed; got {self.channels}", "channels")
        if any(c < 1 for c in self.channels):
            raise ConfigError(f"must be positive, got {self.channels}", "channels")

    @property
    def block_channels(self) -> tuple[int, ...]:
        """The c3d blocks' output channels."""
        return self.channels or C3D_CHANNELS


def _pooled(size: int, kernel: int) -> int:
    return size // kernel


class ThetisNet(nn.Module):
    """Net2 of Rasmussen et al. 2022 (code `tools/models.py`; fixture README), a LeNet-5-like 3-D CNN.

    c1 Conv3d C->6 k(5,11,11) pad(2,5,5) -> ReLU -> MaxPool(2,4,4) -> Dropout3d ->
    c2 Conv3d 6->16 k(3,5,5) -> ReLU -> MaxPool(2,4,4) -> Dropout3d ->
    l1 Conv3d 16->128 over the whole remaining volume (an FC layer; (6,6,9) for 28x120x160) -> ReLU ->
    Dropout -> l2 Linear 128->84 -> ReLU -> Dropout -> l_out Linear 84->classes (logits; the paper's
    softmax is left to the loss). 696,428 parameters at 4x28x120x160 with 2 classes.
    """

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        volume = (config.frames, config.height, config.width)
        after_c2 = [_pooled(n, k) - (d - 1) for n, k, d in zip(volume, (2, 4, 4), (3, 5, 5), strict=True)]
        remaining = tuple(_pooled(n, k) for n, k in zip(after_c2, (2, 4, 4), strict=True))
        if min(remaining) < 1:
            raise ConfigError(
                f"the thetis network needs clips of at least 8x32x32 (frames x height x width), got "
                f"{config.frames}x{config.height}x{config.width}"
            )
        self.c1 = nn.Conv3d(config.in_channels, 6, (5, 11, 11), padding=(2, 5, 5))
        self.c2 = nn.Conv3d(6, 16, (3, 5, 5))
        self.l1 = nn.Conv3d(16, 128, remaining)
        self.l2 = make_linear(config.fc, 128, 84)
        self.l_out = make_linear(config.fc, 84, config.num_classes)
        self.pool = nn.MaxPool3d((2, 4, 4))
        self.dropout3d = nn.Dropout3d(config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.relu = nn.ReLU()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.dropout3d(self.pool(self.relu(self.c1(clips))))
        x = self.dropout3d(self.pool(self.relu(self.c2(x))))
        x = self.dropout(self.relu(self.l1(x).flatten(1)))
        x = self.dropout(self.relu(self.l2(x)))
        return self.l_out(x)


class C3DBlock(nn.Module):
    """Conv3d 3x3x3 (padding 1) -> BatchNorm3d -> ReLU -> MaxPool3d."""

    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm3d(out_channels)
        self.pool = nn.MaxPool3d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.norm(self.conv(x))))


class C3DNet(nn.Module):
    """A C3D-style network (Tran et al., ICCV 2015): 3x3x3 conv blocks, then global average pooling.

    Block i: Conv3d 3x3x3 -> BN -> ReLU -> MaxPool, pooling (1,2,2) after the first block and (2,2,2)
    after the others (a dimension already down to 1 is not pooled), then mean over the volume ->
    Dropout -> Linear -> logits.
    """

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        size = [config.frames, config.height, config.width]
        blocks, in_channels = [], config.in_channels
        for index, out_channels in enumerate(config.block_channels):
            pool = tuple(1 if n < 2 or (index == 0 and axis == 0) else 2 for axis, n in enumerate(size))
            size = [n // k for n, k in zip(size, pool, strict=True)]
            blocks.append(C3DBlock(in_channels, out_channels, pool))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = make_linear(config.fc, in_channels, config.num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips
        for block in self.blocks:
            x = block(x)
        return self.fc(self.dropout(x.mean(dim=(2, 3, 4))))


def build_clip_model(config: ClipConfig) -> nn.Module:
    """The network ``config`` describes."""
    return ThetisNet(config) if config.arch == "thetis" else C3DNet(config)


def clip_inputs(config: ClipConfig) -> Inputs:
    """(clips [B, C, T, H, W] in [0, 1],), the batch's ``clip`` entry."""
    shape = (config.in_channels, config.frames, config.height, config.width)
    return (Input("clips", shape, unit_range=True, batch_key="clip"),)


CLIP = Family(
    name="clip",
    config=ClipConfig,
    build=build_clip_model,
    inputs=clip_inputs,
    task=SingleLabelTask,
    reader="clips",
)

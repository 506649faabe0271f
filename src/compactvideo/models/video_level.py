"""Video-level classifiers: p = head([mean_rgb ; mean_audio]) on the records' mean features."""

from __future__ import annotations

import torch
from torch import nn

from compactvideo.models.config import FEATURE_SIZES, VideoLevelConfig
from compactvideo.models.family import Family, Input, Inputs
from compactvideo.models.heads import ClassifierHead
from compactvideo.tasks import MultiLabelTask


class VideoLevelClassifier(nn.Module):
    """forward(mean_rgb [B, 1024], mean_audio [B, 128] or None) -> probabilities [B, C]."""

    def __init__(self, config: VideoLevelConfig) -> None:
        super().__init__()
        self.config = config
        in_features = sum(FEATURE_SIZES[m] for m in config.modalities)
        self.head = ClassifierHead(config.head, in_features, config.num_classes)

    def forward(self, mean_rgb: torch.Tensor, mean_audio: torch.Tensor | None) -> torch.Tensor:
        inputs = {"rgb": mean_rgb, "audio": mean_audio}
        missing = [m for m in self.config.modalities if inputs[m] is None]
        if missing:
            raise ValueError(f"this model reads the mean {missing[0]} features, but none were given")
        return self.head(torch.cat([inputs[m] for m in self.config.modalities], dim=-1))


def video_inputs(config: VideoLevelConfig) -> Inputs:
    """(mean_rgb [B, 1024] or None, mean_audio [B, 128] or None)."""
    return tuple(
        Input(f"mean_{m}", (size,)) if m in config.modalities else None for m, size in FEATURE_SIZES.items()
    )


VIDEO_LEVEL = Family(
    name="video",
    config=VideoLevelConfig,
    build=VideoLevelClassifier,
    inputs=video_inputs,
    task=MultiLabelTask,
    reader="video-records",
)

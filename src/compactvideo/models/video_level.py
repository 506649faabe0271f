"""Video-level classifiers: p = head([mean_rgb ; mean_audio]) on the records' mean features."""

from __future__ import annotations

import torch
from torch import nn

from compactvideo.models.config import FEATURE_SIZES, VideoLevelConfig
from compactvideo.models.heads import ClassifierHead


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

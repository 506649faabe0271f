"""The classifier on top of a video embedding, as a config describes it: MoE or logistic, then gating."""

from __future__ import annotations

import torch
from torch import nn

from compactvideo.models.config import HeadConfig
from compactvideo.nn.heads import ContextGating, Logistic, MixtureOfExperts


class ClassifierHead(nn.Module):
    """p = CG(MoE(h)) or CG(sigmoid(W h + b)); CG is the identity when context gating is off."""

    def __init__(self, config: HeadConfig, in_features: int, num_classes: int) -> None:
        super().__init__()
        if config.kind == "moe":
            self.classifier = MixtureOfExperts(
                in_features, num_classes, config.mixtures, config.gates, config.experts
            )
        else:
            self.classifier = Logistic(in_features, num_classes, config.logistic)
        self.gating = ContextGating(num_classes, config.gating) if config.context_gating else None

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        probabilities = self.classifier(embedding)
        return probabilities if self.gating is None else self.gating(probabilities)

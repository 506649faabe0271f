"""Classifier heads on a video embedding h: class probabilities in (0, 1), one per class.

- :class:`Logistic`: p = sigmoid(W h + b) (YouTube-8M starter code, LogisticModel).
- :class:`MixtureOfExperts` (starter code MoeModel; Araujo et al. 2018, sec. 3.3): for each class c,
  gates g_c = softmax(G_c h) over M experts plus a dummy expert that always predicts 0 (G without bias),
  experts e_cm = sigmoid(E_cm h + b_cm), and p_c = sum_m g_cm e_cm.
- :class:`ContextGating` (Miech et al. 2017): y = sigmoid(BN(W x)) * x, W without bias.
"""

from __future__ import annotations

import torch
from torch import nn

from compactvideo.nn.linear import DENSE, Projection, make_linear


class Logistic(nn.Module):
    def __init__(self, in_features: int, num_classes: int, projection: Projection = DENSE) -> None:
        super().__init__()
        self.linear = make_linear(projection, in_features, num_classes, bias=True)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(embedding))


class MixtureOfExperts(nn.Module):
    def __init__(
        self,
        in_features: int,
        num_classes: int,
        mixtures: int = 2,
        gates: Projection = DENSE,
        experts: Projection = DENSE,
    ) -> None:
        super().__init__()
        if mixtures < 1:
            raise ValueError(f"a mixture of experts needs at least one expert, got {mixtures}")
        self.num_classes, self.mixtures = num_classes, mixtures
        self.gates = make_linear(gates, in_features, num_classes * (mixtures + 1), bias=False)
        self.experts = make_linear(experts, in_features, num_classes * mixtures, bias=True)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        gates = torch.softmax(
            self.gates(embedding).unflatten(-1, (self.num_classes, self.mixtures + 1)), dim=-1
        )
        experts = torch.sigmoid(self.experts(embedding).unflatten(-1, (self.num_classes, self.mixtures)))
        return (gates[..., : self.mixtures] * experts).sum(dim=-1)  # the dummy expert contributes 0


class ContextGating(nn.Module):
    def __init__(self, features: int, projection: Projection = DENSE) -> None:
        super().__init__()
        self.linear = make_linear(projection, features, features, bias=False)
        self.norm = nn.BatchNorm1d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.norm(self.linear(x))) * x

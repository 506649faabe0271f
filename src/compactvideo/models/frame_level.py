"""Frame-level classifiers (Araujo et al. 2018, sec. 3): frames -> embeddings -> FC -> head.

The frames first go through the data contract's input transform (:class:`FrameInput`: dequantised if
they are the stored uint8 bytes, L2-normalised, padding zeroed). Then for each modality m (rgb
1024-d, audio 128-d) and each configured embedding e:
    z_me = relu6(BN(F_me pool_me(x_m)))  in R^hidden  (F_me without bias; batch norm follows),
z_m = mean_e z_me, h = [z_rgb ; z_audio], and p = head(h), the class probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compactvideo.models.config import FEATURE_SIZES, EmbeddingConfig, FrameLevelConfig
from compactvideo.models.family import Family, Input, Inputs
from compactvideo.models.frame_input import FrameInput
from compactvideo.models.heads import ClassifierHead
from compactvideo.nn.linear import make_linear
from compactvideo.nn.pooling import DBoF, NetFV, NetRVLAD, NetVLAD, SoftDBoW
from compactvideo.tasks import MultiLabelTask

_CLUSTER_POOLINGS = {"netvlad": NetVLAD, "netrvlad": NetRVLAD, "softdbow": SoftDBoW, "netfv": NetFV}


def make_pooling(config: EmbeddingConfig, feature_size: int, clusters: int) -> nn.Module:
    if config.kind == "dbof":
        return DBoF(
            feature_size, clusters, config.pooling, config.samples, config.input_batch_norm, config.projection
        )
    return _CLUSTER_POOLINGS[config.kind](feature_size, clusters, config.samples, config.projection)


class FullyConnected(nn.Module):
    """relu6(BN(W x)): the per-modality reduction to the hidden size."""

    def __init__(self, config: EmbeddingConfig, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = make_linear(config.fc, in_features, out_features, bias=False)
        self.norm = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.norm(self.linear(x)))


class Embedding(nn.Module):
    """One modality's pooling followed by its fully connected layer."""

    def __init__(self, config: EmbeddingConfig, modality: str, hidden_size: int) -> None:
        super().__init__()
        self.pooling = make_pooling(config, FEATURE_SIZES[modality], config.clusters_for(modality))
        self.fc = FullyConnected(config, self.pooling.output_size, hidden_size)

    def forward(self, frames: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooling(frames, num_frames))


class FrameLevelClassifier(nn.Module):
    """forward(rgb [B, T, 1024], audio [B, T, 128] or None, num_frames [B]) -> probabilities [B, C].

    The frames are uint8 as stored or float32 dequantised (:class:`FrameInput` makes them the same).
    """

    def __init__(self, config: FrameLevelConfig) -> None:
        super().__init__()
        self.config = config
        self.input = FrameInput(config.data.l2_normalize)
        self.embeddings = nn.ModuleDict(
            {
                modality: nn.ModuleList(Embedding(e, modality, config.hidden_size) for e in config.embeddings)
                for modality in config.modalities
            }
        )
        self.head = ClassifierHead(
            config.head, config.hidden_size * len(config.modalities), config.num_classes
        )

    def forward(
        self, rgb: torch.Tensor | None, audio: torch.Tensor | None, num_frames: torch.Tensor
    ) -> torch.Tensor:
        given = {"rgb": rgb, "audio": audio}
        for modality in self.embeddings:
            if given[modality] is None:
                raise ValueError(f"this model reads the {modality} frames, but none were given")
        inputs = self.input({modality: given[modality] for modality in self.embeddings}, num_frames)
        parts = []
        for modality, embeddings in self.embeddings.items():
            outputs = [embedding(inputs[modality], num_frames) for embedding in embeddings]
            parts.append(outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(dim=0))
        return self.head(torch.cat(parts, dim=-1))


def frame_inputs(config: FrameLevelConfig) -> Inputs:
    """(rgb [B, T, 1024], audio [B, T, 128] or None, num_frames [B])."""
    features = (
        Input(m, (size,), frames=True) if m in config.modalities else None
        for m, size in FEATURE_SIZES.items()
    )
    return (*features, Input("num_frames", frame_counts=True))


def _robust_padding(config: FrameLevelConfig) -> int:
    return config.samples if config.samples > 1 else 0


FRAME_LEVEL = Family(
    name="frame",
    config=FrameLevelConfig,
    build=FrameLevelClassifier,
    inputs=frame_inputs,
    task=MultiLabelTask,
    reader="frame-records",
    frames=FrameLevelConfig.input_frames,
    export_padding=_robust_padding,
)

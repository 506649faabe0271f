"""Frame pooling: from frames x_t in R^D (t < num_frames) to one video embedding.

- :class:`DBoF`, deep bag of frames (YouTube-8M starter code; Araujo et al. 2018, sec. 3.2):
  h_t = relu6(BN(W x_t)) in R^K, then max over frames, mean over frames, or robust pooling
  (the mean over n groups of the max over each group's frames).
- :class:`NetVLAD`, :class:`NetRVLAD`, :class:`SoftDBoW`, :class:`NetFV` (Miech et al. 2017, LOUPE,
  arXiv 1706.06905) with the soft assignment a_tk = softmax_k(BN(x_t^T W)_k):
  VLAD(j, k) = sum_t a_tk (x_t(j) - c_k(j)), intra-normalised over j, then L2-normalised;
  RVLAD drops the centres; SoftDBoW is sum_t a_tk, L2-normalised;
  FV1(j, k) = sum_t a_tk (x_t(j) - c_k(j)) / s_k(j) (intra- and L2-normalised) and
  FV2(j, k) = sum_t a_tk ((x_t(j) - c_k(j))^2 / s_k(j)^2 - 1) (L2-normalised), s_k = w_k^2 + 1e-6.

Every module takes frames [B, T, D] and num_frames [B]; padded frames never contribute. With
``samples = n > 1`` the real frames form n consecutive groups (the data pipeline's n random samples of
k frames), each group is pooled on its own and the n results are averaged (Araujo et al.'s robust
pooling; their code does the same for NetVLAD and NetFV).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from compactvideo.nn.linear import DENSE, Projection, make_linear
from compactvideo.nn.masking import MaskedBatchNorm, group_frames, mean_over_groups

DBOF_POOLINGS = ("max", "mean", "robust")


class GroupedPooling(nn.Module):
    """Pools each group of real frames with :meth:`pool`, then averages the groups of each video."""

    samples: int = 1

    def pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, L, D] frames of N groups (mask [N, L]) -> [N, output_size]."""
        raise NotImplementedError

    def forward(self, frames: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        grouped, mask, sizes = group_frames(frames, num_frames, self.samples)
        return mean_over_groups(self.pool(grouped, mask), sizes)


class DBoF(GroupedPooling):
    """Deep bag of frames: relu6(BN(W x_t)) for every frame, pooled over the frames."""

    def __init__(
        self,
        feature_size: int,
        cluster_size: int,
        pooling: str = "max",
        samples: int = 1,
        input_batch_norm: bool = False,
        projection: Projection = DENSE,
    ) -> None:
        super().__init__()
        if pooling not in DBOF_POOLINGS:
            raise ValueError(f"DBoF pooling must be one of {DBOF_POOLINGS}, got {pooling!r}")
        if samples < 1 or (pooling != "robust" and samples != 1):
            raise ValueError(
                f"samples must be 1, or >= 1 with robust pooling; got {samples} with {pooling!r}"
            )
        self.pooling, self.samples, self.output_size = pooling, samples, cluster_size
        self.input_norm = MaskedBatchNorm(feature_size) if input_batch_norm else None
        self.projection = make_linear(projection, feature_size, cluster_size, bias=False)
        self.norm = MaskedBatchNorm(cluster_size)

    def pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.input_norm is not None:
            frames = self.input_norm(frames, mask)
        activations = F.relu6(self.norm(self.projection(frames), mask))
        if self.pooling == "mean":
            counts = mask.sum(dim=1, keepdim=True).clamp(min=1).to(activations.dtype)
            return (activations * mask.unsqueeze(-1).to(activations.dtype)).sum(dim=1) / counts
        return activations.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)


class SoftAssignment(nn.Module):
    """a_tk = softmax_k(BN(x_t^T W)): the soft assignment of frames to K clusters (zero on padding)."""

    def __init__(self, feature_size: int, clusters: int, projection: Projection = DENSE) -> None:
        super().__init__()
        self.projection = make_linear(projection, feature_size, clusters, bias=False)
        self.norm = MaskedBatchNorm(clusters)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.norm(self.projection(frames), mask)
        return torch.softmax(logits, dim=-1) * mask.unsqueeze(-1).to(frames.dtype)


def _parameter(feature_size: int, clusters: int, mean: float = 0.0) -> nn.Parameter:
    """A D x K parameter drawn from N(mean, 1/D), LOUPE's initialisation of centres and covariances."""
    return nn.Parameter(torch.randn(feature_size, clusters) / math.sqrt(feature_size) + mean)


class _ClusterPooling(GroupedPooling):
    """Shared part of the LOUPE layers: the soft assignment and the weighted sums over frames."""

    def __init__(self, feature_size: int, clusters: int, samples: int, projection: Projection) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        self.feature_size, self.clusters, self.samples = feature_size, clusters, samples
        self.assignment = SoftAssignment(feature_size, clusters, projection)

    @staticmethod
    def weighted_sum(assignment: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """sum_t a_tk v_t(j) as [N, D, K]: one batched matmul."""
        return torch.einsum("nlk,nld->ndk", assignment, values)


class NetVLAD(_ClusterPooling):
    """NetVLAD: residuals to learned centres, weighted by the soft assignment; output D * K."""

    subtract_centres = True

    def __init__(self, feature_size: int, clusters: int, samples: int = 1, projection: Projection = DENSE):
        super().__init__(feature_size, clusters, samples, projection)
        self.output_size = feature_size * clusters
        if self.subtract_centres:
            self.centres = _parameter(feature_size, clusters)

    def pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assignment = self.assignment(frames, mask)
        vlad = self.weighted_sum(assignment, frames)
        if self.subtract_centres:
            vlad = vlad - assignment.sum(dim=1).unsqueeze(1) * self.centres
        vlad = F.normalize(vlad, dim=1)  # intra-normalisation over the D features of each cluster
        return F.normalize(vlad.flatten(1), dim=-1)


class NetRVLAD(NetVLAD):
    """NetVLAD without the centres: sum_t a_tk x_t(j), intra- and L2-normalised."""

    subtract_centres = False


class SoftDBoW(_ClusterPooling):
    """Soft bag of visual words: sum_t a_tk, L2-normalised; output K."""

    def __init__(self, feature_size: int, clusters: int, samples: int = 1, projection: Projection = DENSE):
        super().__init__(feature_size, clusters, samples, projection)
        self.output_size = clusters

    def pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.assignment(frames, mask).sum(dim=1), dim=-1)


class NetFV(_ClusterPooling):
    """NetFV: first- and second-order Fisher vector statistics, concatenated; output 2 * D * K."""

    def __init__(self, feature_size: int, clusters: int, samples: int = 1, projection: Projection = DENSE):
        super().__init__(feature_size, clusters, samples, projection)
        self.output_size = 2 * feature_size * clusters
        self.centres = _parameter(feature_size, clusters)
        self.covariance_weights = _parameter(feature_size, clusters, mean=1.0)

    def pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assignment = self.assignment(frames, mask)
        sigma = self.covariance_weights.square() + 1e-6  # [D, K]
        mass = assignment.sum(dim=1).unsqueeze(1)  # [N, 1, K]
        first_moment = self.weighted_sum(assignment, frames)
        second_moment = self.weighted_sum(assignment, frames.square())
        first = (first_moment - mass * self.centres) / sigma
        second = (
            mass * self.centres.square() + second_moment - 2 * self.centres * first_moment
        ) / sigma.square()
        second = second - mass
        first = F.normalize(F.normalize(first, dim=1).flatten(1), dim=-1)
        second = F.normalize(second.flatten(1), dim=-1)
        return torch.cat([first, second], dim=-1)

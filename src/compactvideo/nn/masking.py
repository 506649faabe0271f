"""Frame masks, frame groups, and batch norm that padded frames cannot influence.

A batch holds frames [B, T, D] of which only the first ``num_frames[b]`` of row b are real. Every
reduction over frames sees only those, and batch-norm statistics are computed over real frames only,
so appending padding never changes an output.

Groups implement the robust pooling of Araujo et al. (2018, sec. 3.2): the N real frames of a video are
cut into n consecutive groups, group s holding frames ceil(s N / n) <= t < ceil((s + 1) N / n); the data
pipeline lays out n random samples of k frames one after another, so group s is sample s.
"""

from __future__ import annotations

import torch
from torch import nn


def frame_mask(num_frames: torch.Tensor, max_frames: int) -> torch.Tensor:
    """[B, T] booleans: True for the first num_frames[b] frames of row b."""
    return torch.arange(max_frames, device=num_frames.device).unsqueeze(0) < num_frames.unsqueeze(1)


def group_frames(
    frames: torch.Tensor, num_frames: torch.Tensor, groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut every video's real frames into ``groups`` consecutive groups.

    Returns the grouped frames [B * groups, L, D] with L = ceil(T / groups), their mask
    [B * groups, L], and the number of real frames of each group [B, groups]. With one group this is
    the input itself and its frame mask.
    """
    batch, max_frames, features = frames.shape
    if groups == 1:
        return frames, frame_mask(num_frames, max_frames), num_frames.unsqueeze(1)
    length = -(-max_frames // groups)
    bounds = torch.arange(groups + 1, device=frames.device).unsqueeze(0) * num_frames.unsqueeze(1)
    starts = torch.div(bounds + groups - 1, groups, rounding_mode="floor")  # ceil(s N / n), [B, n + 1]
    sizes = starts[:, 1:] - starts[:, :-1]
    offsets = torch.arange(length, device=frames.device)
    index = (starts[:, :-1].unsqueeze(-1) + offsets).clamp(max=max_frames - 1)  # [B, n, L]
    # whole frames copied by row index into [B * T, D]: 15x faster than a gather of single values
    rows = (index + max_frames * torch.arange(batch, device=frames.device).view(-1, 1, 1)).flatten()
    gathered = frames.reshape(batch * max_frames, features).index_select(0, rows)
    mask = offsets < sizes.unsqueeze(-1)
    return gathered.reshape(batch * groups, length, features), mask.reshape(batch * groups, length), sizes


def mean_over_groups(pooled: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Mean over each video's non-empty groups: pooled [B * n, C], sizes [B, n] -> [B, C]."""
    batch, groups = sizes.shape
    if groups == 1:
        return pooled
    present = sizes > 0
    weights = present.to(pooled.dtype) / present.sum(dim=1, keepdim=True).clamp(min=1)
    pooled = pooled.reshape(batch, groups, -1).masked_fill(~present.unsqueeze(-1), 0.0)  # empty: -inf
    return (pooled * weights.unsqueeze(-1)).sum(dim=1)


class MaskedBatchNorm(nn.BatchNorm1d):
    """Batch norm over the last dimension of [B, T, C] frames, with statistics from real frames only.

    Padded positions come out as 0. In eval mode batch norm is element-wise (running statistics), so
    no gather is needed and exported graphs keep static shapes.
    """

    def eval_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) of the eval-mode map: BN(x) = scale * x + shift, from the running statistics,
        scale = weight / sqrt(running_var + eps) and shift = bias - running_mean * scale."""
        scale = torch.rsqrt(self.running_var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -self.running_mean * scale
        return scale, shift if self.bias is None else shift + self.bias

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            real = frames[mask]  # [real frames in the batch, C]
            return torch.zeros_like(frames).index_put((mask,), super().forward(real))
        normalised = super().forward(frames.reshape(-1, frames.shape[-1])).reshape(frames.shape)
        return normalised * mask.unsqueeze(-1).to(normalised.dtype)

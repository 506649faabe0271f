"""Poolings against frame-by-frame float64 loops of their definitions, and their padding invariance."""

import math

import numpy as np
import pytest
import torch

from compactvideo.nn import pooling as pooling_module
from compactvideo.nn.linear import Projection
from compactvideo.nn.masking import group_frames
from compactvideo.nn.pooling import DBoF, NetFV, NetRVLAD, NetVLAD, SoftDBoW

D, K = 6, 4


def randomise_batch_norms(module: torch.nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so eval-mode BN is a real transform."""
    generator = torch.Generator().manual_seed(3)
    for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
            bn.weight.copy_(torch.randn(bn.num_features, generator=generator))
            bn.bias.copy_(torch.randn(bn.num_features, generator=generator))


def eval_bn(bn, x):
    mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    return (x - mean) / np.sqrt(var + bn.eps) * bn.weight.detach().numpy() + bn.bias.detach().numpy()


def assignment_oracle(module, frame):
    logits = eval_bn(module.assignment.norm, module.assignment.projection.weight.detach().numpy() @ frame)
    e = np.exp(logits - logits.max())
    return e / e.sum()


def groups_of(n_real, samples):
    """Frame indices of each group: ceil(s N / n) <= t < ceil((s + 1) N / n)."""
    bounds = [math.ceil(s * n_real / samples) for s in range(samples + 1)]
    return [range(bounds[s], bounds[s + 1]) for s in range(samples) if bounds[s + 1] > bounds[s]]


def l2(v):
    return v / max(np.linalg.norm(v), 1e-12)


def vlad_oracle(module, frames, subtract):
    a = np.array([assignment_oracle(module, f) for f in frames])
    out = np.zeros((D, K))
    for k in range(K):
        for t, frame in enumerate(frames):
            centre = module.centres[:, k].detach().numpy() if subtract else 0.0
            out[:, k] += a[t, k] * (frame - centre)
    out = np.stack([l2(out[:, k]) for k in range(K)], axis=1)
    return l2(out.reshape(-1))


def fv_oracle(module, frames):
    a = np.array([assignment_oracle(module, f) for f in frames])
    sigma = module.covariance_weights.detach().numpy() ** 2 + 1e-6
    centres = module.centres.detach().numpy()
    first, second = np.zeros((D, K)), np.zeros((D, K))
    for k in range(K):
        for t, frame in enumerate(frames):
            first[:, k] += a[t, k] * (frame - centres[:, k]) / sigma[:, k]
            second[:, k] += a[t, k] * ((frame - centres[:, k]) ** 2 / sigma[:, k] ** 2 - 1)
    first = np.stack([l2(first[:, k]) for k in range(K)], axis=1)
    return np.concatenate([l2(first.reshape(-1)), l2(second.reshape(-1))])


def dbof_oracle(module, frames, pooling, samples):
    h = np.array(
        [np.clip(eval_bn(module.norm, module.projection.weight.detach().numpy() @ f), 0, 6) for f in frames]
    )
    if pooling == "mean":
        return h.mean(axis=0)
    return np.mean([h[list(group)].max(axis=0) for group in groups_of(len(frames), samples)], axis=0)


CASES = {
    "netvlad": (lambda s: NetVLAD(D, K, samples=s), lambda m, f, s: vlad_oracle(m, f, True)),
    "netrvlad": (lambda s: NetRVLAD(D, K, samples=s), lambda m, f, s: vlad_oracle(m, f, False)),
    "softdbow": (lambda s: SoftDBoW(D, K, samples=s), None),
    "netfv": (lambda s: NetFV(D, K, samples=s), lambda m, f, s: fv_oracle(m, f)),
    "dbof-max": (lambda s: DBoF(D, 5, "max"), lambda m, f, s: dbof_oracle(m, f, "max", 1)),
    "dbof-mean": (lambda s: DBoF(D, 5, "mean"), lambda m, f, s: dbof_oracle(m, f, "mean", 1)),
    "dbof-robust": (
        lambda s: DBoF(D, 5, "robust", samples=3),
        lambda m, f, s: dbof_oracle(m, f, "robust", 3),
    ),
}


def softdbow_oracle(module, frames):
    return l2(np.array([assignment_oracle(module, f) for f in frames]).sum(axis=0))


@pytest.mark.parametrize("name", CASES)
def test_pooling_matches_its_definition(name):
    make, oracle = CASES[name]
    module = make(1).double().eval()
    randomise_batch_norms(module)
    frames = torch.randn(3, 9, D, dtype=torch.float64)
    num_frames = torch.tensor([9, 4, 7])
    out = module(frames, num_frames).detach().numpy()
    for b in range(3):
        real = frames[b, : num_frames[b]].numpy()
        expected = softdbow_oracle(module, real) if oracle is None else oracle(module, real, 1)
        np.testing.assert_allclose(out[b], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("samples", [2, 3])
@pytest.mark.parametrize("name", ["netvlad", "netfv"])
def test_cluster_poolings_average_their_groups(name, samples):
    make, oracle = CASES[name]
    module = make(samples).double().eval()
    frames = torch.randn(2, 10, D, dtype=torch.float64)
    num_frames = torch.tensor([10, 7])
    out = module(frames, num_frames).detach().numpy()
    for b in range(2):
        real = frames[b, : num_frames[b]].numpy()
        expected = np.mean([oracle(module, real[list(g)], 1) for g in groups_of(len(real), samples)], axis=0)
        np.testing.assert_allclose(out[b], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", CASES)
def test_padding_never_changes_the_output(name, training):
    make, _ = CASES[name]
    module = make(3).double().train(training)
    frames = torch.randn(4, 8, D, dtype=torch.float64)
    num_frames = torch.tensor([8, 3, 6, 1])
    padded = torch.cat([frames, 100 * torch.randn(4, 5, D, dtype=torch.float64)], dim=1)  # garbage padding
    torch.testing.assert_close(module(padded, num_frames), module(frames, num_frames), rtol=0, atol=1e-12)


def test_dbof_rejects_bad_options():
    with pytest.raises(ValueError, match="pooling must be one of"):
        DBoF(4, 8, pooling="median")
    with pytest.raises(ValueError, match="robust pooling"):
        DBoF(4, 8, pooling="max", samples=3)


def projection_matrix(projection: torch.nn.Module) -> np.ndarray:
    weight = projection.weight if isinstance(projection, torch.nn.Linear) else projection.to_dense()
    return weight.detach().numpy()


@pytest.mark.parametrize("chunk", [2**18, 1])  # circulant: a chunk per group index, or per group and video
@pytest.mark.parametrize("projection", ["dense", "circulant"])
@pytest.mark.parametrize(("pooling", "samples"), [("max", 1), ("robust", 3)])
def test_dbof_inference_path_matches_its_definition(pooling, samples, projection, chunk, monkeypatch):
    # Without autograd in eval mode, DBoF takes the maximum before the batch norm and relu6, all frames
    # at once for a dense projection, chunk by chunk for a circulant one; negative and zero batch-norm
    # scales, padding and groups without frames (2 frames in 3 groups) must not tell.
    monkeypatch.setattr(pooling_module, "CHUNK_VALUES", chunk)
    module = DBoF(D, 8, pooling, samples, projection=Projection(projection)).double().eval()
    randomise_batch_norms(module)
    with torch.no_grad():
        module.norm.weight[0] = 0.0
    assert (module.norm.weight < 0).any()
    frames = torch.randn(4, 9, D, dtype=torch.float64)
    num_frames = torch.tensor([9, 2, 7, 5])
    with torch.no_grad():
        out = module(frames, num_frames).numpy()
    weight = projection_matrix(module.projection)
    for b in range(4):
        real = frames[b, : num_frames[b]].numpy()
        h = np.clip(eval_bn(module.norm, real @ weight.T), 0, 6)
        expected = np.mean([h[list(group)].max(axis=0) for group in groups_of(len(real), samples)], axis=0)
        np.testing.assert_allclose(out[b], expected, rtol=0, atol=1e-12)


def test_groups_hold_each_videos_own_frames():
    # every real frame of every video lands in exactly one group of that video, in order
    frames = torch.arange(3 * 11, dtype=torch.float64).reshape(3, 11, 1).expand(-1, -1, D)
    num_frames = torch.tensor([11, 5, 2])
    grouped, mask, sizes = group_frames(frames, num_frames, 3)
    grouped = grouped.reshape(3, 3, -1, D)[..., 0]
    mask = mask.reshape(3, 3, -1)
    for b in range(3):
        kept = [grouped[b, s][mask[b, s]].tolist() for s in range(3)]
        expected = [[b * 11 + t for t in group] for group in groups_of(int(num_frames[b]), 3)]
        assert [k for k in kept if k] == expected
        assert sizes[b].tolist() == [len(k) for k in kept]

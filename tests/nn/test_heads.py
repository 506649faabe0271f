"""Heads against their formulas, computed class by class in float64."""

import numpy as np
import torch

from compactvideo.nn.heads import ContextGating, Logistic, MixtureOfExperts


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_mixture_of_experts_formula():
    moe = MixtureOfExperts(5, num_classes=3, mixtures=2).double()
    h = torch.randn(4, 5, dtype=torch.float64)
    gates_w = moe.gates.weight.detach().numpy()
    experts_w, experts_b = moe.experts.weight.detach().numpy(), moe.experts.bias.detach().numpy()
    assert moe.gates.bias is None
    out = moe(h).detach().numpy()
    for b in range(4):
        x = h[b].numpy()
        for c in range(3):
            logits = gates_w[c * 3 : c * 3 + 3] @ x  # 2 experts + the dummy expert
            gates = np.exp(logits) / np.exp(logits).sum()
            experts = sigmoid(experts_w[c * 2 : c * 2 + 2] @ x + experts_b[c * 2 : c * 2 + 2])
            assert abs(out[b, c] - gates[:2] @ experts) < 1e-12


def test_logistic_and_context_gating_formulas():
    logistic = Logistic(5, 3).double()
    h = torch.randn(4, 5, dtype=torch.float64)
    expected = sigmoid(
        h.numpy() @ logistic.linear.weight.detach().numpy().T + logistic.linear.bias.detach().numpy()
    )
    np.testing.assert_allclose(logistic(h).detach().numpy(), expected, atol=1e-12)

    gating = ContextGating(3).double().eval()
    with torch.no_grad():
        gating.norm.running_mean.normal_()
        gating.norm.running_var.uniform_(0.5, 2.0)
    x = torch.rand(4, 3, dtype=torch.float64)
    z = x.numpy() @ gating.linear.weight.detach().numpy().T
    bn = gating.norm
    z = (z - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + bn.eps)
    z = z * bn.weight.detach().numpy() + bn.bias.detach().numpy()
    np.testing.assert_allclose(gating(x).detach().numpy(), sigmoid(z) * x.numpy(), atol=1e-12)
    assert gating.linear.bias is None

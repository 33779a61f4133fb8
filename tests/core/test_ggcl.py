"""GGCL losses: PatchNCE against a hand computation, the guide terms, the gradient penalty."""

import math

import pytest
import torch

from ctstudio.translation import ggcl


def test_patchnce_equals_hand_computed_value():
    # one image, two patches, 2-d unit features; tau = 0.5 so the numbers stay readable
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    tau = 0.5
    # query 0: positive q0.k0 = 0.6, negative q0.k1 = 0.8; the diagonal of the negatives is masked (-10)
    loss0 = -math.log(math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(-10 / tau) + math.exp(0.8 / tau)))
    # query 1: positive q1.k1 = 0.6, negative q1.k0 = 0.8
    loss1 = -math.log(math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(0.8 / tau) + math.exp(-10 / tau)))
    got = ggcl.patch_nce(q, k, batch_size=1, tau=tau)
    assert got.item() == pytest.approx((loss0 + loss1) / 2, rel=1e-6)


def test_patchnce_rewards_matching_patches_and_detaches_keys():
    torch.manual_seed(0)
    k = ggcl.l2_normalise(torch.randn(2 * 8, 16))
    q_same = k.clone().requires_grad_(True)
    q_shuffled = k[torch.randperm(16)].clone()
    assert ggcl.patch_nce(q_same, k, 2).item() < ggcl.patch_nce(q_shuffled, k, 2).item()
    kk = k.clone().requires_grad_(True)
    ggcl.patch_nce(q_same, kk, 2).backward()
    assert kk.grad is None and q_same.grad is not None


def test_guide_loss_samples_the_same_locations_in_both_maps():
    torch.manual_seed(0)
    g = torch.randn(2, 8, 6, 6)
    w = ggcl.LossWeights(num_patches=64, tau=0.07)
    same = ggcl.guide_loss(g.clone(), g, w).item()
    other = ggcl.guide_loss(torch.randn(2, 8, 6, 6), g, w).item()
    assert same < 0.2 and other > 1.0  # identical maps: every query finds its own key
    assert ggcl.guide_loss(g, g, ggcl.LossWeights(guide="ggdr")).item() == pytest.approx(0.0, abs=1e-6)
    assert ggcl.guide_loss(-g, g, ggcl.LossWeights(guide="ggdr")).item() == pytest.approx(2.0, abs=1e-5)
    assert ggcl.guide_loss(g, g, ggcl.LossWeights(guide="none")).item() == 0.0
    with pytest.raises(ValueError):
        ggcl.guide_loss(torch.randn(2, 8, 4, 4), g, w)
    with pytest.raises(ValueError):
        ggcl.LossWeights(guide="bogus")


def test_gradient_penalty_of_a_linear_critic():
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    out = (x * 2.0).flatten(1).sum(1)  # gradient 2 everywhere: norm 2*sqrt(16) = 8
    assert ggcl.gradient_penalty(out, x).item() == pytest.approx((8.0 - 1.0) ** 2)

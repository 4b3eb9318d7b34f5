"""Empirical activation-pattern agreement between x+ and x-."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.manifold_regularization import relu_stability


def flip_net() -> nn.Sequential:
    """ReLU inputs z = (x0 - 0.5, 0.5 - x0, 0.3, -0.2): the first two flip whenever |x0 - 0.5| < eps."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        net[1].bias.copy_(torch.tensor([-0.5, 0.5, 0.3, -0.2]))
        net[3].weight.zero_()
        net[3].bias.copy_(torch.tensor([1.0, -1.0, 0.5]))
    return net


def test_agreement_per_layer_matches_the_construction() -> None:
    x = np.array([[[[0.5, 0.2]]], [[[0.9, 0.2]]]], dtype=np.float32).reshape(2, 1, 1, 2)
    result = relu_stability(flip_net(), x, 0.1, samples=4, seed=0)
    first, second = result["layers"]
    assert first["name"] == "2" and first["units"] == 4
    # image 0 sits on the boundary: 2 of its 4 ReLUs flip in every draw; image 1 is far from it
    assert first["agreement"] == pytest.approx(0.75) and first["unanimous"] == pytest.approx(0.75)
    assert second["agreement"] == 1.0  # input-independent layer
    assert result["overall"] == pytest.approx((0.75 * 4 + 1.0 * 3) / 7)
    assert result["num_inputs"] == 2 and result["samples"] == 4 and result["functional_relus"] == 0


def test_eps_zero_is_fully_stable_and_eval_mode_is_restored(mnist_small: tuple) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 12 * 12, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    x = mnist_small[2][:20]
    net.train()
    assert relu_stability(net, x, 0.0, batch_size=8)["overall"] == 1.0
    assert net.training
    small = relu_stability(net, x, 0.02, seed=1)["overall"]
    large = relu_stability(net, x, 0.3, seed=1)["overall"]
    assert large < small < 1.0


def test_bad_arguments() -> None:
    x = np.random.rand(2, 1, 1, 2).astype(np.float32)
    with pytest.raises(ValueError, match="eps"):
        relu_stability(flip_net(), x, -0.1)
    with pytest.raises(ValueError, match="samples"):
        relu_stability(flip_net(), x, 0.1, samples=0)
    with pytest.raises(ValueError, match="no .*ReLU"):
        relu_stability(nn.Sequential(nn.Flatten(), nn.Linear(2, 2)), x, 0.1)
    with pytest.raises(ValueError, match="x must lie"):
        relu_stability(flip_net(), x + 2, 0.1)

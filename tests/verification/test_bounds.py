"""Soundness of IBP, CROWN-style and LP bounds: every pre-activation reached inside the box lies within
them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.verification import (
    extract_network,
    input_box,
    interval_bounds,
    linear_relaxation_bounds,
    lp_bounds,
    margin_lower_bounds,
)


def _mlp(seed: int, widths: tuple[int, ...], classes: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], classes))
    return nn.Sequential(*layers).eval()


def _samples(lower: np.ndarray, upper: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random points, random vertices and the corners of the box (vertices are where bounds are hardest)."""
    inside = lower + rng.random((n, len(lower))) * (upper - lower)
    vertices = np.where(rng.random((n, len(lower))) < 0.5, lower, upper)
    return np.concatenate([inside, vertices])


@pytest.mark.parametrize("seed", range(4))
def test_all_bounds_are_sound_and_ordered(seed: int) -> None:
    rng = np.random.default_rng(seed)
    network = extract_network(_mlp(seed, (6, 12, 12, 8)), (6,))
    x = rng.random(6)
    lower, upper = input_box(x, 0.25)
    ibp = interval_bounds(network, lower, upper)
    crown = linear_relaxation_bounds(network, lower, upper, initial=ibp)
    lp = lp_bounds(network, lower, upper, initial=crown)
    points = _samples(lower, upper, 4000, rng)
    pre = network.pre_activations(points)
    for bounds in (ibp, crown, lp):
        for k in range(network.num_hidden):
            assert np.all(pre[k] >= bounds.lower[k] - 1e-9), (bounds.method, k)
            assert np.all(pre[k] <= bounds.upper[k] + 1e-9), (bounds.method, k)
    for k in range(network.num_hidden):  # each method starts from the previous one and never loosens it
        assert np.all(crown.lower[k] >= ibp.lower[k]) and np.all(crown.upper[k] <= ibp.upper[k])
        assert np.all(lp.lower[k] >= crown.lower[k]) and np.all(lp.upper[k] <= crown.upper[k])
    # the tighter methods are strictly tighter somewhere on a 3-layer net, and never have more unstable ReLUs
    assert sum(np.sum(ibp.upper[k] - crown.upper[k]) for k in range(3)) > 0
    assert ibp.unstable_count >= crown.unstable_count >= lp.unstable_count


def test_first_layer_interval_bounds_are_exact() -> None:
    network = extract_network(_mlp(0, (2, 5, 4)), (2,))
    lower, upper = input_box(np.array([0.4, 0.7]), 0.2)
    bounds = interval_bounds(network, lower, upper)
    corners = np.array([[a, b] for a in (lower[0], upper[0]) for b in (lower[1], upper[1])])
    z = network.pre_activations(corners)[0]
    np.testing.assert_allclose(bounds.lower[0], z.min(axis=0), atol=1e-12)
    np.testing.assert_allclose(bounds.upper[0], z.max(axis=0), atol=1e-12)


def test_input_box_is_clipped_to_the_pixel_range() -> None:
    lower, upper = input_box(np.array([0.05, 0.5, 0.98]), 0.1)
    np.testing.assert_allclose(lower, [0.0, 0.4, 0.88])
    np.testing.assert_allclose(upper, [0.15, 0.6, 1.0])


@pytest.mark.parametrize("linear", [True, False])
def test_margin_lower_bounds_are_below_every_reached_margin(linear: bool) -> None:
    rng = np.random.default_rng(5)
    network = extract_network(_mlp(5, (4, 10, 10)), (4,))
    x = rng.random(4)
    label = int(network(x[None]).argmax())
    lower, upper = input_box(x, 0.15)
    bounds = linear_relaxation_bounds(network, lower, upper)
    lows = margin_lower_bounds(network, bounds, label, linear=linear)
    logits = network(_samples(lower, upper, 3000, rng))
    margins = logits[:, [label]] - logits
    assert np.isinf(lows[label])
    others = np.arange(3) != label
    assert np.all(margins[:, others] >= lows[others] - 1e-9)


def test_stable_counts_add_up() -> None:
    network = extract_network(_mlp(1, (3, 7, 5)), (3,))
    lower, upper = input_box(np.full(3, 0.5), 0.3)
    bounds = interval_bounds(network, lower, upper)
    counts = bounds.stable_counts()
    assert [sum(c.values()) for c in counts] == [7, 5]
    assert bounds.unstable_count == sum(c["unstable"] for c in counts)
    with pytest.raises(ValueError, match="input_lower"):
        interval_bounds(network, upper, lower)

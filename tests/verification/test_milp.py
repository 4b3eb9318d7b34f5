"""The MILP against independent exhaustive checks on 2-input networks (activation-region enumeration and a
grid)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from art_manifold_defenses.verification import (
    extract_network,
    input_box,
    interval_bounds,
    linear_relaxation_bounds,
    lp_bounds,
    minimum_margin,
    solve_margin,
)
from art_manifold_defenses.verification.network import ReluNetwork


def _tiny(seed: int, hidden: tuple[int, int] = (4, 4), classes: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(2, hidden[0]),
        nn.ReLU(),
        nn.Linear(hidden[0], hidden[1]),
        nn.ReLU(),
        nn.Linear(hidden[1], classes),
    ).eval()
    with torch.no_grad():  # steeper than the default init, so decision boundaries cross the boxes
        for layer in model[::2]:
            layer.weight.mul_(3.0)
    return model


def _dense(network: ReluNetwork) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(layer.weight.toarray(), layer.bias) for layer in network.layers]


def exhaustive_minimum(network: ReluNetwork, lower: np.ndarray, upper: np.ndarray, row: np.ndarray) -> float:
    """Exact min of ``row @ logits`` over the box: one LP per activation pattern (the function is linear on
    each region, so its minimum over a region is attained at a vertex of that polygon)."""
    (w1, b1), (w2, b2), (w3, b3) = _dense(network)
    best = np.inf
    box = list(zip(lower, upper, strict=True))
    for p1 in itertools.product((0.0, 1.0), repeat=len(b1)):
        signs1 = 1 - 2 * np.array(p1)
        if (
            linprog(
                np.zeros(2), A_ub=signs1[:, None] * w1, b_ub=-signs1 * b1, bounds=box, method="highs"
            ).status
            != 0
        ):
            continue  # empty first-layer region: none of its refinements exists either
        d1 = np.diag(p1)
        a2, c2 = w2 @ d1 @ w1, w2 @ d1 @ b1 + b2  # z2 as an affine function of x on this region
        for p2 in itertools.product((0.0, 1.0), repeat=len(b2)):
            d2 = np.diag(p2)
            # pattern constraints: active -> z >= 0, inactive -> z <= 0, written as A x <= b
            signs2 = 1 - 2 * np.array(p2)
            a_ub = np.vstack([signs1[:, None] * w1, signs2[:, None] * a2])
            b_ub = np.concatenate([-signs1 * b1, -signs2 * c2])
            objective = row @ w3 @ d2 @ a2
            const = row @ (w3 @ d2 @ c2 + b3)
            res = linprog(objective, A_ub=a_ub, b_ub=b_ub, bounds=box, method="highs")
            if res.status == 0:
                best = min(best, res.fun + const)
    return float(best)


def _grid(lower: np.ndarray, upper: np.ndarray, n: int = 201) -> np.ndarray:
    a, b = np.meshgrid(np.linspace(lower[0], upper[0], n), np.linspace(lower[1], upper[1], n))
    return np.stack([a.ravel(), b.ravel()], axis=1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("method", ["ibp", "lp"])
def test_minimum_margin_matches_exhaustive_and_grid_checks(seed: int, method: str) -> None:
    rng = np.random.default_rng(seed)
    network = extract_network(_tiny(seed), (2,))
    x = rng.random(2)
    lower, upper = input_box(x, 0.4)
    bounds = interval_bounds(network, lower, upper) if method == "ibp" else lp_bounds(network, lower, upper)
    label = int(network(x[None]).argmax())
    grid_logits = network(_grid(lower, upper))
    for target in range(3):
        if target == label:
            continue
        row = np.zeros(3)
        row[label], row[target] = 1.0, -1.0
        exact = exhaustive_minimum(network, lower, upper, row)
        result = minimum_margin(network, bounds, label, target, x)
        assert result.status == "optimal"
        assert result.value == pytest.approx(exact, abs=1e-6)
        # the minimiser is in the box and really has that margin
        assert np.all(result.point >= lower - 1e-9) and np.all(result.point <= upper + 1e-9)
        logits = network(result.point[None])[0]
        assert logits[label] - logits[target] == pytest.approx(exact, abs=1e-6)
        grid_min = float((grid_logits @ row).min())
        assert grid_min >= exact - 1e-9  # no grid point beats the exact minimum
        assert grid_min - exact < 0.05  # and the grid gets close to it
        # the decision procedure agrees with the sign of the exact minimum
        decision = solve_margin(network, bounds, label, target, x)
        if exact > 1e-6:
            assert decision.status == "verified"
        elif exact < -1e-6:
            assert decision.status == "violated"
            assert decision.value <= 1e-7
            found = network(decision.point[None])[0]
            assert found[label] - found[target] <= 1e-6


def test_verified_and_violated_cases_both_occur_in_the_seeds() -> None:
    """Guards the test above against only ever exercising one branch."""
    statuses = set()
    binaries = []
    for seed in range(6):
        network = extract_network(_tiny(seed), (2,))
        x = np.random.default_rng(seed).random(2)
        lower, upper = input_box(x, 0.4)
        bounds = linear_relaxation_bounds(network, lower, upper)
        label = int(network(x[None]).argmax())
        for target in set(range(3)) - {label}:
            outcome = solve_margin(network, bounds, label, target, x)
            statuses.add(outcome.status)
            binaries.append(outcome.binaries)
    assert statuses == {"verified", "violated"}
    assert max(binaries) >= 3  # the big-M constraints are really exercised


def test_wider_network_against_grid() -> None:
    network = extract_network(_tiny(11, hidden=(12, 10), classes=4), (2,))
    x = np.array([0.5, 0.5])
    lower, upper = input_box(x, 0.5)
    bounds = lp_bounds(network, lower, upper)
    label = int(network(x[None]).argmax())
    logits = network(_grid(lower, upper, 301))
    for target in set(range(4)) - {label}:
        result = minimum_margin(network, bounds, label, target, x)
        grid_min = float((logits[:, label] - logits[:, target]).min())
        assert result.value <= grid_min + 1e-9
        assert grid_min - result.value < 0.05

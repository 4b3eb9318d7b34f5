"""Bounds: closed forms, an independent computation of Theorem 2, orderings and monotonicity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from art_manifold_defenses.smoothing.bounds import (
    PIXELDP_DELTA_GRID,
    cohen_radius,
    pixeldp_epsilon,
    pixeldp_radius,
    renyi_divergence_threshold,
    renyi_radius,
)


def independent_renyi(p1: float, p2: float, sigma: float) -> float:
    """Theorem 2 written directly (no log space), dense alpha grid then a bounded Brent refinement."""

    def objective(alpha: np.ndarray | float) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mean = (0.5 * (p1 ** (1 - alpha) + p2 ** (1 - alpha))) ** (1 / (1 - alpha))
            return np.nan_to_num(-2 * sigma**2 / alpha * np.log(1 - p1 - p2 + 2 * mean), nan=-np.inf)

    alphas = 1 + np.logspace(-6, 3, 20000)
    values = objective(alphas)
    i = int(np.argmax(values))
    lo, hi = alphas[max(i - 1, 0)], alphas[min(i + 1, len(alphas) - 1)]
    res = minimize_scalar(
        lambda a: -float(objective(a)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
    )
    return float(np.sqrt(max(values[i], -res.fun)))


@pytest.mark.parametrize(
    ("p1", "p2", "expected"), [(0.99, 0.01, 1.908), (0.9, 0.05, 1.249), (0.6, 0.3, 0.326)]
)
def test_renyi_closed_form_values(p1: float, p2: float, expected: float) -> None:
    for sigma in (0.25, 1.0, 2.0):
        assert renyi_radius(p1, p2, sigma) == pytest.approx(expected * sigma, abs=6e-4 * sigma)


def test_renyi_matches_independent_computation_on_grid() -> None:
    worst = 0.0
    for p1 in (0.35, 0.5, 0.7, 0.9, 0.99, 0.999):
        for p2 in (0.001, 0.01, 0.1, 0.3):
            if p2 >= p1 or p1 + p2 > 1:
                continue
            for sigma in (0.12, 0.5, 1.0):
                ours = float(renyi_radius(p1, p2, sigma))
                ref = independent_renyi(p1, p2, sigma)
                worst = max(worst, abs(ours - ref) / ref)
    assert worst < 1e-4


def test_renyi_vectorised_equals_scalar_calls() -> None:
    p1 = np.array([[0.9, 0.8], [0.7, 0.99]])
    p2 = np.array([[0.05, 0.1], [0.2, 0.005]])
    vec = renyi_radius(p1, p2, 0.5)
    assert vec.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            assert vec[i, j] == pytest.approx(float(renyi_radius(p1[i, j], p2[i, j], 0.5)), rel=1e-12)


def test_renyi_edge_cases() -> None:
    assert renyi_radius(0.4, 0.4, 1.0) == 0.0
    assert renyi_radius(0.3, 0.5, 1.0) == 0.0
    # p2 = 0: the objective -log(1 - p1) / alpha is maximal as alpha -> 1
    assert renyi_radius(0.9, 0.0, 1.0) == pytest.approx(np.sqrt(-2 * np.log(0.1)), rel=1e-9)
    # continuity towards p2 = 0
    assert renyi_radius(0.9, 1e-12, 1.0) == pytest.approx(float(renyi_radius(0.9, 0.0, 1.0)), rel=1e-3)
    assert np.isinf(renyi_radius(1.0, 0.0, 1.0))
    # the threshold of Lemma 1 is finite and non-negative in log space even for extreme alpha
    t = renyi_divergence_threshold(np.array([1.0 + 1e-9, 2.0, 1e4]), 0.9, 1e-300)
    assert np.all(np.isfinite(t)) and np.all(t >= 0)


def test_renyi_between_pixeldp_and_cohen_on_grid() -> None:
    # the paper's appendix region: p1 >= p2, p1 + p2 <= 1, p1 + p2 >= 0.2
    p1, p2 = np.meshgrid(np.linspace(0.1, 0.999, 40), np.linspace(0.0005, 0.5, 40))
    valid = (p1 > p2) & (p1 + p2 <= 1) & (p1 + p2 >= 0.2)
    a, b = p1[valid], p2[valid]
    renyi = renyi_radius(a, b, 1.0)
    assert np.all(renyi >= pixeldp_radius(a, b, 1.0) - 1e-12)
    assert np.all(renyi <= cohen_radius(a, 1.0, b) + 1e-9)
    # the bound is "more than twice as high" as PixelDP when p1 and p2 are far apart (appendix A)
    assert renyi_radius(0.95, 0.01, 1.0) > 2 * pixeldp_radius(0.95, 0.01, 1.0)


def test_renyi_monotone_in_p1_and_sigma() -> None:
    p1 = np.linspace(0.31, 0.97, 200)
    r = renyi_radius(p1, 0.03, 1.0)
    assert np.all(np.diff(r) > 0)
    sig = np.linspace(0.1, 2.0, 50)
    assert np.all(np.diff(renyi_radius(0.9, 0.05, sig)) > 0)
    assert np.all(np.diff(renyi_radius(0.9, np.linspace(0.0, 0.09, 50), 1.0)) < 0)


def test_cohen_radius() -> None:
    assert cohen_radius(0.99, 1.0) == pytest.approx(norm.ppf(0.99), rel=1e-12)
    assert cohen_radius(0.99, 0.5) == pytest.approx(0.5 * 2.326348, rel=1e-6)
    assert cohen_radius(0.9, 1.0, 0.05) == pytest.approx(0.5 * (norm.ppf(0.9) - norm.ppf(0.05)), rel=1e-12)
    assert cohen_radius(0.5, 1.0) == 0.0 and cohen_radius(0.4, 1.0) == 0.0


def test_pixeldp_condition_and_bisection() -> None:
    p1, p2 = np.array([0.99, 0.9, 0.6]), np.array([0.01, 0.05, 0.3])
    for delta in (0.001, 0.05, 0.2):
        eps = pixeldp_epsilon(p1, p2, delta)
        feasible = eps > 0
        lhs = np.exp(2 * eps) * p2 + (1 + np.exp(eps)) * delta
        assert np.all(p1[feasible] >= lhs[feasible] - 1e-12)
        # a slightly larger epsilon (below 1) would violate the condition
        bigger = np.minimum(eps + 1e-6, 1.0)
        tight = (eps < 1.0) & feasible
        assert np.all(p1[tight] < (np.exp(2 * bigger) * p2 + (1 + np.exp(bigger)) * delta)[tight])
        bis = pixeldp_epsilon(p1, p2, delta, search="bisection")
        assert np.all(bis <= eps + 1e-12) and np.all(eps - bis <= 1e-3 + 1e-12)
    # radius = sigma * eps / sqrt(2 log(1.25 / delta)) maximised over the grid
    manual = max(
        float(pixeldp_epsilon(0.9, 0.05, d)) / np.sqrt(2 * np.log(1.25 / d)) for d in PIXELDP_DELTA_GRID
    )
    assert pixeldp_radius(0.9, 0.05, 0.7) == pytest.approx(0.7 * manual, rel=1e-12)
    assert pixeldp_radius(0.4, 0.4, 1.0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p1": 1.2, "p2": 0.1, "sigma": 1.0}, "p1"),
        ({"p1": 0.9, "p2": -0.1, "sigma": 1.0}, "p2"),
        ({"p1": 0.9, "p2": 0.1, "sigma": 0.0}, "sigma"),
        ({"p1": 0.9, "p2": 0.2, "sigma": 1.0}, "p1 \\+ p2"),
        ({"p1": np.nan, "p2": 0.1, "sigma": 1.0}, "p1"),
    ],
)
def test_bad_inputs_raise(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        renyi_radius(**kwargs)
    with pytest.raises(ValueError, match=message):
        pixeldp_radius(**kwargs)


def test_pixeldp_bad_options() -> None:
    with pytest.raises(ValueError, match="search"):
        pixeldp_epsilon(0.9, 0.05, 0.01, search="grid")
    with pytest.raises(ValueError, match="delta_grid"):
        pixeldp_radius(0.9, 0.05, 1.0, delta_grid=[0.0, 0.1])

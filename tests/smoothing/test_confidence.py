"""Confidence bounds: Clopper–Pearson coverage, agreement with statsmodels (test-only dependency),
Sison–Glaz."""

from __future__ import annotations

import numpy as np
import pytest

from art_manifold_defenses.smoothing.confidence import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    sison_glaz_intervals,
    top_two_bounds,
)

statsmodels_proportion = pytest.importorskip("statsmodels.stats.proportion")


def test_clopper_pearson_equals_statsmodels_beta_interval() -> None:
    for k, n in [(0, 10), (3, 10), (10, 10), (190, 200), (99, 100), (5000, 10000)]:
        for alpha in (0.001, 0.05):
            low, high = statsmodels_proportion.proportion_confint(k, n, alpha=2 * alpha, method="beta")
            assert clopper_pearson_lower(k, n, alpha) == pytest.approx(low, abs=1e-12)
            assert clopper_pearson_upper(k, n, alpha) == pytest.approx(high, abs=1e-12)
    # ART's documented value (art_api.md section 4)
    assert clopper_pearson_lower(190, 200, 0.001) == pytest.approx(0.8835450588943431, rel=1e-12)


@pytest.mark.parametrize("p", [0.03, 0.5, 0.9, 0.99])
def test_clopper_pearson_coverage_simulation(p: float) -> None:
    rng = np.random.default_rng(0)
    n, alpha, trials = 100, 0.05, 20000
    k = rng.binomial(n, p, size=trials)
    assert np.mean(clopper_pearson_lower(k, n, alpha) <= p) >= 1 - alpha
    assert np.mean(clopper_pearson_upper(k, n, alpha) >= p) >= 1 - alpha


def test_top_two_bounds_joint_coverage_simulation() -> None:
    """The pair (p1 lower, p2 upper) holds together with probability >= 1 - alpha, with the class selected
    from independent samples (n0) and also from the same counts (n0 = 0, the authors' code)."""
    rng = np.random.default_rng(1)
    probs = np.array([0.55, 0.3, 0.1, 0.05])
    alpha, n, trials = 0.1, 100, 1500
    hits_independent = hits_same = 0
    for _ in range(trials):
        sel = rng.multinomial(100, probs)
        est = rng.multinomial(n, probs)
        top = int(np.argmax(sel))
        p1, p2 = top_two_bounds(est, alpha, top=top)
        hits_independent += (p1 <= probs[top]) and (p2 >= np.delete(probs, top).max())
        top = int(np.argmax(est))
        p1, p2 = top_two_bounds(est, alpha)
        hits_same += (p1 <= probs[top]) and (p2 >= np.delete(probs, top).max())
    assert hits_independent / trials >= 1 - alpha
    assert hits_same / trials >= 1 - alpha


def test_sison_glaz_agrees_with_statsmodels_on_random_counts() -> None:
    rng = np.random.default_rng(2)
    compared = 0
    for _ in range(12):
        k = int(rng.integers(2, 11))
        n = int(rng.choice([30, 100, 200]))
        counts = rng.multinomial(n, rng.dirichlet(np.ones(k) * float(rng.choice([0.5, 2.0, 10.0]))))
        ref = statsmodels_proportion.multinomial_proportions_confint(counts, alpha=0.05, method="sison-glaz")
        if np.any(ref[:, 0] >= ref[:, 1]):  # degenerate statsmodels output (zero-width intervals)
            continue
        lower, upper = sison_glaz_intervals(counts, 0.05)
        np.testing.assert_allclose(np.c_[lower, upper], ref, atol=1e-9)
        compared += 1
    assert compared >= 8
    fixed = [56, 72, 73, 59, 62, 87, 58]  # Sison & Glaz's example
    lower, upper = sison_glaz_intervals(fixed, 0.05)
    np.testing.assert_allclose(
        np.c_[lower, upper],
        statsmodels_proportion.multinomial_proportions_confint(fixed, 0.05, "sison-glaz"),
        atol=1e-9,
    )


def test_sison_glaz_degenerate_counts_are_guarded() -> None:
    counts = [100] + [0] * 9
    lower, _ = sison_glaz_intervals(counts, 0.05)
    assert lower[0] == 1.0  # the raw method collapses (as R's MultinomialCI and statsmodels)
    p1_raw, _ = top_two_bounds(counts, 0.05, interval="sison-glaz", guard=False)
    p1, p2 = top_two_bounds(counts, 0.05, interval="sison-glaz")
    assert p1_raw == 1.0
    assert p1 == pytest.approx(float(clopper_pearson_lower(100, 100, 0.05)))
    assert p1 < 0.98 and p2 > 0


def test_top_two_bounds_bonferroni_values() -> None:
    counts = np.array([90, 6, 4, 0, 0, 0, 0, 0, 0, 0])
    p1, p2 = top_two_bounds(counts, 0.05)
    assert p1 == pytest.approx(float(clopper_pearson_lower(90, 100, 0.005)))
    assert p2 == pytest.approx(float(clopper_pearson_upper(6, 100, 0.005)))
    # selecting another class makes the top count the runner-up
    q1, q2 = top_two_bounds(counts, 0.05, top=1)
    assert q1 == pytest.approx(float(clopper_pearson_lower(6, 100, 0.005)))
    assert q2 == pytest.approx(min(float(clopper_pearson_upper(90, 100, 0.005)), 1 - q1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: clopper_pearson_lower(5, 4, 0.05), "counts"),
        (lambda: clopper_pearson_lower(1, 4, 1.5), "alpha"),
        (lambda: sison_glaz_intervals([3], 0.05), "at least two"),
        (lambda: sison_glaz_intervals([3, -1], 0.05), "non-negative"),
        (lambda: sison_glaz_intervals([0, 0], 0.05), "positive total"),
        (lambda: top_two_bounds([3, 4], 0.05, interval="wilson"), "interval"),
        (lambda: top_two_bounds([3, 4], 0.05, top=5), "top"),
    ],
)
def test_bad_inputs(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("interval", ["clopper-pearson", "sison-glaz"])
def test_certify_batch_equals_per_image_certificates(interval: str) -> None:
    from art_manifold_defenses.smoothing.certification import certify_batch, certify_from_counts

    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(10) * 0.3, size=8)
    est = np.stack([rng.multinomial(200, p) for p in probs])
    sel = np.stack([rng.multinomial(20, p) for p in probs])
    sel[0] = 0  # n0 = 0 for one image: select from the estimation counts
    top, radii, p1, p2, p_a = certify_batch(sel, est, sigma=0.5, alpha=0.01, interval=interval)
    for i in range(8):
        cert = certify_from_counts(sel[i], est[i], sigma=0.5, alpha=0.01, interval=interval)
        assert (
            top[i] == cert.prediction
            and p1[i] == pytest.approx(cert.p1_lower)
            and p2[i] == pytest.approx(cert.p2_upper)
        )
        assert p_a[i] == pytest.approx(cert.cohen_p_lower)
        for b in ("renyi", "cohen", "pixeldp"):
            assert radii[b][i] == pytest.approx(cert.radius[b], abs=1e-12)
    assert top[0] == int(np.argmax(est[0]))

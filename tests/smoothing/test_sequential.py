"""Decision mode (confidence sequence over a schedule of rounds): soundness by simulation, no network.

A synthetic base classifier votes for its top class with a known probability ``p`` (Bernoulli, or a
multinomial for the Rényi pair), so the true certified radius is known. Over many simulated images the rate of
"certified at r" where the true radius is at most ``r`` must stay below ``alpha``. The acceptance threshold is
the 99.9% quantile of ``Binomial(runs, alpha)``, and the number of runs is chosen so that a procedure at
``2 alpha`` passes it with probability below 1e-6 (asserted in the test): the test cannot be passed by a
procedure that is merely close. Looking at every round at level ``alpha`` without the union bound (peeking)
fails it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from art_manifold_defenses.smoothing import DecisionResult, decide_sequentially, renyi_radius, round_schedule
from art_manifold_defenses.smoothing.sequential import radius_bounds, radius_threshold, round_levels

ALPHA = 0.05
RUNS = 4000
N_MAX = 10_000


def acceptance(runs: int, alpha: float = ALPHA) -> int:
    """Largest number of false certificates accepted; a procedure at 2 alpha passes with probability <
    1e-6."""
    threshold = int(stats.binom.ppf(0.999, runs, alpha))
    assert stats.binom.cdf(threshold, runs, 2 * alpha) < 1e-6
    return threshold


def simulate(
    probs: list[float],
    runs: int,
    *,
    radius: float,
    sigma: float,
    bound: str = "cohen",
    seed: int = 0,
    alpha: float = ALPHA,
    levels: list[float] | None = None,
    n_max: int = N_MAX,
) -> DecisionResult:
    rng = np.random.default_rng(seed)
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()

    def draw(images: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if len(p) == 2:
            top = rng.binomial(counts, p[0])
            return np.stack([top, counts - top], axis=1)
        return rng.multinomial(counts, p)

    return decide_sequentially(
        draw,
        runs,
        radius=radius,
        sigma=sigma,
        alpha=alpha if levels is None else sum(levels),
        n_max=n_max,
        n0=100,
        num_classes=len(p),
        bound=bound,
        levels=levels,
    )


@pytest.mark.parametrize(("sigma", "radius"), [(0.25, 0.5), (0.5, 0.25)])
@pytest.mark.parametrize("gap", [0.0, 0.002, 0.02])
def test_cohen_false_certification_rate_at_most_alpha(sigma: float, radius: float, gap: float) -> None:
    """p at the threshold Phi(r / sigma) (gap 0: the worst case) and below it: 'certified at r' at most
    alpha."""
    p = radius_threshold(radius, sigma) - gap
    assert sigma * stats.norm.ppf(p) <= radius + 1e-12
    res = simulate([p, 1 - p], RUNS, radius=radius, sigma=sigma, seed=int(1000 * gap) + int(10 * sigma))
    false = int(res.certified.sum())
    assert false <= acceptance(RUNS), f"{false} of {RUNS} certified at r={radius} with p={p:.5f}"
    # the reported radius is a valid certificate too: above the true radius at most as often
    assert int((res.radius > sigma * stats.norm.ppf(p)).sum()) <= acceptance(RUNS)
    if gap == 0:  # at the threshold the test really samples (deciding at the first round would be suspicious)
        assert res.samples.mean() > 1000


def test_peeking_without_the_union_bound_fails_the_same_test() -> None:
    """Every round at level alpha (no correction): the rate exceeds 2 alpha, so the test above has teeth."""
    sigma, radius = 0.25, 0.5
    p = radius_threshold(radius, sigma)
    rounds = len(round_schedule(N_MAX))
    res = simulate(
        [p, 1 - p], RUNS, radius=radius, sigma=sigma, levels=[ALPHA] * rounds, alpha=ALPHA * rounds
    )
    assert int(res.certified.sum()) > acceptance(RUNS)


def test_p_equal_one_certifies_after_few_samples() -> None:
    """p = 1 (every vote on the top class): certified at every run, after the first round that can certify."""
    sigma, radius = 0.25, 0.5
    res = simulate([1.0, 0.0], 500, radius=radius, sigma=sigma)
    assert res.certified.all() and (res.prediction == 0).all()
    levels = round_levels(ALPHA, len(round_schedule(N_MAX)))
    schedule = round_schedule(N_MAX)
    first = schedule[np.argmax(levels[0] ** (1.0 / schedule) > radius_threshold(radius, sigma))]
    assert (res.samples == 100 + first).all() and first <= 400  # 100,000-sample CERTIFY would spend 100,100


def test_clear_images_stop_early_and_wrong_class_abstains() -> None:
    sigma, radius = 0.5, 0.5
    easy = simulate([0.999, 0.001], 300, radius=radius, sigma=sigma)
    assert easy.certified.mean() > 0.99 and easy.samples.mean() < 1000
    hopeless = simulate([0.6, 0.4], 300, radius=radius, sigma=sigma)  # threshold 0.84: futility stops
    assert not hopeless.certified.any() and hopeless.samples.mean() < 1000
    assert set(hopeless.decision) <= {"not_certified", "abstain"}
    coin = simulate([0.5, 0.5], 300, radius=0.0, sigma=sigma)  # no majority class: abstain (radius 0)
    assert coin.certified.mean() <= 2 * ALPHA and (coin.decision == "abstain").mean() > 0.9
    assert (coin.prediction[coin.decision == "abstain"] == -1).all()


def test_curtailment_stops_where_the_cap_cannot_certify() -> None:
    """sigma 0.25, r 1.0 needs p_A > Phi(4): even all 10,000 votes cannot certify it, decided after one
    round."""
    res = simulate([1.0, 0.0], 50, radius=1.0, sigma=0.25)
    assert (res.decision == "not_certified").all() and (res.samples == 200).all()
    # the certified radius it did reach (100 of 100 votes) is reported
    level = ALPHA / len(round_schedule(N_MAX))
    assert res.radius == pytest.approx(0.25 * stats.norm.ppf(level ** (1 / 100)))


@pytest.mark.parametrize("bound", ["renyi", "pixeldp"])
def test_top_two_bounds_false_certification_rate_at_most_alpha(bound: str) -> None:
    """Rényi / PixelDP on the pair (p_(1), p_(2)): r set to the true radius of (0.9, 0.06) -> at most
    alpha."""
    from art_manifold_defenses.smoothing import pixeldp_radius

    sigma, probs = 0.5, [0.9, 0.06, 0.04]
    true = float((renyi_radius if bound == "renyi" else pixeldp_radius)(probs[0], probs[1], sigma))
    runs = 2000
    res = simulate(probs, runs, radius=true, sigma=sigma, bound=bound, seed=7)
    assert int(res.certified.sum()) <= acceptance(runs)
    clear = simulate(probs, 200, radius=0.5 * true, sigma=sigma, bound=bound, seed=8)
    assert clear.certified.mean() > 0.95  # and it does certify what it should


def test_radius_bounds_match_the_fixed_n_certificate() -> None:
    """At one round (K = 1, level alpha) the bounds are CERTIFY's: Cohen's p_A and the Bonferroni pair."""
    from art_manifold_defenses.smoothing import certify_from_counts

    counts = np.array([930, 50, 20])
    cert = certify_from_counts(np.array([90, 5, 5]), counts, sigma=0.5, alpha=0.001)
    for bound in ("cohen", "renyi", "pixeldp"):
        lower, upper, p_lower, _ = radius_bounds(930, 50, 1000, 0.001, bound=bound, sigma=0.5, num_classes=3)
        assert float(lower) == pytest.approx(cert.radius[bound], rel=1e-9)
        assert float(upper) > float(lower)
    p_a = radius_bounds(930, 50, 1000, 0.001, bound="cohen", sigma=0.5, num_classes=3)[2]
    assert float(p_a) == pytest.approx(cert.cohen_p_lower)


def test_schedule_and_levels() -> None:
    doubling = [100 * 2**k for k in range(10)]
    assert round_schedule(100_000).tolist() == [*doubling, 100_000]
    assert round_schedule(105_000).tolist()[-2:] == [51200, 105_000]
    # 960 merges into the cap
    assert round_schedule(1000, first_round=300, growth=3.2).tolist() == [300, 1000]
    assert round_schedule(50, first_round=100).tolist() == [50]
    assert round_levels(0.001, 11).sum() == pytest.approx(0.001)
    with pytest.raises(ValueError, match="growth"):
        round_schedule(1000, growth=1.0)
    with pytest.raises(ValueError, match="first_round"):
        round_schedule(1000, first_round=0)
    with pytest.raises(ValueError, match="levels must sum to at most alpha"):
        decide_sequentially(
            lambda i, c: np.zeros((len(i), 2), dtype=np.int64),
            2,
            radius=0.1,
            sigma=0.5,
            alpha=0.05,
            n_max=N_MAX,
            n0=10,
            num_classes=2,
            levels=[0.05] * len(round_schedule(N_MAX)),
        )
    with pytest.raises(ValueError, match="n0"):
        decide_sequentially(
            lambda i, c: np.zeros((len(i), 2), dtype=np.int64),
            2,
            radius=0.1,
            sigma=0.5,
            alpha=0.01,
            n_max=100,
            n0=0,
            num_classes=2,
        )
    with pytest.raises(ValueError, match="radius"):
        simulate([0.9, 0.1], 3, radius=-1.0, sigma=0.5)

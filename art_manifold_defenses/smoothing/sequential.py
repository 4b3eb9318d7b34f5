"""Decision mode: "is this image certified at radius ``r``?" answered with as few forward passes as the image
needs.

Cohen et al. (2019)'s CERTIFY spends the same ``n`` (typically 100,000) samples on every image. Voráček & Hein
(2024, "Treatment of Statistical Estimation Problems in Randomized Smoothing for Adversarial Robustness",
arXiv 2406.17830, Section 3) point out that deciding "robust at ``r`` or not" is a sequential testing problem:
sample in rounds and stop as soon as a confidence sequence for ``p_A`` separates it from the threshold
``Phi(r / sigma)``; images whose top class wins (nearly) all votes, or clearly fails, are decided after a few
hundred samples.

The procedure (:func:`decide_sequentially`) and why it is valid under optional stopping:

1. **Selection.** ``n0`` samples (independent of everything after) select the class ``c_A`` (argmax; ties to
   the lowest index), as in CERTIFY.
2. **Rounds.** A fixed schedule of cumulative sample sizes ``n_1 < n_2 < ... < n_K = n_max``
   (:func:`round_schedule`: ``first_round`` samples, then each size ``growth`` times the previous, the last
   one ``n_max``) and per-round levels ``alpha_1, ..., alpha_K`` with ``sum_k alpha_k <= alpha``
   (:func:`round_levels`: ``alpha / K`` each) are fixed *before any sample is drawn*. After round ``k`` the
   ``n_k`` estimation samples so far give the certified radius ``R_k`` of the chosen bound with one-sided
   Clopper–Pearson bounds at level ``alpha_k`` (:func:`radius_bounds`; Cohen: ``R_k = sigma Phi^-1(L_k)``,
   ``L_k = Beta^-1(alpha_k; S, n_k - S + 1)`` with ``S`` the votes for ``c_A``).
3. **Stopping.** The image is *certified at r* as soon as ``R_k > r``. It stops *not certified* when the
   radius from the upper bounds at ``alpha_k`` is ``<= r`` (futility), when no later round could reach
   ``R_j > r`` even if every remaining vote went to ``c_A`` (curtailment: this stops only where the cap would
   end as "not certified" anyway), or at the cap ``n_max``. It is reported *abstain* (prediction -1) when no
   round certified any positive radius.

Validity under optional stopping. Let ``E_k`` be the event "the round-``k`` lower bound is wrong": for
Cohen ``L_k > p_A``; for Rényi and PixelDP ``L1_k > p_(1)`` or ``U_j < p_j`` for some other class ``j``
(one-sided bounds at ``alpha_k / k`` each, a Bonferroni correction over the ``k`` classes as
:func:`~.confidence.top_two_bounds`; the pair uses the upper bound of the largest other count, which is
``max_j U_j >= p_(2)`` outside ``E_k``). The round sizes are fixed in advance and the ``n_k`` samples are
i.i.d. given ``c_A`` (the selection samples are independent of them), so ``S`` after round ``k`` is exactly
``Binomial(n_k, p_A)`` and the exact Clopper–Pearson bound gives ``P(E_k) <= alpha_k`` -- whatever the
stopping rule, because ``E_k`` is defined on the first ``n_k`` samples whether or not round ``k`` is ever
reached. The union bound gives ``P(E_1 or ... or E_K) <= sum_k alpha_k <= alpha``: with probability
``>= 1 - alpha`` every round's bound is right *simultaneously*, i.e. the ``R_k`` form a confidence sequence
for the true radius ``R*`` over the whole schedule. The radius is monotone in the bounds (Cohen: increasing in
``L``; Rényi/PixelDP: increasing in ``p_(1)``, decreasing in ``p_(2)``), so outside that event ``R_k <= R*``
for every ``k``. Certifying at ``r`` requires ``R_k > r`` for the round it stops at; if ``R* <= r`` this can
only happen inside the union, hence ``P(certified at r | R* <= r) <= alpha`` for any data-dependent stopping
round. Futility and curtailment stops only ever say "not certified", so they cannot add false certificates.
For the same reason the largest ``R_k`` over the rounds run (the ``radius`` reported) is itself a valid
level-``alpha`` certified radius.

Cohen, Rényi and PixelDP are all supported: their radii are monotone in the Clopper–Pearson bounds of the pair
``(p_(1), p_(2))``, which is all the argument uses. Sison–Glaz intervals are not (they are asymptotic).

Cost. With ``first_round = 100`` and ``growth = 2`` the schedule to 100,000 has 11 rounds, so every bound is
computed at ``alpha / 11``: an image whose top class wins all votes is certified at ``r`` once
``(alpha / K)^(1 / n_k) > Phi(r / sigma)`` (for ``sigma = 0.25, r = 0.5, alpha = 0.001``: 800 samples instead
of 100,000), and the largest radius reachable at the cap is ``sigma Phi^-1((alpha / K)^(1 / n_max))`` instead
of ``sigma Phi^-1(alpha^(1 / n_max))`` (0.934 instead of 0.953 for ``sigma = 0.25``, ``alpha = 0.001``): the
price of looking ``K`` times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from ..utils import check_positive_int
from .bounds import cohen_radius, pixeldp_radius, renyi_radius
from .certification import BOUNDS
from .confidence import clopper_pearson_lower, clopper_pearson_upper

__all__ = [
    "DECISIONS",
    "DecisionResult",
    "cohen_cap_radius",
    "decide_sequentially",
    "radius_bounds",
    "radius_threshold",
    "round_levels",
    "round_schedule",
]

#: The three answers of the decision mode, in the order of their codes 1, 0, -1.
DECISIONS = ("certified", "not_certified", "abstain")

#: The argument ``draw(images, counts)`` of :func:`decide_sequentially`: votes ``(len(images), num_classes)``
#: of ``counts[j]`` fresh samples of image ``images[j]``, continuing that image's stream.
DrawVotes = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check_float(
    value: Any, name: str, *, low: float, high: float = np.inf, closed_low: bool = True
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    ok = (v >= low if closed_low else v > low) and v < high and np.isfinite(v)
    if not ok:
        interval = f"{'[' if closed_low else '('}{low:g}, {high:g})"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return v


def round_schedule(n_max: int, *, first_round: int = 100, growth: float = 2.0) -> np.ndarray:
    """Cumulative estimation sample sizes of the decision mode's rounds: ``first_round``, then each
    ``ceil(growth * previous)``, the last one exactly ``n_max`` (a size within 10% of ``n_max`` merges into
    it).

    Paper: Voráček & Hein 2024 (arXiv 2406.17830), Section 3 (sequential decision with confidence sequences),
    in its simplest form: a geometric grid of looks fixed in advance; the decision mode of Cohen et al.'s
    CERTIFY (Cohen et al. 2019, Section 3.2). No equation.

    ``round_schedule(100_000)`` is ``[100, 200, 400, ..., 51_200, 100_000]`` (11 rounds).
    """
    n_max = check_positive_int(n_max, "n_max")
    first = check_positive_int(first_round, "first_round")
    ratio = _check_float(growth, "growth", low=1.0, high=1e6, closed_low=False)
    sizes: list[int] = []
    size = min(first, n_max)
    while size < n_max:
        sizes.append(size)
        size = max(size + 1, int(np.ceil(size * ratio)))
    if sizes and n_max - sizes[-1] < 0.1 * n_max and len(sizes) > 1:
        sizes.pop()
    sizes.append(n_max)
    return np.asarray(sizes, dtype=np.int64)


def round_levels(alpha: float, rounds: int) -> np.ndarray:
    """The per-round levels ``alpha_k = alpha / K`` (``K = rounds``), summing to ``alpha``: the union bound
    that makes the round-wise Clopper–Pearson bounds a confidence sequence over the schedule (module
    docstring).

    Paper: Voráček & Hein 2024 (arXiv 2406.17830), Section 3; Cohen et al. 2019's level ``alpha``, split over
    the looks. No equation.
    """
    alpha = _check_float(alpha, "alpha", low=0.0, high=1.0, closed_low=False)
    rounds = check_positive_int(rounds, "rounds")
    return np.full(rounds, alpha / rounds)


def radius_threshold(radius: float, sigma: float) -> float:
    """``Phi(r / sigma)``: the top-class probability that Cohen et al.'s Theorem 1 needs for radius ``r``.

    Paper: Cohen et al. 2019, Theorem 1 (``R = sigma Phi^-1(p_A)`` solved for ``p_A``)."""
    return float(ndtr(float(radius) / float(sigma)))


def _radius_of(bound: str, p1: np.ndarray, p2: np.ndarray, sigma: float) -> np.ndarray:
    if bound == "cohen":
        with np.errstate(divide="ignore"):
            return np.where(p1 > 0.5, sigma * ndtri(np.clip(p1, 0.5, 1.0)), 0.0)
    if bound == "renyi":
        return np.asarray(renyi_radius(p1, p2, sigma), dtype=np.float64)
    return np.asarray(pixeldp_radius(p1, p2, sigma), dtype=np.float64)


def radius_bounds(
    top: Any, second: Any, n: Any, level: float, *, bound: str, sigma: float, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Certified radius from the lower confidence bounds and the radius from the upper ones, at ``level``.

    Paper: Cohen et al. 2019, Theorem 1 and CERTIFY (one-sided Clopper–Pearson on ``p_A``); Li et al. 2019
    (paper 004), Theorem 2 and Section 4 (Clopper–Pearson with a Bonferroni correction over the ``k`` classes
    for the pair ``(p_(1), p_(2))``), and PixelDP (Lecuyer et al. 2019, Proposition 1) on the same pair.

    Args:
        top: votes of the selected class; ``second``: the largest vote count among the other classes.
        n: number of votes; ``level``: the failure probability of the bounds.
        bound: ``"cohen"``, ``"renyi"`` or ``"pixeldp"``.

    Returns:
        ``(radius_lower, radius_upper, p_lower, p_upper)``: ``radius_lower`` is the certified radius (0 = no
        certificate), valid with probability ``>= 1 - level``; ``radius_upper`` the radius of the opposite
        bounds (an upper confidence bound on the true radius, used only to stop early); ``p_lower``,
        ``p_upper`` the bounds on the top-class probability (at ``level`` for Cohen, ``level / num_classes``
        for Rényi and PixelDP).
    """
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    top_a = np.asarray(top, dtype=np.float64)
    second_a = np.asarray(second, dtype=np.float64)
    n_a = np.asarray(n, dtype=np.float64)
    each = float(level) / (1 if bound == "cohen" else int(num_classes))
    p_lower = np.asarray(clopper_pearson_lower(top_a, n_a, each), dtype=np.float64)
    p_upper = np.asarray(clopper_pearson_upper(top_a, n_a, each), dtype=np.float64)
    if bound == "cohen":
        return (
            _radius_of(bound, p_lower, 1.0 - p_lower, sigma),
            _radius_of(bound, p_upper, 1.0 - p_upper, sigma),
            p_lower,
            p_upper,
        )
    p2_upper = np.minimum(
        np.asarray(clopper_pearson_upper(second_a, n_a, each), dtype=np.float64), 1.0 - p_lower
    )
    p2_lower = np.minimum(
        np.asarray(clopper_pearson_lower(second_a, n_a, each), dtype=np.float64), 1.0 - p_upper
    )
    return (
        _radius_of(bound, p_lower, p2_upper, sigma),
        _radius_of(bound, p_upper, np.maximum(p2_lower, 0.0), sigma),
        p_lower,
        p_upper,
    )


@dataclass(frozen=True)
class DecisionResult:
    """The decision mode's answer for every image (arrays of length ``N``).

    Paper: Voráček & Hein 2024 (arXiv 2406.17830), Section 3 (decide "robust at ``r``" with a confidence
    sequence), on Cohen et al. 2019's CERTIFY; a result container.

    Attributes:
        prediction: the selected class, -1 where the image abstains.
        decision: ``"certified"``, ``"not_certified"`` or ``"abstain"`` (at the tested ``radius``).
        samples: forward passes spent on the image (``n0`` selection samples + estimation samples).
        rounds: rounds run.
        radius: the largest certified radius over the rounds run; a valid level-``alpha`` radius (module
            docstring).
        p_lower, p_upper: bounds on the top-class probability at the stopping round.
        count_top, count_second: votes of the selected class and of the best other class at the stop.
    """

    prediction: np.ndarray
    decision: np.ndarray
    samples: np.ndarray
    rounds: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray
    p_upper: np.ndarray
    count_top: np.ndarray
    count_second: np.ndarray
    tested_radius: float

    @property
    def certified(self) -> np.ndarray:
        """Boolean array: certified at the tested radius."""
        return np.asarray(self.decision == "certified")


def _best_case_cannot_certify(
    top: np.ndarray,
    second: np.ndarray,
    n_now: int,
    future: np.ndarray,
    levels: np.ndarray,
    *,
    radius: float,
    bound: str,
    sigma: float,
    num_classes: int,
) -> np.ndarray:
    """True where no future round can reach a radius ``> radius``, even if every remaining vote goes to the
    top class (its lower bound then only grows and the runner-up's upper bound only shrinks)."""
    blocked = np.ones(top.shape, dtype=bool)
    best_level_so_far = -np.inf
    for j in range(len(future) - 1, -1, -1):
        # a round with fewer samples and a level no larger than a later round's is dominated by that round
        # (the best-case lower bound grows with the number of all-top votes and with the level): skip it
        if levels[j] <= best_level_so_far:
            continue
        best_level_so_far = float(levels[j])
        extra = float(future[j] - n_now)
        lower, _, _, _ = radius_bounds(
            top + extra,
            second,
            float(future[j]),
            float(levels[j]),
            bound=bound,
            sigma=sigma,
            num_classes=num_classes,
        )
        blocked &= lower <= radius
    return blocked


def decide_sequentially(
    draw: DrawVotes,
    num_images: int,
    *,
    radius: float,
    sigma: float,
    alpha: float,
    n_max: int,
    n0: int,
    num_classes: int,
    bound: str = "cohen",
    first_round: int = 100,
    growth: float = 2.0,
    levels: Any = None,
    progress: Callable[[int], object] | None = None,
) -> DecisionResult:
    """Decide for every image whether the smoothed classifier is certified at ``radius`` (the module docstring
    has the procedure and its proof of validity under optional stopping).

    Paper: Voráček & Hein 2024 (arXiv 2406.17830), Section 3 (sequential decision at radius ``r`` with a
    confidence sequence; here the union bound over a fixed geometric schedule of Clopper–Pearson bounds), on
    Cohen et al. 2019's CERTIFY (Theorem 1, Section 3.2) and Li et al. 2019 (paper 004, Theorem 2) for
    ``bound="renyi"``.

    Args:
        draw: ``draw(images, counts)`` returns the votes ``(len(images), num_classes)`` of ``counts[j]`` fresh
            samples of image ``images[j]`` (a network with per-image noise streams, or a simulation).
        num_images: ``N``.
        radius: the radius ``r >= 0`` to decide.
        alpha: probability that a certificate is wrong (over the whole sequence, for each image).
        n_max: the cap on estimation samples per image (undecided images end as not certified).
        n0: selection samples (``>= 1``: the class must be chosen from samples independent of the test).
        bound: ``"cohen"`` (default), ``"renyi"`` or ``"pixeldp"``.
        first_round, growth: the schedule (:func:`round_schedule`).
        levels: per-round levels (default :func:`round_levels`); they must sum to at most ``alpha`` (checked),
            which is what makes the certificates valid at level ``alpha``. (The tests pass ``levels=[a] * K``
            with ``alpha = K a`` to show that looking ``K`` times at level ``a`` each breaks level ``a``.)
        progress: called with the number of images decided after each round.
    """
    num_images = check_positive_int(num_images, "num_images", minimum=0)
    r = _check_float(radius, "radius", low=0.0)
    sigma = _check_float(sigma, "sigma", low=0.0, closed_low=False)
    alpha = _check_float(alpha, "alpha", low=0.0, high=1.0, closed_low=False)
    n0 = check_positive_int(n0, "n0", minimum=1)
    k_classes = check_positive_int(num_classes, "num_classes", minimum=2)
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS} in the decision mode (one bound), got {bound!r}")
    schedule = round_schedule(n_max, first_round=first_round, growth=growth)
    lv = _checked_levels(levels, alpha, schedule)

    state = _Rounds.start(_select_classes(draw, num_images, n0, k_classes), k_classes)
    done_before = previous = 0
    for k, n_k in enumerate(schedule):
        if not len(state.active):
            break
        votes = _draw_votes(draw, state.active, int(n_k) - previous, k_classes)
        previous = int(n_k)
        _run_round(
            state, votes, k, schedule, lv, radius=r, n0=n0, bound=bound, sigma=sigma, num_classes=k_classes
        )
        if progress is not None:
            progress(num_images - len(state.active) - done_before)
            done_before = num_images - len(state.active)
    return state.result(r)


def _checked_levels(levels: Any, alpha: float, schedule: np.ndarray) -> np.ndarray:
    """The per-round levels of :func:`decide_sequentially` (default :func:`round_levels`), checked: one per
    round, in ``(0, 1)``, summing to at most ``alpha``."""
    lv = round_levels(alpha, len(schedule)) if levels is None else np.asarray(levels, dtype=np.float64)
    if lv.shape != schedule.shape or (lv <= 0).any() or (lv >= 1).any():
        raise ValueError(f"levels must hold {len(schedule)} values in (0, 1), one per round, got {levels!r}")
    if lv.sum() > alpha * (1 + 1e-9):
        raise ValueError(
            f"levels must sum to at most alpha={alpha} (the union bound), got sum {lv.sum():.6g}"
        )
    return lv


def _select_classes(draw: DrawVotes, num_images: int, n0: int, num_classes: int) -> np.ndarray:
    """Step 1 of the decision mode: the class of each image, the argmax of its ``n0`` selection votes."""
    all_images = np.arange(num_images)
    selection = np.asarray(draw(all_images, np.full(num_images, n0, dtype=np.int64)), dtype=np.int64)
    if selection.shape != (num_images, num_classes):
        raise ValueError(
            f"draw must return votes of shape ({num_images}, {num_classes}), got {selection.shape}"
        )
    return np.argmax(selection, axis=1) if num_images else np.zeros(0, dtype=np.int64)


def _draw_votes(draw: DrawVotes, active: np.ndarray, step: int, num_classes: int) -> np.ndarray:
    """The votes of ``step`` fresh samples of each image of ``active``, checked."""
    votes = np.asarray(draw(active, np.full(len(active), step, dtype=np.int64)), dtype=np.int64)
    if votes.shape != (len(active), num_classes) or (votes.sum(axis=1) != step).any():
        raise ValueError(
            f"draw must return {step} votes for each of the {len(active)} images, got shape "
            f"{votes.shape} with totals {np.unique(votes.sum(axis=1)).tolist()}"
        )
    return votes


@dataclass
class _Rounds:
    """What :func:`decide_sequentially` knows of every image after the rounds run so far (arrays of length
    ``N``; ``active``: the images still undecided)."""

    top: np.ndarray
    counts: np.ndarray
    decision: np.ndarray
    samples: np.ndarray
    rounds: np.ndarray
    best: np.ndarray
    p_lower: np.ndarray
    p_upper: np.ndarray
    active: np.ndarray

    @classmethod
    def start(cls, top: np.ndarray, num_classes: int) -> _Rounds:
        """Before the first round: the selected classes ``top``, no estimation vote, every image active."""
        num_images = len(top)
        return cls(
            top=top,
            counts=np.zeros((num_images, num_classes), dtype=np.int64),
            decision=np.full(num_images, "", dtype=object),
            samples=np.zeros(num_images, dtype=np.int64),
            rounds=np.zeros(num_images, dtype=np.int64),
            best=np.zeros(num_images, dtype=np.float64),
            p_lower=np.zeros(num_images, dtype=np.float64),
            p_upper=np.ones(num_images, dtype=np.float64),
            active=np.arange(num_images),
        )

    def result(self, radius: float) -> DecisionResult:
        """The answer once every image has stopped: abstain where no round certified a positive radius."""
        num_images = len(self.top)
        decision = np.where((self.decision != "certified") & (self.best <= 0), "abstain", self.decision)
        decision = decision.astype(str)
        rows_all = np.arange(num_images)
        count_top = self.counts[rows_all, self.top] if num_images else np.zeros(0, dtype=np.int64)
        others_all = self.counts.copy()
        if num_images:
            others_all[rows_all, self.top] = -1
        return DecisionResult(
            prediction=np.where(decision == "abstain", -1, self.top).astype(np.int64),
            decision=decision,
            samples=self.samples,
            rounds=self.rounds,
            radius=self.best,
            p_lower=self.p_lower,
            p_upper=self.p_upper,
            count_top=count_top.astype(np.int64),
            count_second=(others_all.max(axis=1) if num_images else np.zeros(0)).astype(np.int64),
            tested_radius=radius,
        )


def _run_round(
    state: _Rounds,
    votes: np.ndarray,
    k: int,
    schedule: np.ndarray,
    levels: np.ndarray,
    *,
    radius: float,
    n0: int,
    bound: str,
    sigma: float,
    num_classes: int,
) -> None:
    """Steps 2 and 3 for round ``k``: add the active images' ``votes``, bound their radius at the round's
    level, and stop those decided (certified, futile, curtailed, or at the cap)."""
    active = state.active
    n_k = int(schedule[k])
    state.counts[active] += votes
    rows = state.counts[active]
    top_count = rows[np.arange(len(active)), state.top[active]]
    others = rows.copy()
    others[np.arange(len(active)), state.top[active]] = -1
    second = others.max(axis=1)
    lower, upper, pl, pu = radius_bounds(
        top_count, second, n_k, float(levels[k]), bound=bound, sigma=sigma, num_classes=num_classes
    )
    state.best[active] = np.maximum(state.best[active], lower)
    state.p_lower[active], state.p_upper[active] = pl, pu
    certified = lower > radius
    stop = certified | (upper <= radius)
    if k == len(schedule) - 1:
        stop[:] = True
    elif (~stop).any():
        live = ~stop
        stop[live] |= _best_case_cannot_certify(
            top_count[live].astype(np.float64),
            second[live].astype(np.float64),
            n_k,
            schedule[k + 1 :],
            levels[k + 1 :],
            radius=radius,
            bound=bound,
            sigma=sigma,
            num_classes=num_classes,
        )
    stopped = active[stop]
    state.decision[stopped] = np.where(certified[stop], "certified", "not_certified")
    state.samples[stopped] = n0 + n_k
    state.rounds[stopped] = k + 1
    state.active = active[~stop]


def cohen_cap_radius(sigma: float, alpha: float, n: int) -> float:
    """The largest Cohen radius ``n`` votes can give at level ``alpha``: ``sigma Phi^-1(alpha^(1/n))`` (all
    votes on the top class). Paper: Cohen et al. 2019, Theorem 1 with the Clopper–Pearson bound of ``n``
    successes."""
    return float(cohen_radius(float(alpha) ** (1.0 / int(n)), sigma))

"""Confidence bounds on class probabilities from the vote counts of a smoothed classifier (scipy only).

- One-sided Clopper–Pearson (exact binomial) bounds, with a Bonferroni correction over the classes: what
  Li et al. (2019) write ("one-sided Clopper-Pearson interval along with Bonferroni correction") and what
  PixelDP's code does.
- Sison–Glaz simultaneous multinomial intervals (Sison & Glaz 1995, JASA 90(429):366-369): what the authors'
  code of Li et al. computes with R's ``MultinomialCI``. Written from the paper's Edgeworth approximation;
  statsmodels is not needed at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ..utils import check_counts
from .choices import INTERVALS

__all__ = [
    "INTERVALS",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "sison_glaz_intervals",
    "top_two_bounds",
]


def _check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be a failure probability in (0, 1), got {alpha!r}")
    return float(alpha)


def _check_counts(k: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    kk, nn = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    if (
        (nn <= 0).any()
        or (kk < 0).any()
        or (kk > nn).any()
        or (np.mod(kk, 1) != 0).any()
        or (np.mod(nn, 1) != 0).any()
    ):
        raise ValueError("counts must be integers with 0 <= k <= n and n >= 1")
    return kk, nn


def clopper_pearson_lower(k: Any, n: Any, alpha: float) -> np.ndarray:
    """One-sided ``1 - alpha`` lower Clopper–Pearson bound: ``Beta^-1(alpha; k, n - k + 1)``, 0 where
    ``k = 0``. (Equal to statsmodels' ``proportion_confint(k, n, alpha=2*alpha, method="beta")[0]``, as
    Cohen et al. use it.)

    Paper: Li et al. 2019 (paper 004), Section 4 ("Confidence Interval and Sample Size": one-sided
    Clopper-Pearson).
    """
    alpha = _check_alpha(alpha)
    kk, nn = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        low = stats.beta.ppf(alpha, np.maximum(kk, 1), nn - kk + 1)
    return np.where(kk == 0, 0.0, low)


def clopper_pearson_upper(k: Any, n: Any, alpha: float) -> np.ndarray:
    """One-sided ``1 - alpha`` upper Clopper–Pearson bound: ``Beta^-1(1 - alpha; k + 1, n - k)``, 1 where
    ``k = n``.

    Paper: Li et al. 2019 (paper 004), Section 4 ("Confidence Interval and Sample Size"), the upper bound on
    ``p_(2)`` of Theorem 2.
    """
    alpha = _check_alpha(alpha)
    kk, nn = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        high = stats.beta.ppf(1.0 - alpha, kk + 1, np.maximum(nn - kk, 1))
    return np.where(kk == nn, 1.0, high)


def _truncated_poisson_moments(lam: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Probability of ``[a, b]`` under Poisson(lam) and mean, variance, third and fourth central moments of
    the Poisson truncated to ``[a, b]``, from its factorial moments ``E[X(X-1)..(X-r+1)] = lam^r P(a-r <= X <=
    b-r) / P``."""

    def mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return stats.poisson.cdf(hi, lam) - stats.poisson.cdf(lo - 1, lam)

    prob = mass(a, b)
    safe = np.where(prob > 0, prob, 1.0)
    f = [lam**r * mass(a - r, b - r) / safe for r in (1, 2, 3, 4)]
    m1 = f[0]
    m2 = f[1] + f[0]
    m3 = f[2] + 3 * f[1] + f[0]
    m4 = f[3] + 6 * f[2] + 7 * f[1] + f[0]
    mu = m1
    var = m2 - mu**2
    mu3 = m3 - 3 * mu * m2 + 2 * mu**3
    mu4 = m4 - 4 * mu * m3 + 6 * mu**2 * m2 - 3 * mu**4
    return prob, mu, var, mu3, mu4


def _sison_glaz_coverage(c: int, counts: np.ndarray) -> float:
    """``nu(c)``: Edgeworth approximation of ``P(n_i - c <= X_i <= n_i + c for all i)`` (boxes clipped to
    ``[0, n]``) for the multinomial with the observed proportions, through independent Poissons conditioned on
    their sum (Sison & Glaz, formula (1))."""
    n = counts.sum()
    lam = counts.astype(np.float64)
    prob, mu, var, mu3, mu4 = _truncated_poisson_moments(
        lam, np.maximum(lam - c, 0.0), np.minimum(lam + c, n)
    )
    total_var = var.sum()
    if (prob <= 0).any() or total_var <= 0:
        return float("nan")
    skew = mu3.sum() / total_var**1.5
    kurt = (mu4 - 3 * var**2).sum() / total_var**2
    z = (n - mu.sum()) / np.sqrt(total_var)
    edgeworth = stats.norm.pdf(z) * (
        1
        + skew / 6 * (z**3 - 3 * z)
        + kurt / 24 * (z**4 - 6 * z**2 + 3)
        + skew**2 / 72 * (z**6 - 15 * z**4 + 45 * z**2 - 15)
    )
    log_inverse_sum_mass = -stats.poisson.logpmf(n, n)  # 1 / P(Poisson(n) = n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(
            np.exp(log_inverse_sum_mass + np.log(prob).sum() + np.log(edgeworth / np.sqrt(total_var)))
        )


def sison_glaz_intervals(counts: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous ``1 - alpha`` confidence intervals for all multinomial proportions (Sison & Glaz 1995).

    Paper: Li et al. 2019 (paper 004), Section 4 (intervals on ``p_(1)``, ``p_(2)``); the
    authors' code uses these intervals instead of the paper's Clopper-Pearson (reference notes, section 004).

    Finds the integer ``c >= 0`` with ``nu(c) <= 1 - alpha < nu(c + 1)`` (with the conventions of R's
    MultinomialCI: ``nu(0) = 0`` and ``nu(c) = 1`` once ``c >= n``), sets ``gamma = (1 - alpha - nu(c)) /
    (nu(c + 1) - nu(c))`` and returns ``[p_i - c/n, p_i + (c + 2 gamma)/n]`` clipped to ``[0, 1]``.

    Args:
        counts: 1-D vote counts (non-negative integers, at least two classes, positive total).
        alpha: the simultaneous failure probability.

    Returns:
        ``(lower, upper)`` arrays, one entry per class.

    Known limitation: the method plugs the observed proportions into an asymptotic (Edgeworth) approximation,
    so for extreme count vectors (nearly all votes in one class) the intervals are far too narrow: all ``n``
    votes in one class give ``c = 0`` and a lower bound of 1 (R's MultinomialCI and statsmodels do the same).
    :func:`top_two_bounds` guards against this; Clopper–Pearson is the default there.
    """
    alpha = _check_alpha(alpha)
    arr = check_counts(counts, "counts")
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"counts must be a 1-D vector of at least two class counts, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or (arr < 0).any() or (np.mod(arr, 1) != 0).any():
        raise ValueError("counts must be non-negative integers")
    arr = arr.astype(np.float64)
    n = arr.sum()
    if n <= 0:
        raise ValueError("counts must have a positive total")

    def nu(c: int) -> float:
        return 1.0 if c >= n else _sison_glaz_coverage(c, arr)

    target = 1.0 - alpha
    c = 0
    nu_c, nu_next = 0.0, nu(1)
    while not (nu_c <= target < nu_next):
        if c > n:  # only reachable when the approximation returns NaN everywhere
            raise ValueError(
                f"Sison-Glaz search found no c for counts {arr.astype(int).tolist()} at alpha={alpha}"
            )
        c += 1
        nu_c, nu_next = nu_next, nu(c + 1)
    gamma = (target - nu_c) / (nu_next - nu_c)
    p = arr / n
    return np.maximum(p - c / n, 0.0), np.minimum(p + (c + 2 * gamma) / n, 1.0)


def top_two_bounds(
    counts: Any,
    alpha: float,
    *,
    top: int | None = None,
    interval: str = "clopper-pearson",
    guard: bool = True,
) -> tuple[float, float]:
    """A lower bound on the probability of class ``top`` and an upper bound on the largest other class
    probability, valid together with probability ``1 - alpha``.

    Paper: Li et al. 2019 (paper 004), Section 4 ("Confidence Interval and Sample Size": one-sided
    Clopper-Pearson with a Bonferroni correction for ``p_(1)``, ``p_(2)`` of Theorem 2).

    Args:
        counts: 1-D vote counts of the ``k`` classes.
        alpha: failure probability of the pair of bounds.
        top: the predicted class; default ``argmax(counts)``. Choose it from independent samples
            (Cohen et al.'s ``n0`` selection draws) for the Clopper–Pearson bounds to be exactly valid: then
            the ``k`` one-sided tests (the lower one for ``top``, an upper one for each of the ``k - 1``
            others) at ``alpha / k`` each make the Bonferroni correction exact. Selecting ``top`` from the
            same counts (the authors' code) is also covered by ``"sison-glaz"``, whose intervals are
            simultaneous.
        interval: ``"clopper-pearson"`` (one-sided, Bonferroni over the ``k`` classes; the paper's wording and
            PixelDP's code) or ``"sison-glaz"`` (simultaneous intervals; the authors' code).
        guard: with ``"sison-glaz"``, never return bounds tighter than the exact one-sided Clopper–Pearson
            bounds at the same ``alpha`` without correction (a simultaneous ``1 - alpha`` bound cannot
            honestly beat the exact marginal one). It only bites at extreme counts, where the asymptotic
            Sison–Glaz intervals collapse (all votes in one class give a lower bound of 1 and an infinite
            radius). ``guard=False`` gives the raw values of the authors' code.

    Returns:
        ``(p1_lower, p2_upper)``.
    """
    alpha = _check_alpha(alpha)
    arr = check_counts(counts, "counts")
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"counts must be a 1-D vector of at least two class counts, got shape {arr.shape}")
    k = arr.size
    top_index = int(np.argmax(arr)) if top is None else int(top)
    if not 0 <= top_index < k:
        raise ValueError(f"top must be a class index in [0, {k - 1}], got {top!r}")
    others = np.delete(arr, top_index)
    n = arr.sum()
    if interval == "clopper-pearson":
        p1 = float(clopper_pearson_lower(arr[top_index], n, alpha / k))
        p2 = float(clopper_pearson_upper(others.max(), n, alpha / k))
    elif interval == "sison-glaz":
        lower, upper = sison_glaz_intervals(arr, alpha)
        p1 = float(lower[top_index])
        p2 = float(np.delete(upper, top_index).max())
        if guard:
            p1 = min(p1, float(clopper_pearson_lower(arr[top_index], n, alpha)))
            p2 = max(p2, float(clopper_pearson_upper(others.max(), n, alpha)))
    else:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    # p1 + p2 <= 1 holds for the true probabilities; enforce it on the bounds (only tightens p2, stays valid)
    return p1, min(p2, 1.0 - p1)

"""Input-specific sample sizes (Chen et al. 2022, "Input-Specific Robustness Certification for Randomized
Smoothing", AAAI, arXiv 2112.12084): spend on each image only the samples its radius needs.

The radius of CERTIFY grows with ``n`` only while the Clopper–Pearson bound is far from ``p_A``. For an image
whose top class wins 70% of the votes, 2,000 samples give nearly the radius of 100,000; an image whose top
class wins every vote keeps gaining from more samples. Chen et al. choose a per-image sample size from the
image's estimated ``p_A`` so that the radius given up relative to the input-agnostic ``N`` stays below a user
bound. This module does the same with exact Clopper–Pearson radii (instead of the paper's normal
approximation) and a pilot interval (instead of a point estimate), see :func:`adaptive_sample_sizes`.

The procedure, per image (``RenyiSmoothingPyTorch.certify(..., samples="adaptive")``):

1. a pilot of ``n0`` samples selects the class ``c_A`` (exactly Cohen et al.'s selection samples) and gives
   its count;
2. :func:`adaptive_sample_sizes` picks ``n_i <= N`` from the pilot alone;
3. ``n_i`` fresh samples certify as CERTIFY does (one-sided Clopper–Pearson at ``alpha``; Rényi/PixelDP from
   the same counts). Samples spent: ``n0 + n_i`` (CERTIFY: ``n0 + N``).

Guarantees. (a) Validity: ``n_i`` is a function of the pilot, which is independent of the ``n_i`` estimation
samples, so conditionally on the pilot the estimation count is ``Binomial(n_i, p_A)`` with ``n_i`` fixed and
the Clopper–Pearson bound has its exact level: every certificate is valid with probability ``>= 1 - alpha``,
as CERTIFY's. (b) Radius given up: with probability ``>= 1 - pilot_alpha`` over the pilot, ``p_A`` lies in the
pilot's two-sided Clopper–Pearson interval; then the *typical* radius (the radius at the expected count
``n p_A``) at ``n_i`` samples is at most ``max_radius_loss`` below the typical radius at ``N`` (checked on 33
evenly spaced points of the interval, so up to the loss's variation between neighbouring points). The realised
loss of one run also carries the sampling noise of both runs (measured in
``docs/sequential_certification.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from scipy.special import ndtri

from ..utils import check_positive_int

__all__ = ["PILOT_ALPHA", "adaptive_sample_sizes", "sample_size_grid", "typical_cohen_radius"]

#: Failure probability of the pilot interval that the radius-loss bound is stated for (not the certificate's
#: alpha).
PILOT_ALPHA = 0.05
#: Points of the grid over the pilot interval on which the loss is maximised.
_P_GRID = 33


def sample_size_grid(n_max: int, *, min_samples: int = 100, steps_per_doubling: int = 4) -> np.ndarray:
    """Candidate sample sizes: ``min_samples * 2^(j / steps_per_doubling)`` (rounded up) below ``n_max``, then
    ``n_max``.

    Paper: Chen et al. 2022 (AAAI, arXiv 2112.12084), Section 4 (the input-specific sample size is searched
    below the input-agnostic ``N`` of Cohen et al.'s CERTIFY)."""
    n_max = check_positive_int(n_max, "n_max")
    low = min(check_positive_int(min_samples, "min_samples"), n_max)
    steps = check_positive_int(steps_per_doubling, "steps_per_doubling")
    count = int(np.floor(np.log2(n_max / low) * steps)) + 1
    sizes = np.unique(np.ceil(low * 2.0 ** (np.arange(count) / steps)).astype(np.int64))
    return np.unique(np.append(sizes[sizes < n_max], n_max))


def typical_cohen_radius(p: Any, n: Any, alpha: float, sigma: float) -> np.ndarray:
    """Cohen et al.'s radius at the expected count: ``sigma Phi^-1(Beta^-1(alpha; n p, n (1 - p) + 1))`` (0
    where the bound is at most 1/2), the Clopper–Pearson lower bound with the count ``n p`` (not rounded).

    Paper: Cohen et al. 2019, Theorem 1 and CERTIFY's Clopper–Pearson bound; Chen et al. 2022, Section 4 (the
    radius as a function of the sample size at a given ``p_A``)."""
    pp, nn = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(n, dtype=np.float64))
    successes = np.maximum(nn * pp, 1e-12)
    with np.errstate(invalid="ignore"):
        lower = stats.beta.ppf(alpha, successes, nn * (1.0 - pp) + 1.0)
    lower = np.nan_to_num(lower, nan=0.0)
    with np.errstate(divide="ignore"):
        return np.where(lower > 0.5, sigma * ndtri(np.clip(lower, 0.5, 1.0)), 0.0)


def adaptive_sample_sizes(
    pilot_top: Any,
    pilot_n: int,
    *,
    n_max: int,
    alpha: float,
    sigma: float,
    max_radius_loss: float = 0.05,
    min_samples: int = 100,
    pilot_alpha: float = PILOT_ALPHA,
) -> np.ndarray:
    """Each image's estimation sample size: the smallest ``n`` of :func:`sample_size_grid` with

    ``max_{p in [p_lo, p_hi]} R(p, n_max) - R(p, n) <= max_radius_loss``,

    where ``R`` is :func:`typical_cohen_radius` and ``[p_lo, p_hi]`` the two-sided ``1 - pilot_alpha``
    Clopper–Pearson interval of the pilot's top-class count ``pilot_top`` out of ``pilot_n`` (maximised over
    33 points of it); ``n_max`` where no smaller size qualifies.

    Paper: Chen et al. 2022 (AAAI, arXiv 2112.12084), Section 4 (input-specific sampling: the sample size that
    keeps the decline of Cohen et al.'s certified radius, Theorem 1, below a bound), with exact
    Clopper–Pearson radii instead of the paper's normal approximation and the pilot's interval instead of its
    point estimate (module docstring: guarantees).
    """
    top = np.atleast_1d(np.asarray(pilot_top, dtype=np.float64))
    pilot_n = check_positive_int(pilot_n, "pilot_n")
    if (top < 0).any() or (top > pilot_n).any() or (np.mod(top, 1) != 0).any():
        raise ValueError(f"pilot_top must hold integer counts in [0, pilot_n={pilot_n}]")
    if isinstance(max_radius_loss, bool) or not np.isfinite(max_radius_loss) or max_radius_loss < 0:
        raise ValueError(f"max_radius_loss must be a finite radius >= 0, got {max_radius_loss!r}")
    if not 0 < float(pilot_alpha) < 1:
        raise ValueError(f"pilot_alpha must be in (0, 1), got {pilot_alpha!r}")
    grid = sample_size_grid(n_max, min_samples=min_samples)
    half = float(pilot_alpha) / 2
    with np.errstate(invalid="ignore"):
        p_lo = np.where(top > 0, stats.beta.ppf(half, np.maximum(top, 1), pilot_n - top + 1), 0.0)
        p_hi = np.where(top < pilot_n, stats.beta.ppf(1 - half, top + 1, np.maximum(pilot_n - top, 1)), 1.0)
    out = np.empty(top.shape, dtype=np.int64)
    fractions = np.linspace(0.0, 1.0, _P_GRID)
    for i in range(len(top)):
        ps = p_lo[i] + (p_hi[i] - p_lo[i]) * fractions  # (P,)
        reference = typical_cohen_radius(ps, float(grid[-1]), alpha, sigma)  # (P,)
        radii = typical_cohen_radius(ps[None, :], grid[:, None].astype(np.float64), alpha, sigma)  # (G, P)
        loss = (reference[None, :] - radii).max(axis=1)
        ok = np.flatnonzero(loss <= max_radius_loss + 1e-12)
        out[i] = int(grid[ok[0]]) if len(ok) else int(grid[-1])
    return out

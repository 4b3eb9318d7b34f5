"""From vote counts to a prediction and certified radii, one function per step of the papers' algorithms.

Cohen et al. (2019), CERTIFY: the class is selected from ``n0`` samples, its probability is lower-bounded by a
one-sided Clopper–Pearson bound on ``n`` fresh samples, abstain if the bound is below 1/2. Li et al. (2019),
Algorithm 1 + "Confidence Interval and Sample Size": lower bound on ``p_(1)``, upper bound on ``p_(2)``
(Clopper–Pearson with Bonferroni, or Sison–Glaz as in the authors' code), radius of Theorem 2. PixelDP
(Lecuyer et al. 2019): the same ``(p_(1), p_(2))`` bounds, best ``(epsilon, delta)`` of the Gaussian
mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..utils import check_counts
from .bounds import cohen_radius, pixeldp_radius, renyi_radius
from .choices import BOUNDS
from .confidence import INTERVALS, clopper_pearson_lower, clopper_pearson_upper, top_two_bounds

__all__ = [
    "BOUNDS",
    "CountCertificate",
    "certify_batch",
    "certify_from_counts",
    "resolve_bounds",
    "select_class",
]


def resolve_bounds(bound: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"all"`` -> every bound; a name or a list of names -> that tuple (validated)."""
    names = BOUNDS if bound == "all" else ((bound,) if isinstance(bound, str) else tuple(bound))
    bad = [b for b in names if b not in BOUNDS]
    if bad or not names:
        raise ValueError(f"bound must be one of {BOUNDS}, 'all' or a list of them, got {bound!r}")
    return names


@dataclass(frozen=True)
class CountCertificate:
    """The certificate of one image: selected class, radius per bound and the probability bounds behind them.

    Paper: Li et al. 2019 (paper 004), Algorithm 1 step 7 and Theorem 2, next to Cohen et al. 2019 (Theorem 1)
    and Lecuyer et al. 2019 (PixelDP); a result container.
    """

    prediction: int
    radius: dict[str, float]
    p1_lower: float
    p2_upper: float
    cohen_p_lower: float


def select_class(selection_counts: np.ndarray, counts: np.ndarray) -> int:
    """Cohen et al.'s selection: argmax of the ``n0`` selection counts; with ``n0 = 0`` (the Li et al. code),
    the argmax of the estimation counts themselves. Ties go to the lowest class index."""
    source = selection_counts if selection_counts.sum() > 0 else counts
    return int(np.argmax(source))


def certify_from_counts(
    selection_counts: Any,
    counts: Any,
    *,
    sigma: float,
    alpha: float,
    bounds: tuple[str, ...] = BOUNDS,
    interval: str = "clopper-pearson",
) -> CountCertificate:
    """Certify one image from its vote counts; every bound uses the same ``counts``.

    Paper: Li et al. 2019 (paper 004), Algorithm 1 steps 5-7 and Theorem 2; Cohen et al. 2019, Theorem 1
    (CERTIFY); Lecuyer et al. 2019 (PixelDP), Proposition 1.

    - Cohen: ``p_A`` = one-sided ``1 - alpha`` Clopper–Pearson lower bound of the selected class, radius
      ``sigma Phi^-1(p_A)``, 0 (abstain) when ``p_A < 1/2``.
    - Rényi and PixelDP: ``(p_(1) lower, p_(2) upper)`` from :func:`~.confidence.top_two_bounds` at ``alpha``
      with ``interval``, then :func:`~.bounds.renyi_radius` / :func:`~.bounds.pixeldp_radius`; 0 when
      ``p_(1) <= p_(2)``.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    sel = check_counts(selection_counts, "selection_counts", ndim=1)
    est = check_counts(counts, "counts", ndim=1)
    if sel.shape != est.shape:
        raise ValueError(
            f"selection_counts and counts must be 1-D of the same length, got {sel.shape} and {est.shape}"
        )
    n = int(est.sum())
    if n <= 0:
        raise ValueError("counts must have a positive total (n >= 1 estimation samples)")
    top = select_class(sel, est)
    radius: dict[str, float] = {}
    p_a = float(clopper_pearson_lower(est[top], n, alpha))
    if "cohen" in bounds:
        radius["cohen"] = float(cohen_radius(p_a, sigma)) if p_a >= 0.5 else 0.0
    p1, p2 = top_two_bounds(est, alpha, top=top, interval=interval)
    if "renyi" in bounds:
        radius["renyi"] = float(renyi_radius(p1, p2, sigma))
    if "pixeldp" in bounds:
        radius["pixeldp"] = float(pixeldp_radius(p1, p2, sigma))
    return CountCertificate(prediction=top, radius=radius, p1_lower=p1, p2_upper=p2, cohen_p_lower=p_a)


def certify_batch(
    selection_counts: Any,
    counts: Any,
    *,
    sigma: float,
    alpha: float,
    bounds: tuple[str, ...] = BOUNDS,
    interval: str = "clopper-pearson",
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """:func:`certify_from_counts` for ``(N, k)`` count arrays at once (vectorised: one call of each bound for
    all images). Returns ``(selected class, {bound: radius}, p1_lower, p2_upper, cohen_p_lower)``, arrays of
    length N.

    Paper: Li et al. 2019 (paper 004), Algorithm 1 steps 5-7 / Theorem 2, Cohen et al. 2019 (Theorem 1,
    CERTIFY) and Lecuyer et al. 2019 (PixelDP, Proposition 1), vectorised.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    sel = check_counts(selection_counts, "selection_counts", ndim=2)
    est = check_counts(counts, "counts", ndim=2)
    if sel.shape != est.shape:
        raise ValueError(
            f"selection_counts and counts must be (N, classes) arrays of the same shape, got {sel.shape} and "
            f"{est.shape}"
        )
    n = est.sum(axis=1)
    if (n <= 0).any():
        raise ValueError("counts must have a positive total (n >= 1 estimation samples) for every image")
    num, k = est.shape
    source = np.where((sel.sum(axis=1) > 0)[:, None], sel, est)
    top = np.argmax(source, axis=1)
    rows = np.arange(num)
    top_count = est[rows, top]
    p_a = np.asarray(clopper_pearson_lower(top_count, n, alpha), dtype=np.float64)
    if interval == "clopper-pearson":
        others = est.copy()
        others[rows, top] = -1
        p1 = np.asarray(clopper_pearson_lower(top_count, n, alpha / k), dtype=np.float64)
        p2 = np.asarray(clopper_pearson_upper(others.max(axis=1), n, alpha / k), dtype=np.float64)
        p2 = np.minimum(p2, 1.0 - p1)
    else:
        pairs = [top_two_bounds(est[i], alpha, top=int(top[i]), interval=interval) for i in range(num)]
        p1 = np.array([a for a, _ in pairs], dtype=np.float64)
        p2 = np.array([b for _, b in pairs], dtype=np.float64)
    radius: dict[str, np.ndarray] = {}
    if "cohen" in bounds:
        radius["cohen"] = np.where(p_a >= 0.5, cohen_radius(np.maximum(p_a, 0.5), sigma), 0.0)
    if "renyi" in bounds:
        radius["renyi"] = renyi_radius(p1, p2, sigma)
    if "pixeldp" in bounds:
        radius["pixeldp"] = pixeldp_radius(p1, p2, sigma)
    return top.astype(np.int64), radius, p1, p2, p_a

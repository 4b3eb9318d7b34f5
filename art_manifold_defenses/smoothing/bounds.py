"""Certified l2 radii of Gaussian smoothing from the top-two class probabilities: Rényi (Li et al. 2019),
Cohen et al. (2019) and PixelDP (Lecuyer et al. 2019). All functions are vectorised over numpy arrays and work
in float64.

| Paper links: https://arxiv.org/abs/1809.03113 (Li et al., "Certified Adversarial Robustness with Additive
| Noise"), https://arxiv.org/abs/1902.02918 (Cohen et al.), https://arxiv.org/abs/1802.03471 (Lecuyer et al.,
| PixelDP).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

__all__ = [
    "PIXELDP_DELTA_GRID",
    "cohen_radius",
    "pixeldp_epsilon",
    "pixeldp_radius",
    "renyi_divergence_threshold",
    "renyi_radius",
    "renyi_sup_threshold",
]

#: The delta grid of the PixelDP code's radius search (``robustness.py``): 0.001, 0.002, ..., 0.299.
PIXELDP_DELTA_GRID: np.ndarray = np.round(np.arange(1, 300) * 1e-3, 6)

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
# log(alpha - 1) range of the coarse bracketing grid; the refinement is a vectorised golden-section search.
_LOG_ALPHA_MINUS_ONE = np.linspace(np.log(1e-7), np.log(1e4), 97)


def _probabilities(p1: Any, p2: Any, sigma: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, s = np.broadcast_arrays(
        np.asarray(p1, dtype=np.float64),
        np.asarray(p2, dtype=np.float64),
        np.asarray(sigma, dtype=np.float64),
    )
    for name, arr in (("p1", a), ("p2", b)):
        if np.isnan(arr).any():
            raise ValueError(f"{name} must hold probabilities in [0, 1], got NaN")
        if (arr < 0).any() or (arr > 1).any():
            raise ValueError(
                f"{name} must hold probabilities in [0, 1], got values in [{arr.min():.4g}, {arr.max():.4g}]"
            )
    if np.isnan(s).any() or (s <= 0).any() or np.isinf(s).any():
        raise ValueError("sigma must be a positive finite noise standard deviation")
    if ((a + b) > 1 + 1e-9).any():
        raise ValueError("p1 + p2 must not exceed 1 (they are the probabilities of two different classes)")
    return a, b, s


def renyi_divergence_threshold(alpha: Any, p1: Any, p2: Any) -> np.ndarray:
    """Lemma 1 of Li et al.: ``-log(1 - p1 - p2 + 2 M_{1-alpha}(p1, p2))`` for ``alpha > 1``, computed in log
    space.

    ``M_r(a, b) = ((a^r + b^r) / 2)^{1/r}`` is the generalised mean; with ``r = 1 - alpha < 0`` it is
    evaluated as ``exp((logaddexp(r log a, r log b) - log 2) / r)``, so ``p2 = 0`` gives ``M = 0`` exactly,
    and the argument of the outer log is written as ``1 - 2 (M_1 - M_r)`` with ``log1p`` so that values near 1
    keep their precision.
    """
    al, a, b = np.broadcast_arrays(
        np.asarray(alpha, dtype=np.float64),
        np.asarray(p1, dtype=np.float64),
        np.asarray(p2, dtype=np.float64),
    )
    r = 1.0 - al
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_mean = (np.logaddexp(r * np.log(a), r * np.log(b)) - np.log(2.0)) / r
        power_mean = np.exp(log_mean)
        power_mean = np.where((a == 0) | (b == 0), 0.0, power_mean)
        gap = (a + b) - 2.0 * power_mean  # = 2 (M_1 - M_{1-alpha}) >= 0
        gap = np.clip(gap, 0.0, 1.0)
        value = -np.log1p(-gap)
    return value


def _objective(log_am1: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    alpha = 1.0 + np.exp(log_am1)
    return renyi_divergence_threshold(alpha, p1, p2) / alpha


def renyi_sup_threshold(p1: Any, p2: Any) -> np.ndarray:
    """``sup_{alpha > 1} -log(1 - p1 - p2 + 2 M_{1-alpha}(p1, p2)) / alpha`` (Theorem 2 of Li et al., divided
    by 2 sigma^2).

    The supremum is found by a coarse bracketing grid over ``log(alpha - 1)`` in ``[log 1e-7, log 1e4]``
    followed by a vectorised golden-section search (48 iterations, bracket shrinks by 0.618^48 ~ 1e-10) around
    the best grid point, and compared with the two limits of the objective: ``alpha -> 1`` gives
    ``-log(1 - (sqrt(p1) - sqrt(p2))^2)`` (which is ``-log(1 - p1)`` when ``p2 = 0``, where the objective
    decreases in alpha) and ``alpha -> inf`` gives 0. Returns 0 where ``p1 <= p2``; ``inf`` where ``p1 = 1``
    and ``p2 = 0``.
    """
    a, b, _ = _probabilities(p1, p2, 1.0)
    shape = a.shape
    a, b = a.ravel(), b.ravel()
    out = np.zeros(a.shape, dtype=np.float64)
    live = a > b
    if live.any():
        pa, pb = a[live], b[live]
        grid = _LOG_ALPHA_MINUS_ONE
        values = _objective(grid[None, :], pa[:, None], pb[:, None])
        best = np.nanargmax(values, axis=1)
        lo = grid[np.clip(best - 1, 0, len(grid) - 1)]
        hi = grid[np.clip(best + 1, 0, len(grid) - 1)]
        # golden-section search for the maximum on [lo, hi]
        c = hi - _GOLDEN * (hi - lo)
        d = lo + _GOLDEN * (hi - lo)
        fc, fd = _objective(c, pa, pb), _objective(d, pa, pb)
        for _ in range(48):
            left = fc > fd  # maximum lies in [lo, d]
            hi = np.where(left, d, hi)
            lo = np.where(left, lo, c)
            new_c = hi - _GOLDEN * (hi - lo)
            new_d = lo + _GOLDEN * (hi - lo)
            c_next = np.where(left, new_c, d)
            d_next = np.where(left, c, new_d)
            fc_next = np.where(left, _objective(new_c, pa, pb), fd)
            fd_next = np.where(left, fc, _objective(new_d, pa, pb))
            c, d, fc, fd = c_next, d_next, fc_next, fd_next
        refined = np.maximum(fc, fd)
        with np.errstate(divide="ignore"):
            limit_one = -np.log1p(-((np.sqrt(pa) - np.sqrt(pb)) ** 2))
        best_value = np.fmax(np.fmax(refined, values.max(axis=1)), limit_one)
        out[live] = np.maximum(best_value, 0.0)
    return out.reshape(shape)


def renyi_radius(p1: Any, p2: Any, sigma: Any) -> np.ndarray:
    """Certified l2 radius of Theorem 2 (Li et al. 2019): ``L = sigma * sqrt(2 sup_{alpha>1} ... / alpha)``.

    Args:
        p1: probability (a lower confidence bound in practice) of the top class.
        p2: probability (an upper confidence bound in practice) of the runner-up class.
        sigma: standard deviation of the Gaussian noise.

    Returns:
        The radius (float64 array broadcast over the inputs); 0 where ``p1 <= p2``.
    """
    a, b, s = _probabilities(p1, p2, sigma)
    return s * np.sqrt(2.0 * renyi_sup_threshold(a, b))


def cohen_radius(p1: Any, sigma: Any, p2: Any = None) -> np.ndarray:
    """Cohen et al. (2019), Theorem 1: ``sigma / 2 (Phi^-1(p1) - Phi^-1(p2))``, with ``p2 = 1 - p1`` by
    default (then ``sigma Phi^-1(p1)``). Returns 0 where ``p1 <= p2`` (Cohen's CERTIFY abstains when
    ``p1 < 1/2``)."""
    a = np.asarray(p1, dtype=np.float64)
    b = 1.0 - a if p2 is None else np.asarray(p2, dtype=np.float64)
    a, b, s = _probabilities(a, np.clip(b, 0.0, 1.0), sigma)
    with np.errstate(invalid="ignore"):
        radius = 0.5 * s * (ndtri(a) - ndtri(b))
    return np.where(a > b, radius, 0.0)


def pixeldp_epsilon(
    p1: Any, p2: Any, delta: Any, *, search: str = "exact", tolerance: float = 1e-3
) -> np.ndarray:
    """The largest ``epsilon <= 1`` with ``p1 >= e^{2 eps} p2 + (1 + e^eps) delta`` (PixelDP's robustness
    condition), or 0 where none is positive.

    Paper: Lecuyer et al. 2019 (PixelDP), Proposition 1 (the robustness condition), as compared in Li et al.
    2019 (paper 004), Appendix A.

    ``search="exact"`` solves the quadratic in ``u = e^eps`` (``p2 u^2 + delta u + delta - p1 = 0``);
    ``search="bisection"`` mimics the PixelDP code, a bisection on ``(0, 1]`` stopped at ``tolerance``,
    returning the last feasible point (a slightly smaller epsilon).
    """
    a, b, d = np.broadcast_arrays(
        np.asarray(p1, dtype=np.float64),
        np.asarray(p2, dtype=np.float64),
        np.asarray(delta, dtype=np.float64),
    )
    if search == "exact":
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = d * d - 4.0 * b * (d - a)
            root = np.where(b > 0, (-d + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * b), (a - d) / d)
            eps = np.log(np.where(root > 0, root, np.nan))
        eps = np.nan_to_num(eps, nan=0.0, neginf=0.0)
        return np.clip(eps, 0.0, 1.0)
    if search == "bisection":

        def feasible(e: np.ndarray) -> np.ndarray:
            return a >= np.exp(2 * e) * b + (1 + np.exp(e)) * d

        lo = np.zeros(a.shape)
        hi = np.ones(a.shape)
        best = np.where(feasible(hi), 1.0, 0.0)
        todo = best < 1.0
        while np.any(todo & (hi - lo > tolerance)):
            mid = (lo + hi) / 2
            ok = feasible(mid)
            best = np.where(todo & ok, mid, best)
            lo = np.where(todo & ok, mid, lo)
            hi = np.where(todo & ~ok, mid, hi)
        return best
    raise ValueError(f"search must be 'exact' or 'bisection', got {search!r}")


def pixeldp_radius(
    p1: Any, p2: Any, sigma: Any, *, delta_grid: Any = None, search: str = "exact"
) -> np.ndarray:
    """PixelDP's certified l2 radius at a fixed noise level: the Gaussian mechanism with l2 sensitivity 1
    gives ``(epsilon, delta)``-DP up to size ``L = sigma epsilon / sqrt(2 log(1.25 / delta))``
    (``epsilon <= 1``), and the prediction is robust when ``p1 >= e^{2 epsilon} p2 + (1 + e^epsilon) delta``.
    The radius is maximised over ``delta`` in ``delta_grid`` (default :data:`PIXELDP_DELTA_GRID`, the PixelDP
    code's grid) and, for each delta, over the feasible epsilon (see :func:`pixeldp_epsilon`), as the appendix
    of Li et al. does.

    Paper: Lecuyer et al. 2019 (PixelDP), Proposition 1 and its Gaussian mechanism; the comparison of Li et
    al. 2019 (paper 004), Appendix A and Fig. 4.
    """
    a, b, s = _probabilities(p1, p2, sigma)
    deltas = PIXELDP_DELTA_GRID if delta_grid is None else np.asarray(delta_grid, dtype=np.float64).ravel()
    if deltas.size == 0 or (deltas <= 0).any() or (deltas >= 1).any():
        raise ValueError("delta_grid must hold values in (0, 1)")
    eps = pixeldp_epsilon(a[..., None], b[..., None], deltas, search=search)
    scale = 1.0 / np.sqrt(2.0 * np.log(1.25 / deltas))
    best = (eps * scale).max(axis=-1)
    return np.where(a > b, s * best, 0.0)

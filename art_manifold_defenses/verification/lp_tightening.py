"""Per-neuron LP bound tightening (MIPVerify's ``tightening_algorithm = lp``, used by Xiao et al. 2019 and
paper 003).

For every ReLU that is still unstable after IBP/CROWN, minimise and maximise its pre-activation over the
triangle relaxation of all earlier ReLUs (their current bounds), with scipy's HiGHS. Layers are tightened in
order, since a layer's LPs use the bounds of the layers before it. Optimal values are loosened by
``tolerance`` (LP feasibility tolerances), and a neuron whose LP fails or runs out of time keeps its previous
bound, so the result stays sound.
"""

from __future__ import annotations

import time

import numpy as np

from .bounds import NetworkBounds, _propagate_monotone, linear_relaxation_bounds
from .encoding import Encoding, encode
from .milp import run_highs
from .network import ReluNetwork

__all__ = ["lp_bounds"]


def _solve_lp(encoding: Encoding, c: np.ndarray, time_limit: float) -> float | None:
    result = run_highs(c, encoding, integer=False, options={"time_limit": max(time_limit, 1e-3)})
    if result.status != 0 or result.fun is None:
        return None
    return float(result.fun)


def lp_bounds(
    network: ReluNetwork,
    input_lower: np.ndarray,
    input_upper: np.ndarray,
    *,
    initial: NetworkBounds | None = None,
    time_limit: float | None = None,
    neuron_time_limit: float = 5.0,
    tolerance: float = 1e-6,
) -> NetworkBounds:
    """LP-tightened bounds (starting from ``initial``, default CROWN). ``time_limit`` caps the whole
    tightening (seconds, ``None`` = no cap); ``neuron_time_limit`` caps each LP (MIPVerify/Xiao: 5 s).

    Paper: Tjeng et al. 2019 (LP tightening of the bounds of its eq. 5 encoding), the setup of Xiao et al.
    2019 adopted by Jin & Rinard 2020 (paper 003), Appendix B.

    The first hidden layer is skipped: interval arithmetic is already exact for an affine map of a box."""
    started = time.perf_counter()
    bounds = (initial or linear_relaxation_bounds(network, input_lower, input_upper)).copy(method="lp")
    solved = skipped = 0
    for k in range(1, network.num_hidden):
        cache: dict[bytes, Encoding] = {}
        weight = network.layers[k].weight
        for neuron in np.flatnonzero(bounds.unstable(k)):
            left = None if time_limit is None else time_limit - (time.perf_counter() - started)
            if left is not None and left <= 0:
                skipped += 1
                continue
            cols = weight[neuron].indices
            cols = np.sort(cols[~bounds.inactive(k - 1)[cols]])
            key = cols.tobytes()
            if key not in cache:
                if len(cache) > 64:
                    cache.clear()
                cache[key] = encode(network, bounds, k, np.array([neuron]), integer=False)
            encoding = cache[key]
            row = np.zeros(weight.shape[0])
            row[neuron] = 1.0
            c, const = encoding.objective(network, k, row)
            limit = neuron_time_limit if left is None else min(neuron_time_limit, left)
            low = _solve_lp(encoding, c, limit)
            if low is not None:
                bounds.lower[k][neuron] = max(
                    bounds.lower[k][neuron], low + const - tolerance * (1 + abs(low + const))
                )
            if bounds.lower[k][neuron] < 0:  # still possibly inactive: tighten the upper side too
                high = _solve_lp(encoding, -c, limit)
                if high is not None:
                    value = -high + const
                    bounds.upper[k][neuron] = min(
                        bounds.upper[k][neuron], value + tolerance * (1 + abs(value))
                    )
            solved += 1
        _propagate_monotone(bounds, k)
    bounds.seconds = time.perf_counter() - started
    bounds.extra = {"lp_neurons": float(solved), "lp_skipped_for_time": float(skipped)}
    return bounds

"""Exact worst-case margins with the big-M MILP and scipy's HiGHS (``scipy.optimize.milp``).

Untargeted robustness of an input with label ``y`` holds iff for every class ``j != y`` the margin
``logit_y(x') - logit_j(x')`` stays positive over the ball. :func:`solve_margin` looks for an ``x'`` with
margin ``<= 0`` (the margin is the objective, the ``<= 0`` a constraint, like MIPVerify's ``BestObjStop``):
infeasible means the class is verified; the first feasible point is a counterexample candidate (HiGHS is told
to stop there). :func:`minimum_margin` solves to optimality instead (used by tests and for reporting the exact
worst-case margin).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import LinearConstraint, milp

from .bounds import NetworkBounds
from .encoding import Encoding, encode
from .network import ReluNetwork

__all__ = ["HIGHS_OPTIONS", "MarginResult", "margin_program", "minimum_margin", "run_highs", "solve_margin"]

#: HiGHS options used by default. Presolve and the RINS/RENS sub-MIP heuristics cost seconds at the root node
#: on these models (dense first-layer rows) and rarely pay off; ``bench/verification.py`` measures the
#: difference. scipy lists only a few options as supported but passes every option on to HiGHS (with an
#: OptimizeWarning, which is silenced here); with a scipy that stopped passing them on, only the speed would
#: change.
HIGHS_OPTIONS: dict[str, Any] = {
    "presolve": False,
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
}

#: HiGHS status codes of ``scipy.optimize.milp``: 0 optimal, 1 time/node limit, 2 infeasible, 3 unbounded, 4
#: other.
_OPTIMAL, _LIMIT, _INFEASIBLE = 0, 1, 2


@dataclass
class MarginResult:
    """Outcome for one (label, target) pair: ``status`` is ``"verified"`` (no point with margin <= 0),
    ``"violated"`` (``point`` has margin ``value`` <= 0 in the MILP) or ``"timeout"``.

    Paper: Tjeng et al. 2019, the MILP of eq. 5 for one target class (verified accuracy of Jin & Rinard 2020,
    paper 003, Table 2); a result container.
    """

    status: str
    target: int
    point: np.ndarray | None
    value: float | None
    seconds: float
    binaries: int


def run_highs(
    c: np.ndarray,
    encoding: Encoding,
    *,
    extra: list[LinearConstraint] | None = None,
    integer: bool = True,
    options: dict[str, Any] | None = None,
) -> Any:
    """``scipy.optimize.milp`` on ``encoding`` (binaries relaxed when ``integer=False``) with ``options`` on
    top of :data:`HIGHS_OPTIONS`."""
    merged = {**HIGHS_OPTIONS, **(options or {})}
    integrality = encoding.integrality if integer else np.zeros(encoding.num_vars)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unrecognized options detected")
        return milp(
            c,
            integrality=integrality,
            bounds=encoding.scipy_bounds(),
            constraints=encoding.constraints(extra),
            options=merged,
        )


def margin_program(
    network: ReluNetwork, bounds: NetworkBounds, label: int, target: int
) -> tuple[Encoding, np.ndarray, float]:
    """The mixed-integer encoding and the objective ``c @ v + const = logit_label - logit_target``."""
    out_layer = network.num_hidden
    encoding = encode(network, bounds, out_layer, np.array([label, target]), integer=True)
    row = np.zeros(network.num_classes)
    row[label], row[target] = 1.0, -1.0
    c, const = encoding.objective(network, out_layer, row)
    return encoding, c, const


def _full_point(
    encoding: Encoding, solution: np.ndarray, reference: np.ndarray, bounds: NetworkBounds
) -> np.ndarray:
    point = np.asarray(reference, dtype=np.float64).reshape(-1).copy()
    point[encoding.input_features] = solution[encoding.input_vars]
    return np.clip(point, bounds.input_lower, bounds.input_upper)


def solve_margin(
    network: ReluNetwork,
    bounds: NetworkBounds,
    label: int,
    target: int,
    reference: np.ndarray,
    *,
    time_limit: float = 120.0,
    threshold: float = 0.0,
    solver_options: dict[str, Any] | None = None,
) -> MarginResult:
    """Search for an input in the box with ``logit_label - logit_target <= threshold``; stop at the first one.

    Paper: Tjeng et al. 2019, eq. 5 (big-M MILP encoding of the ReLUs), as a feasibility search.

    ``reference`` (the clean image) fills the pixels the margin does not depend on. ``time_limit`` covers the
    whole call: building the encoding, then the LP relaxation (infeasible: verified; not solved in the time
    left, or less time left than it took: timeout), then the MILP with what is left; HiGHS overruns a limit
    only by the time between two of its clock checks."""
    started = time.perf_counter()
    encoding, c, const = margin_program(network, bounds, label, target)
    if (
        encoding.num_vars == 0
    ):  # every path to the logits is provably dead: the margin is the constant ``const``
        point = np.clip(np.asarray(reference, np.float64).reshape(-1), bounds.input_lower, bounds.input_upper)
        status = "verified" if const > threshold else "violated"
        return MarginResult(
            status, target, None if status == "verified" else point, const, time.perf_counter() - started, 0
        )
    cut = LinearConstraint(c[None, :], -np.inf, threshold - const)
    # The LP relaxation first, under the time left: HiGHS's MILP solves it again at its root node without
    # looking at its clock, so a MILP started with less time left than this LP took would overrun the limit.
    # Infeasible relaxation: no point of the ball reaches the threshold (the MILP would say so too).
    left = time_limit - (time.perf_counter() - started)
    lp_started = time.perf_counter()
    relaxed = run_highs(c, encoding, extra=[cut], integer=False, options={"time_limit": max(left, 1e-3)})
    lp_seconds = time.perf_counter() - lp_started
    if relaxed.status == _INFEASIBLE:
        return MarginResult("verified", target, None, None, time.perf_counter() - started, encoding.binaries)
    left = time_limit - (time.perf_counter() - started)
    if relaxed.status != _OPTIMAL or left < lp_seconds:
        return MarginResult("timeout", target, None, None, time.perf_counter() - started, encoding.binaries)
    options = {"time_limit": max(left, 1e-3), "mip_rel_gap": 1e300, **(solver_options or {})}
    result = run_highs(c, encoding, extra=[cut], options=options)
    seconds = time.perf_counter() - started
    if result.x is not None and result.status in (_OPTIMAL, _LIMIT):
        point = _full_point(encoding, result.x, reference, bounds)
        return MarginResult("violated", target, point, float(result.fun) + const, seconds, encoding.binaries)
    if result.status == _INFEASIBLE:
        return MarginResult("verified", target, None, None, seconds, encoding.binaries)
    return MarginResult("timeout", target, None, None, seconds, encoding.binaries)


def minimum_margin(
    network: ReluNetwork,
    bounds: NetworkBounds,
    label: int,
    target: int,
    reference: np.ndarray,
    *,
    time_limit: float = 120.0,
    solver_options: dict[str, Any] | None = None,
) -> MarginResult:
    """The exact minimum of ``logit_label - logit_target`` over the box (status ``"optimal"``) and its
    minimiser.

    Paper: Tjeng et al. 2019, eq. 5 (MILP encoding of the ReLUs), minimising the margin exactly.
    """
    started = time.perf_counter()
    encoding, c, const = margin_program(network, bounds, label, target)
    if encoding.num_vars == 0:
        point = np.clip(np.asarray(reference, np.float64).reshape(-1), bounds.input_lower, bounds.input_upper)
        return MarginResult("optimal", target, point, const, time.perf_counter() - started, 0)
    options = {"time_limit": max(time_limit, 1e-3), "mip_rel_gap": 1e-9, **(solver_options or {})}
    result = run_highs(c, encoding, options=options)
    seconds = time.perf_counter() - started
    if result.status == _OPTIMAL and result.x is not None:
        point = _full_point(encoding, result.x, reference, bounds)
        return MarginResult("optimal", target, point, float(result.fun) + const, seconds, encoding.binaries)
    return MarginResult("timeout", target, None, None, seconds, encoding.binaries)

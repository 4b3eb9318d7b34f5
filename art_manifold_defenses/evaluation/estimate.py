"""The cost estimate that :func:`~.runner.evaluate` prints before its first attack.

A probe times one forward pass and one forward + backward pass of the model on one batch of the points to
attack (after an untimed warm-up pass); each attack's planned passes per point come from its parameters (steps
x restarts x binary-search steps x gradients or queries per step, HopSkipJump's query count growing with the
iteration, C&W's line searches, times the EoT samples for a stochastic model, plus the scoring votes, times
the repeats). A rough figure: attacks that stop early (C&W's abort, AutoAttack's already broken points,
decision-based attacks that converge) take less, attacks that loop over points or search internally may take
more (``docs/costs.md`` compares estimates with measured runs). No equation: a budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import costs
from .attacks import AttackSpec

__all__ = ["estimate_seconds", "planned_passes", "probe_pass_seconds", "report_evaluation_estimate"]

_ITERATIONS = ("max_iter", "steps", "nb_iter", "max_iterations", "num_iterations", "repeats")
_RESTARTS = ("num_random_init", "nb_random_init", "restarts", "nb_restarts")
_INITIAL_EVALS = ("init_eval", "initial_num_evals", "initial_gradient_eval_steps")
_PER_ITERATION = (
    "nb_grads",
    "spsa_samples",
    "max_eval",
    "max_num_evals",
    "max_gradient_eval_steps",
    "num_trial",
)


def _first_int(params: Mapping[str, Any], keys: Sequence[str], default: int) -> int:
    for key in keys:
        value = params.get(key)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return default


def planned_passes(spec: AttackSpec) -> tuple[int, int]:
    """``(gradient passes, forward-only passes)`` per attacked point for one run of ``spec`` (its planned
    budget; a transfer attack counts its base attack's gradients, on the surrogate, as if they cost the
    model's)."""
    base = spec.base_spec() if spec.library == "transfer" else spec
    info = base.info
    params = info.resolve_params(base.norm, base.params)
    if base.library == "autoattack":
        steps = _first_int(params, ("steps",), 100)
        if base.attack == "rand":  # APGD-CE and APGD-DLR, each with eot_iter gradients per step
            return 2 * steps * _first_int(params, ("eot_iter",), 20), 0
        # APGD-CE, APGD-T and FAB-T over 9 target classes, then Square's queries ("plus": more restarts and
        # targets)
        rounds = 1 + 9 + 9 if base.attack == "standard" else 5 + 5 + 9 + 9 + 9
        return steps * rounds, _first_int(params, ("n_queries",), 5000)
    initial = _first_int(params, _INITIAL_EVALS, 0)
    if initial:  # HopSkipJump: iteration i estimates the gradient with min(initial * sqrt(i), max) queries
        cap = _first_int(params, _PER_ITERATION, initial)
        iterations = _first_int(params, _ITERATIONS, 1)
        return 0, int(sum(min(initial * math.sqrt(i), cap) for i in range(1, iterations + 1)))
    passes = (
        _first_int(params, _ITERATIONS, 1)
        * _first_int(params, _RESTARTS, 1)
        * _first_int(params, ("binary_search_steps",), 1)
        * _first_int(params, _PER_ITERATION, 1)
        * _first_int(params, ("spsa_iters",), 1)
    )
    constants = [params.get(k) for k in ("const_factor", "initial_const", "largest_const")]
    numbers = [float(v) for v in constants if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == 3:
        factor, initial_const, largest = numbers
        if factor > 1 and 0 < initial_const < largest:
            # ART's C&W l-inf: the iterations run again for every constant initial_const * factor^k below
            # largest_const
            passes *= math.ceil(math.log(largest / initial_const) / math.log(factor))
    if info.kind != "gradient":
        return 0, passes
    # ART's C&W l-inf: a line search of up to max_halving + max_doubling forward passes after every gradient
    # step
    searches = _first_int(params, ("max_halving",), 0) + _first_int(params, ("max_doubling",), 0)
    return passes, passes * searches


def probe_pass_seconds(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, device: torch.device
) -> tuple[float, float]:
    """Seconds of one forward + backward pass and of one forward pass of ``model`` on the batch ``(x, y)``,
    timed with :func:`art_manifold_defenses.costs.clock` after an untimed warm-up pass (a model without a
    gradient: three forward passes for the first)."""
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.int64, device=device)

    def gradient() -> bool:
        xg = xt.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xg), yt)
        if (
            not loss.requires_grad
        ):  # no gradient through the model (a BPDA case): its attacks go through a surrogate
            return False
        torch.autograd.grad(loss, xg)
        return True

    differentiable = gradient()  # warm-up: allocations, lazy initialisation
    started = costs.clock()
    with torch.no_grad():
        model(xt)
    forward_done = costs.clock()
    if differentiable:
        gradient()
    finished = costs.clock()
    forward = forward_done - started
    # without a gradient, a backward pass is counted as two forward passes (the usual ratio)
    return (finished - forward_done) if differentiable else 3 * forward, forward


def estimate_seconds(
    specs: Sequence[AttackSpec],
    *,
    eot: Sequence[int | None],
    points: int,
    batch_size: int,
    gradient_seconds: float,
    forward_seconds: float,
    repeats: int,
    votes: int,
) -> float:
    """Seconds for ``points`` attacked points (in batches of ``batch_size``, each probed batch pass costing
    ``gradient_seconds`` / ``forward_seconds``): per attack, ``repeats`` x batches x (gradient passes x its
    EoT samples x ``gradient_seconds`` + (forward passes + ``votes``) x ``forward_seconds``)."""
    batches = math.ceil(points / batch_size) if points else 0
    total = 0.0
    for spec, samples in zip(specs, eot, strict=True):
        grads, forwards = planned_passes(spec)
        total += (
            repeats
            * batches
            * (grads * (samples or 1) * gradient_seconds + (forwards + votes) * forward_seconds)
        )
    return total


def report_evaluation_estimate(
    specs: Sequence[AttackSpec],
    eot: Sequence[int | None],
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    repeats: int,
    votes: int,
    device: torch.device,
    processes: int = 1,
) -> str:
    """Probe ``model`` on the first batch of ``(x, y)`` (the points to attack), print the estimate line for
    attacking them with ``specs`` (:func:`art_manifold_defenses.costs.report_estimate`) and return it."""
    points = len(x)
    what = f"{len(specs)} attacks on {points} points"
    if not specs or not points:
        return costs.report_estimate(what, 0.0, "nothing left to attack")
    size = min(batch_size, points)
    gradient_seconds, forward_seconds = probe_pass_seconds(model, x[:size], y[:size], device=device)
    seconds = estimate_seconds(
        specs,
        eot=eot,
        points=math.ceil(points / processes),
        batch_size=batch_size,
        gradient_seconds=gradient_seconds,
        forward_seconds=forward_seconds,
        repeats=repeats,
        votes=votes,
    )
    basis = (
        f"a probe: {gradient_seconds:.3g} s per forward+backward and {forward_seconds:.3g} s per forward "
        "pass "
        f"on {size} points, times each attack's planned passes; rough: attacks that stop early take less, "
        "per-point loops and searches more"
    )
    return costs.report_estimate(what, seconds, basis)

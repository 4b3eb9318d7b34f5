"""Gradient-masking audit: the sanity checks of Athalye et al. (2018) and Carlini et al. (2019) run on a
finished evaluation.

References:
    A. Athalye, N. Carlini, D. Wagner, "Obfuscated Gradients Give a False Sense of Security: Circumventing
    Defenses to Adversarial Examples", ICML 2018, Section 3.1 ("Identifying obfuscated & masked gradients"),
    https://arxiv.org/abs/1802.00420. N. Carlini et al., "On Evaluating Adversarial Robustness",
    arXiv:1902.06705 (2019), Section 5 and the checklist of Appendix A, https://arxiv.org/abs/1902.06705.

Each check turns evidence into an :class:`AuditFlag` (``code``, ``message``, ``evidence`` numbers). The
checks:

- ``one_step_beats_iterative``: a one-step attack has lower accuracy than an iterative white-box attack of the
  same norm at an equal or larger epsilon;
- ``black_box_beats_white_box``: a transfer attack (adversarials crafted on another model) beats every
  white-box attack of its norm at an equal or larger epsilon;
- ``gradient_free_beats_gradient_based``: a gradient-free attack (score- or decision-based, noise) beats every
  gradient-based attack likewise;
- ``accuracy_not_monotone_in_eps``: the same attack (same library and parameters) has higher accuracy at a
  larger epsilon;
- ``unbounded_attack_not_zero``: an unbounded (``eps=None``) or large-epsilon attack (not a one-step one)
  leaves accuracy above ``unbounded_accuracy``;
- ``cross_entropy_only_at_eps``: at a reported epsilon of a norm (:func:`reported_budgets`) no white-box
  attack with a margin or DLR loss ran (no APGD-DLR, C&W, EAD or AutoAttack at that budget, and no
  minimisation margin attack whose budget reaches it), so the per-point worst case there comes only from
  cross-entropy, gradient-free or transfer attacks and is an upper bound that a margin loss can lower
  (:func:`check_margin_coverage`; Carlini et al. 2019, App. A; Croce & Hein 2020);
- ``zero_gradients``: the input gradient of a margin loss is exactly zero on a fraction
  ``>= zero_gradient_fraction`` of the clean points;
- ``nonfinite_gradients``: an input gradient contains NaN or Inf;
- ``nondeterministic_predictions``: two identical calls give different outputs and the model was attacked
  without EoT;
- ``threat_model_violation``: an attack returned points outside its threat model (they were discarded);
- ``attack_error``: an attack raised an exception (it is missing from the worst case).

Known limitations: the comparisons are on accuracies of the evaluated points, so with few points a difference
of one or two points is noise; ``tolerance`` (default one percentage point) sets how much a weaker attack must
win by to be flagged. The checks can reveal masking but never prove its absence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..utils import json_safe

# This module holds the checks that compare attack results and `audit`; the checks on the model (gradients,
# determinism) live in `_audit_model` and `AuditFlag` in `_audit_flag`, both re-exported here.
from ._audit_flag import ATHALYE_2018, CARLINI_2019, MARGIN_LOSS_REFERENCE, AuditFlag, _check_tolerance
from ._audit_model import _margin_loss as _margin_loss

# the API page lists these in this (source) order: the measurements, then their checks
# isort: off
from ._audit_model import measure_gradients
from ._audit_model import measure_determinism
from ._audit_model import check_gradients
from ._audit_model import check_determinism

# isort: on

__all__ = [
    "AuditFlag",
    "DEFAULT_LARGE_EPS",
    "audit",
    "check_attack_comparisons",
    "check_margin_coverage",
    "check_gradients",
    "check_determinism",
    "large_eps_threshold",
    "measure_determinism",
    "measure_gradients",
    "reported_budgets",
]

#: An epsilon at or above which an attack counts as unbounded, per norm, as a fraction of what reaches any
#: image: ``linf`` 0.5 (every pixel may move half the range), ``l2`` ``0.5 * sqrt(d)``, ``l1`` ``0.5 * d``
#: (``d`` = input size).
DEFAULT_LARGE_EPS: dict[str, float] = {"linf": 0.5, "l2": 0.5, "l1": 0.5}


class _View:
    """What the comparisons need from one attack result (works for runner results and for loaded JSON)."""

    def __init__(self, result: Any) -> None:
        spec = result.spec
        self.label: str = result.label
        self.library: str = spec.library
        self.attack: str = spec.attack
        self.norm: str = spec.norm
        self.eps: float | None = None if spec.eps is None else float(spec.eps)
        self.params_key = json.dumps(json_safe(dict(spec.params)), sort_keys=True, default=str)
        self.one_step = bool(spec.one_step)
        self.minimisation = bool(spec.minimisation)
        self.margin_loss = bool(getattr(spec, "margin_loss", False))
        self.gradient_free = bool(spec.gradient_free)
        self.black_box = bool(spec.black_box)
        self.transfer = spec.library == "transfer"
        self.accuracy: float = float(result.accuracy)
        correct = getattr(result, "correct", None)
        self.correct = None if correct is None else np.asarray(correct, dtype=bool)

    @property
    def white_box(self) -> bool:
        return not (self.black_box or self.gradient_free)

    def only_this_breaks(self, other: _View) -> int | None:
        """Points this attack breaks that ``other`` does not (None without per-point data)."""
        if self.correct is None or other.correct is None or len(self.correct) != len(other.correct):
            return None
        return int((~self.correct & other.correct).sum())


def _beats(a: _View, b: _View, tolerance: float) -> bool:
    return a.accuracy + tolerance < b.accuracy


def _covered(a: _View, b: _View) -> bool:
    """``b`` was allowed at least the budget of ``a`` (same norm, eps_a <= eps_b, both bounded)."""
    return a.norm == b.norm and a.eps is not None and b.eps is not None and a.eps <= b.eps + 1e-12


def check_attack_comparisons(
    results: Sequence[Any],
    *,
    input_dim: int | None = None,
    tolerance: float = 0.01,
    unbounded_accuracy: float = 0.05,
    large_eps: Mapping[str, float] | None = None,
) -> list[AuditFlag]:
    """The checks that compare attack results (see the module table). ``results`` are runner ``AttackResult``
    s (anything with ``spec``, ``label``, ``accuracy`` and optionally per-point ``correct``); failed attacks
    are skipped.
    """
    tolerance = _check_tolerance("tolerance", tolerance)
    unbounded_accuracy = _check_tolerance("unbounded_accuracy", unbounded_accuracy)
    views = [_View(r) for r in results if getattr(r, "error", None) is None]
    flags: list[AuditFlag] = []
    flags += _one_step_vs_iterative(views, tolerance)
    flags += _weaker_class_beats_white_box(views, tolerance)
    flags += _monotonicity(views, tolerance)
    flags += _unbounded(views, unbounded_accuracy, input_dim, {**DEFAULT_LARGE_EPS, **dict(large_eps or {})})
    return flags


def _one_step_vs_iterative(views: list[_View], tolerance: float) -> list[AuditFlag]:
    flags = []
    for one in (v for v in views if v.one_step and v.white_box):
        for it in (v for v in views if not v.one_step and v.white_box and _covered(one, v)):
            if _beats(one, it, tolerance):
                flags.append(
                    AuditFlag(
                        "one_step_beats_iterative",
                        f"one-step {one.label} (accuracy {one.accuracy:.2%}) beats iterative {it.label} "
                        f"({it.accuracy:.2%}) "
                        f"at {one.norm} eps {one.eps:g} <= {it.eps:g}: the iterative attack is stuck (masked "
                        "or too weak).",
                        {
                            "one_step": one.label,
                            "one_step_accuracy": one.accuracy,
                            "iterative": it.label,
                            "iterative_accuracy": it.accuracy,
                            "norm": one.norm,
                            "one_step_eps": one.eps,
                            "iterative_eps": it.eps,
                            "points_only_one_step_breaks": one.only_this_breaks(it),
                            "tolerance": tolerance,
                        },
                        ATHALYE_2018,
                    )
                )
    return flags


def _weaker_class_beats_white_box(views: list[_View], tolerance: float) -> list[AuditFlag]:
    flags = []
    for weak in (v for v in views if not v.white_box):
        rivals = [v for v in views if v.white_box and _covered(weak, v)]
        if not rivals:
            continue
        best = min(rivals, key=lambda v: v.accuracy)
        if not _beats(weak, best, tolerance):
            continue
        if weak.transfer or not weak.gradient_free:
            code, kind, other = "black_box_beats_white_box", "black-box/transfer", "white-box"
        else:
            code, kind, other = "gradient_free_beats_gradient_based", "gradient-free", "gradient-based"
        flags.append(
            AuditFlag(
                code,
                f"{kind} {weak.label} (accuracy {weak.accuracy:.2%}) beats every {other} attack of "
                f"{weak.norm} eps >= "
                f"{weak.eps:g}; the best of them, {best.label}, reaches only {best.accuracy:.2%}: the "
                "gradients mislead.",
                {
                    "attack": weak.label,
                    "accuracy": weak.accuracy,
                    "best_white_box": best.label,
                    "best_white_box_accuracy": best.accuracy,
                    "norm": weak.norm,
                    "eps": weak.eps,
                    "white_box_eps": best.eps,
                    "points_only_this_breaks": weak.only_this_breaks(best),
                    "tolerance": tolerance,
                },
                ATHALYE_2018,
            )
        )
    return flags


def _monotonicity(views: list[_View], tolerance: float) -> list[AuditFlag]:
    groups: dict[tuple[str, str, str, str], list[_View]] = {}
    for v in views:
        if v.eps is not None:
            groups.setdefault((v.library, v.attack, v.norm, v.params_key), []).append(v)
    flags = []
    for members in groups.values():
        members.sort(key=lambda v: v.eps if v.eps is not None else math.inf)
        for small, large in zip(members, members[1:], strict=False):
            if (
                large.eps is not None
                and small.eps is not None
                and large.eps > small.eps
                and _beats(small, large, tolerance)
            ):
                flags.append(
                    AuditFlag(
                        "accuracy_not_monotone_in_eps",
                        f"{large.label} has accuracy {large.accuracy:.2%} at eps {large.eps:g} but "
                        f"{small.accuracy:.2%} at the "
                        f"smaller eps {small.eps:g}: a larger budget can only help a working attack.",
                        {
                            "attack": f"{large.library}/{large.attack}",
                            "norm": large.norm,
                            "eps": [small.eps, large.eps],
                            "accuracy": [small.accuracy, large.accuracy],
                            "tolerance": tolerance,
                        },
                        CARLINI_2019,
                    )
                )
    return flags


def large_eps_threshold(
    norm: str, input_dim: int | None = None, large_eps: Mapping[str, float] | None = None
) -> float | None:
    """The epsilon at or above which a ``norm`` attack counts as unbounded (a sanity check, not a reported
    budget).

    The "unbounded attacks reach 0%" check of Athalye et al. 2018, Sec. 3.1. ``large_eps`` overrides
    :data:`DEFAULT_LARGE_EPS` per norm: l-inf ``large_eps["linf"]``, l2 ``large_eps["l2"] * sqrt(input_dim)``,
    l1 ``large_eps["l1"] * input_dim``; ``None`` when it cannot be computed (l2/l1 without ``input_dim``).
    """
    return _large_threshold(norm, input_dim, {**DEFAULT_LARGE_EPS, **dict(large_eps or {})})


def reported_budgets(
    attacks: Iterable[Any], *, input_dim: int | None = None, large_eps: Mapping[str, float] | None = None
) -> dict[str, list[float]]:
    """Per norm, the sorted epsilons the attacks report robustness at: every finite ``eps`` below
    :func:`large_eps_threshold`. Unbounded attacks (``eps=None``) and large-epsilon checks are sanity checks
    of the audit, not budgets of the robustness curve, and are left out.
    """
    out: dict[str, list[float]] = {}
    for item in attacks:
        spec = getattr(item, "spec", item)
        if spec.eps is None:
            continue
        eps = float(spec.eps)
        limit = large_eps_threshold(spec.norm, input_dim, large_eps)
        if limit is not None and eps >= limit:
            continue
        budgets = out.setdefault(spec.norm, [])
        if not any(_same_eps(eps, b) for b in budgets):
            budgets.append(eps)
    return {norm: sorted(values) for norm, values in sorted(out.items())}


def _same_eps(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _large_threshold(norm: str, input_dim: int | None, large_eps: Mapping[str, float]) -> float | None:
    fraction = large_eps.get(norm)
    if fraction is None:
        return None
    if norm == "linf":
        return fraction
    if input_dim is None:
        return None
    return fraction * (math.sqrt(input_dim) if norm == "l2" else float(input_dim))


def _unbounded(
    views: list[_View], threshold: float, input_dim: int | None, large_eps: Mapping[str, float]
) -> list[AuditFlag]:
    flags = []
    for v in views:
        limit = _large_threshold(v.norm, input_dim, large_eps)
        unbounded = v.eps is None or (limit is not None and v.eps >= limit)
        if unbounded and not v.one_step and v.accuracy > threshold:  # one step is not expected to reach 0%
            budget = "unbounded" if v.eps is None else f"eps {v.eps:g} (>= {limit:g}, effectively unbounded)"
            flags.append(
                AuditFlag(
                    "unbounded_attack_not_zero",
                    f"{v.label} is {budget} yet leaves accuracy {v.accuracy:.2%} > {threshold:.0%}: an "
                    "attack that may change "
                    "the image arbitrarily must succeed; the attack is broken or the gradients are masked.",
                    {
                        "attack": v.label,
                        "accuracy": v.accuracy,
                        "norm": v.norm,
                        "eps": v.eps,
                        "large_eps": limit,
                        "threshold": threshold,
                    },
                    ATHALYE_2018,
                )
            )
    return flags


def _margin_covers(view: _View, eps: float) -> bool:
    """A margin-loss attack ran at ``eps``: a fixed-budget one at that budget, or a minimisation one whose
    budget reaches it (its per-point norms give the worst case at every smaller epsilon)."""
    if not view.margin_loss:
        return False
    if view.eps is None:
        return view.minimisation
    return _same_eps(view.eps, eps) or (view.minimisation and view.eps > eps)


def check_margin_coverage(
    results: Sequence[Any], *, input_dim: int | None = None, large_eps: Mapping[str, float] | None = None
) -> list[AuditFlag]:
    """Flag ``cross_entropy_only_at_eps``, one flag per norm, listing the reported epsilons
    (:func:`reported_budgets`) at which no margin- or DLR-loss attack ran (see the module table).

    Carlini et al. 2019, App. A (an attack with a cross-entropy loss alone can fail where the softmax
    saturates or the logits are rescaled: try a margin loss), Croce & Hein 2020 (APGD-DLR, AutoAttack). Which
    attacks count is :attr:`~.attacks.AttackSpec.margin_loss`; failed attacks count as not run.
    """
    views = [_View(r) for r in results if getattr(r, "error", None) is None]
    flags: list[AuditFlag] = []
    for norm, budgets in reported_budgets(views, input_dim=input_dim, large_eps=large_eps).items():
        members = [v for v in views if v.norm == norm]
        missing = [e for e in budgets if not any(_margin_covers(v, e) for v in members)]
        if not missing:
            continue
        ran = {
            f"{e:g}": [v.label for v in members if v.eps is not None and _same_eps(v.eps, e)] for e in missing
        }
        flags.append(
            AuditFlag(
                "cross_entropy_only_at_eps",
                f"at {norm} eps {', '.join(f'{e:g}' for e in missing)} no margin-loss attack ran (no "
                "APGD-DLR, C&W, EAD or "
                "AutoAttack at that budget): the per-point worst case there comes only from cross-entropy, "
                "gradient-free "
                "or transfer attacks and is an upper bound that a margin/DLR loss can lower. Add APGD-DLR at "
                "each budget.",
                {"norm": norm, "eps": missing, "budgets": budgets, "attacks_at_eps": ran},
                MARGIN_LOSS_REFERENCE,
            )
        )
    return flags


def _operational_flags(results: Iterable[Any]) -> list[AuditFlag]:
    flags = []
    for r in results:
        if getattr(r, "error", None) is not None:
            flags.append(
                AuditFlag(
                    "attack_error",
                    f"{r.label} failed ({r.error}); it is missing from the per-point worst case.",
                    {"attack": r.label, "error": r.error},
                    CARLINI_2019,
                )
            )
        elif getattr(r, "violations", 0):
            flags.append(
                AuditFlag(
                    "threat_model_violation",
                    f"{r.label} returned {r.violations} adversarial example(s) outside its threat model "
                    "(norm > eps + 1e-5 or "
                    "outside [0, 1]); they were discarded and those points scored on the clean input.",
                    {
                        "attack": r.label,
                        "violations": r.violations,
                        "indices": list(getattr(r, "violation_indices", []))[:50],
                    },
                    CARLINI_2019,
                )
            )
    return flags


def audit(
    results: Sequence[Any],
    *,
    gradient_stats: Mapping[str, Any] | None = None,
    determinism: Mapping[str, Any] | None = None,
    eot: bool = False,
    declared_stochastic: bool = False,
    bpda: bool = False,
    input_dim: int | None = None,
    tolerance: float = 0.01,
    unbounded_accuracy: float = 0.05,
    zero_gradient_fraction: float = 0.2,
    large_eps: Mapping[str, float] | None = None,
) -> list[AuditFlag]:
    """Run every check and return the flags (empty list = nothing suspicious found).

    Follows Athalye et al. 2018, Section 3.1, and Carlini et al. 2019 ("On Evaluating Adversarial
    Robustness"), Section 5 and Appendix A.

    Args:
        results: the attack results of one evaluation.
        gradient_stats: output of :func:`measure_gradients` on the clean batch (``None`` skips the gradient
            checks).
        determinism: output of :func:`measure_determinism` (``None`` skips the determinism check).
        eot: whether gradient-based attacks were run through EoT.
        declared_stochastic: the model's ``stochastic`` attribute.
        bpda: whether a BPDA surrogate was wired in (changes the advice of the gradient flags only).
        input_dim: number of input features (needed to call an l1/l2 epsilon "large").
        tolerance: accuracy margin (absolute, in [0, 1]) by which a weaker attack must win to be flagged.
        unbounded_accuracy: accuracy an unbounded attack may leave before it is flagged.
        zero_gradient_fraction: fraction of clean points with an exactly-zero gradient that raises
            ``zero_gradients``.
        large_eps: per-norm overrides of :data:`DEFAULT_LARGE_EPS`.
    """
    zero_gradient_fraction = _check_tolerance("zero_gradient_fraction", zero_gradient_fraction)
    flags = _operational_flags(results)
    flags += check_attack_comparisons(
        results,
        input_dim=input_dim,
        tolerance=tolerance,
        unbounded_accuracy=unbounded_accuracy,
        large_eps=large_eps,
    )
    flags += check_margin_coverage(results, input_dim=input_dim, large_eps=large_eps)
    flags += check_gradients(gradient_stats, zero_gradient_fraction=zero_gradient_fraction, bpda=bpda)
    flags += check_determinism(determinism, eot=eot, declared_stochastic=declared_stochastic)
    return flags

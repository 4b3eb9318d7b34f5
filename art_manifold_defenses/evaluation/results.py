"""What an evaluation measured: :class:`AttackResult`, :class:`EvaluationResult` and their ``results.json``
record.

The data that :func:`~.runner.evaluate` returns and :mod:`.report` renders, in a module of its own so that the
report reads results without importing the runner (which writes the report at the end of an evaluation). The
record's fields are described in :mod:`.report`. :mod:`.runner` and :mod:`.report` re-export these names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..utils import json_safe
from .attacks import AttackSpec
from .audit import AuditFlag

__all__ = ["RESULTS_FORMAT", "AttackResult", "EvaluationResult", "json_clean", "result_to_dict", "worst_case"]


# ------------------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------------------
@dataclass
class AttackResult:
    """The outcome of one attack of the suite on the evaluated points.

    Per-attack results that feed the per-point worst case (Carlini et al. 2019; Croce & Hein 2020); no
    equation.

    ``correct[i]`` is True when point ``i`` is classified correctly clean *and* under this attack (in every
    repeat); ``accuracy`` is its mean (robust accuracy under this attack alone). ``norms[i]`` is the
    perturbation norm (in the attack's norm) of the weakest successful adversarial of point ``i``, ``nan``
    where the attack did not succeed.
    """

    spec: Any
    correct: np.ndarray
    seconds: float
    norms: np.ndarray
    violations: int = 0
    violation_indices: list[int] = field(default_factory=list)
    repeats: int = 1
    eot_samples: int | None = None
    bpda: bool = False
    attacked: int = 0
    note: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return str(self.spec.label)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if len(self.correct) else 0.0

    @property
    def median_norm(self) -> float | None:
        """Median perturbation norm over the points this attack broke (``None`` if it broke none)."""
        finite = self.norms[np.isfinite(self.norms)]
        return float(np.median(finite)) if len(finite) else None

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec.to_dict()
        return {
            **spec,
            "label": self.label,
            "accuracy": self.accuracy,
            "seconds": float(self.seconds),
            "minimisation": bool(self.spec.minimisation),
            "median_norm": self.median_norm,
            "violations": int(self.violations),
            "violation_indices": [int(i) for i in self.violation_indices],
            "repeats": int(self.repeats),
            "eot_samples": self.eot_samples,
            "bpda": bool(self.bpda),
            "attacked": int(self.attacked),
            "note": self.note,
            "error": self.error,
            "spec": spec,
            "correct": [int(c) for c in self.correct],
            "norms": [None if not math.isfinite(v) else float(v) for v in self.norms],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackResult:
        norms = np.array(
            [math.nan if v is None else float(v) for v in data.get("norms", [])], dtype=np.float64
        )
        correct = np.asarray(data["correct"], dtype=bool)
        if len(norms) != len(correct):
            norms = np.full(len(correct), math.nan)
        return cls(
            spec=AttackSpec.from_dict(data["spec"]),
            correct=correct,
            seconds=float(data["seconds"]),
            norms=norms,
            violations=int(data.get("violations", 0)),
            violation_indices=list(data.get("violation_indices", [])),
            repeats=int(data.get("repeats", 1)),
            eot_samples=data.get("eot_samples"),
            bpda=bool(data.get("bpda", False)),
            attacked=int(data.get("attacked", 0)),
            note=data.get("note"),
            error=data.get("error"),
        )


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` measured; ``to_dict()`` is the ``results.json`` record (see
    :mod:`.report`).

    Robust accuracy as the per-point worst case over the suite (Carlini et al. 2019; Croce & Hein 2020); no
    equation.
    """

    model: str
    dataset: str | None
    n: int
    seed: int
    clean_correct: np.ndarray
    attacks: list[AttackResult]
    audit_flags: list[AuditFlag]
    settings: dict[str, Any] = field(default_factory=dict)
    gradient_stats: dict[str, Any] | None = None
    determinism: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    reported: float | None = None

    @property
    def clean_accuracy(self) -> float:
        """Fraction of the ``n`` points the model classifies correctly without attack."""
        return float(np.mean(self.clean_correct))

    @property
    def robust_correct(self) -> np.ndarray:
        """Per point: correct clean and under every attack that ran (the per-point worst case)."""
        return worst_case(self.clean_correct, [a.correct for a in self.attacks if a.error is None])

    @property
    def robust_accuracy(self) -> float:
        """Fraction of the ``n`` points correct clean and under every attack that ran (the per-point worst
        case over the suite, all norms and budgets together; a failed attack is left out and flagged)."""
        return float(np.mean(self.robust_correct))

    @property
    def attack_seconds(self) -> float:
        """Compute of every attack as recorded when it ran (a resumed evaluation counts its cached attacks
        too)."""
        return float(sum(a.seconds for a in self.attacks))

    @property
    def accuracy_per_attack(self) -> dict[str, float]:
        """Accuracy under each attack that ran, by its label (``AttackSpec.label``; failed attacks are
        absent)."""
        return {a.label: a.accuracy for a in self.attacks if a.error is None}

    @property
    def autoattack_accuracy(self) -> float | None:
        """Per-point worst case over the AutoAttack runs of the suite (``None`` if AutoAttack did not run)."""
        runs = [a.correct for a in self.attacks if a.spec.library == "autoattack" and a.error is None]
        return float(np.mean(worst_case(self.clean_correct, runs))) if runs else None

    @property
    def audit(self) -> dict[str, Any]:
        """The audit as stored in ``results.json``: its flags, the gradient statistics and the determinism
        check."""
        return {
            "flags": [f.to_dict() for f in self.audit_flags],
            "gradients": self.gradient_stats,
            "determinism": self.determinism,
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` record (JSON-safe; see :mod:`.report` for reading it back)."""
        return result_to_dict(self)


# ------------------------------------------------------------------------------------------------------------
# pure helpers (tested directly)
# ------------------------------------------------------------------------------------------------------------
def worst_case(clean_correct: np.ndarray, per_attack_correct: Sequence[np.ndarray]) -> np.ndarray:
    """Per point: correct clean AND under every attack (the robust-accuracy indicator).

    Robust accuracy as the per-point worst case over all attacks (Carlini et al. 2019, "On Evaluating
    Adversarial Robustness"; as in AutoAttack, Croce & Hein 2020).
    """
    robust = np.asarray(clean_correct, dtype=bool).copy()
    for correct in per_attack_correct:
        correct = np.asarray(correct, dtype=bool)
        if correct.shape != robust.shape:
            raise ValueError(f"per-attack correctness has shape {correct.shape}, expected {robust.shape}")
        robust &= correct
    return robust


# ------------------------------------------------------------------------------------------------------------
# the results.json record
# ------------------------------------------------------------------------------------------------------------
RESULTS_FORMAT = "art-manifold-defenses/results/1"
_THREAT_NAMES = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100.0 * float(value), 2)


def result_to_dict(result: EvaluationResult) -> dict[str, Any]:
    """The JSON record of an :class:`EvaluationResult` (see :mod:`.report` for the fields)."""
    attacks = [a.to_dict() for a in result.attacks]
    norms = sorted({a["norm"] for a in attacks if a.get("error") is None})
    eps_values = sorted({a["eps"] for a in attacks if a.get("error") is None and a["eps"] is not None})
    autoattack = result.autoattack_accuracy
    return {
        "format": RESULTS_FORMAT,
        "model": result.model,
        "dataset": result.dataset,
        "n": int(result.n),
        "seed": int(result.seed),
        "clean_accuracy": result.clean_accuracy,
        "robust_accuracy": result.robust_accuracy,
        "attacks": attacks,
        "audit": json_clean(result.audit),
        "versions": dict(result.versions),
        "settings": json_clean(dict(result.settings)),
        "seconds": float(result.seconds),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # RobustBench-style fields (percent)
        "clean_acc": _percent(result.clean_accuracy),
        "robust_acc": _percent(result.robust_accuracy),
        "autoattack_acc": _percent(autoattack),
        "reported": result.reported,
        "threat_model": _THREAT_NAMES[norms[0]] if len(norms) == 1 else ("mixed" if norms else None),
        "eps": eps_values[-1] if len(norms) == 1 and eps_values else None,
        "number_forward_passes": int(result.settings.get("votes", 1) or 1),
        "per_point": {
            "clean_correct": [int(c) for c in result.clean_correct],
            "robust_correct": [int(c) for c in result.robust_correct],
        },
    }


#: ``value`` made JSON-safe (string keys, lists, Python scalars, ``None`` for non-finite floats): report I/O.
json_clean = json_safe

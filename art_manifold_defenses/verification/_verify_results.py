"""The per-image verdict (:class:`ImageVerification`) and the per-run result (:class:`VerificationResult`)
of :class:`~art_manifold_defenses.verification.verifier.Verifier`: plain containers with their summaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ImageVerification", "VerificationResult"]


@dataclass
class ImageVerification:
    """The verdict on one image.

    Paper: Jin & Rinard 2020 (paper 003), Table 2 ("Verified" column) via the MILP of Tjeng et al. 2019; no
    equation: a per-image result.

    ``status``: ``"verified"`` (no input in the ball is misclassified), ``"falsified"`` (``counterexample`` is
    in the ball and the model, run forward in float32, misclassifies it), ``"timeout"`` (the time limit ran
    out first) or ``"inconclusive"`` (the MILP found a margin <= 0 that the float32 forward pass does not
    reproduce and a local attack from it failed: a round-off tie). ``method`` says what decided it:
    ``"clean"`` (the image itself is misclassified), ``"pgd"``, ``"bounds"`` (all margins proved positive
    without the MILP) or ``"milp"``."""

    index: int
    label: int
    prediction: int
    status: str
    method: str
    seconds: float
    relus: int
    unstable: int = 0
    stable_active: int = 0
    stable_inactive: int = 0
    per_layer: list[dict[str, int]] = field(default_factory=list)
    bounds_seconds: float = 0.0
    milp_seconds: float = 0.0
    milp_classes: int = 0
    counterexample: np.ndarray | None = None
    counterexample_prediction: int | None = None
    margin_lower_bound: float | None = None

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def to_row(self) -> dict[str, Any]:
        """A flat record (no arrays) for TSV/JSON output."""
        return {
            "idx": self.index,
            "label": self.label,
            "prediction": self.prediction,
            "status": self.status,
            "method": self.method,
            "seconds": round(self.seconds, 4),
            "relus": self.relus,
            "unstable": self.unstable,
            "stable_active": self.stable_active,
            "stable_inactive": self.stable_inactive,
            "bounds_seconds": round(self.bounds_seconds, 4),
            "milp_seconds": round(self.milp_seconds, 4),
            "milp_classes": self.milp_classes,
            "counterexample_prediction": ""
            if self.counterexample_prediction is None
            else self.counterexample_prediction,
            "margin_lower_bound": ""
            if self.margin_lower_bound is None
            else round(self.margin_lower_bound, 6),
        }


@dataclass
class VerificationResult:
    """Per-image verdicts and their summary for one (model, eps) pair.

    Paper: Jin & Rinard 2020 (paper 003), Table 2 (verified accuracy); a result container.
    """

    images: list[ImageVerification]
    eps: float
    bounds: str
    time_limit: float

    def _share(self, predicate: Callable[[ImageVerification], bool]) -> float:
        return sum(map(predicate, self.images)) / len(self.images) if self.images else 0.0

    @property
    def verified_accuracy(self) -> float:
        return self._share(lambda r: r.status == "verified")

    @property
    def clean_accuracy(self) -> float:
        return self._share(lambda r: r.prediction == r.label)

    @property
    def falsified_share(self) -> float:
        return self._share(lambda r: r.status == "falsified")

    @property
    def timeout_share(self) -> float:
        return self._share(lambda r: r.status == "timeout")

    def summary(self) -> dict[str, Any]:
        seconds = [r.seconds for r in self.images]
        bounded = [r.unstable for r in self.images if r.method in ("bounds", "milp")]
        return {
            "n": len(self.images),
            "eps": self.eps,
            "bounds": self.bounds,
            "time_limit": self.time_limit,
            "verified_accuracy": self.verified_accuracy,
            "clean_accuracy": self.clean_accuracy,
            "falsified": self.falsified_share,
            "timeouts": self.timeout_share,
            "inconclusive": self._share(lambda r: r.status == "inconclusive"),
            "seconds_per_image": float(np.mean(seconds)) if seconds else 0.0,
            # over the images that reached the bounds (clean/PGD verdicts compute none)
            "mean_unstable_relus": float(np.mean(bounded)) if bounded else None,
            "relus": self.images[0].relus if self.images else 0,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "images": [r.to_row() for r in self.images]}

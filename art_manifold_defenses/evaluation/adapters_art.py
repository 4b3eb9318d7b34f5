"""ART 1.20 adapter: builds an ART evasion attack on a ``PyTorchClassifier`` around the model.

Work-arounds for ``notes/art_api.md`` Sec. 8, applied here and not in user code:

* the classifier comes from :func:`~art_manifold_defenses.estimator.to_art_classifier`, whose model casts
  inputs to float32, so ``BoundaryAttack`` and ``HopSkipJump`` (which feed float64 under numpy 2, NEP 50)
  work;
* labels are passed one-hot (``loss_gradient`` paths need one-hot ``y``);
* ``BoundaryAttack`` defaults to ``targeted=True`` in ART: it is built with ``targeted=False``;
* ART's ``AutoAttack`` (needs ``multiprocess``) is not used: AutoAttack is the torchattacks adapter;
* ``class_gradient`` with one label per sample (C&W l2, EAD) takes one backward pass instead of one per
  distinct label (:class:`~art_manifold_defenses.estimator.PerSampleClassGradientClassifier`; same values for
  eval-mode models).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from art.attacks import EvasionAttack
from art.attacks.evasion import (
    AutoProjectedGradientDescent,
    BasicIterativeMethod,
    BoundaryAttack,
    CarliniL2Method,
    CarliniLInfMethod,
    DeepFool,
    ElasticNet,
    FastGradientMethod,
    HopSkipJump,
    MomentumIterativeMethod,
    ProjectedGradientDescent,
    SquareAttack,
)

from ..estimator import to_art_classifier
from ._adapter_common import AdapterCall, adapter, fixed_budget
from .attacks import BatchAttack

__all__ = ["build_attack"]

_ART_NORM: dict[str, float] = {"linf": np.inf, "l2": 2, "l1": 1}
_FIXED = ("fgsm", "fgm", "bim", "pgd", "mim", "apgd-ce", "apgd-dlr", "square")


def _step(value: Any, default: float) -> float:
    return float(default if value is None else value)


def _make(
    attack: str, clf: Any, norm: str, eps: float | None, p: dict[str, Any], batch_size: int
) -> EvasionAttack:
    art_norm = _ART_NORM[norm]
    common = {"batch_size": batch_size}
    budget = fixed_budget(eps, f"ART {attack}") if attack in _FIXED else 0.0
    if attack in ("fgsm", "fgm"):
        return FastGradientMethod(clf, norm=art_norm, eps=budget, eps_step=budget, **common, **p)
    if attack == "bim":
        p["eps_step"] = _step(p["eps_step"], 2.5 * budget / p["max_iter"])
        return BasicIterativeMethod(clf, eps=budget, **common, verbose=False, **p)
    if attack == "pgd":
        p["eps_step"] = _step(p["eps_step"], 2.5 * budget / p["max_iter"])
        return ProjectedGradientDescent(clf, norm=art_norm, eps=budget, **common, verbose=False, **p)
    if attack == "mim":
        p["eps_step"] = _step(p["eps_step"], budget / p["max_iter"])
        return MomentumIterativeMethod(clf, norm=art_norm, eps=budget, **common, verbose=False, **p)
    if attack in ("apgd-ce", "apgd-dlr"):
        p["eps_step"] = _step(p["eps_step"], 2.0 * budget)
        loss = "cross_entropy" if attack == "apgd-ce" else "difference_logits_ratio"
        return AutoProjectedGradientDescent(
            clf, norm=art_norm, eps=budget, loss_type=loss, **common, verbose=False, **p
        )
    if attack == "square":
        return SquareAttack(clf, norm=art_norm, eps=budget, **common, verbose=False, **p)
    if attack == "cw":
        cls = CarliniL2Method if norm == "l2" else CarliniLInfMethod
        return cls(clf, targeted=False, **common, verbose=False, **p)
    if attack == "ead":
        return ElasticNet(clf, targeted=False, **common, verbose=False, **p)
    if attack == "deepfool":
        return DeepFool(clf, **common, verbose=False, **p)
    if attack == "boundary":
        return BoundaryAttack(clf, targeted=False, **common, verbose=False, **p)
    if attack == "hsj":
        return HopSkipJump(clf, targeted=False, norm=art_norm, **common, verbose=False, **p)
    raise ValueError(f"no ART adapter for attack {attack!r}")


@adapter
def build_attack(call: AdapterCall) -> BatchAttack:
    """An ART attack as a ``(x, y) -> x_adv`` callable (numpy float32 in, numpy out). ``seed`` is applied by
    the caller to numpy's global generator, which ART uses for random starts and proposals."""
    clf = to_art_classifier(
        call.model,
        input_shape=call.input_shape,
        nb_classes=call.nb_classes,
        device=call.device,
        per_sample_class_gradient=True,
    )
    art_attack = _make(call.attack, clf, call.norm, call.eps, dict(call.params), call.batch_size)
    eye = np.eye(call.nb_classes, dtype=np.float32)

    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(art_attack.generate(x=x.astype(np.float32), y=eye[y]), dtype=np.float32)

    return run

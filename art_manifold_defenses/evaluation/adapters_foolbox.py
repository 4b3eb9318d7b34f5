"""Foolbox 3.3 adapter.

Foolbox needs torch tensors (numpy raises ``NotImplementedError``) and a model in eval mode (``run_attack``
puts it there). Fixed-epsilon attacks return Foolbox's ``clipped`` output (inside the ball); minimisation
attacks return the ``raw`` output (Foolbox's ``clipped`` would silently project it), and ``run_attack``
applies the budget policy. With a finite ``eps``, minimisation attacks receive it as ``epsilons`` so they can
stop early.

Boundary and HopSkipJump need adversarial starting points; Foolbox's default initialisation (blended uniform
noise) raises ``ValueError`` for the whole batch when it fails for a single image. The adapter computes the
starting points itself: blended noise first, then, for the images where it failed, the nearest image of the
batch that the model assigns to another class (the usual decision-based initialisation). Images with no
adversarial starting point at all are returned clean (not broken).
"""

from __future__ import annotations

import warnings
from typing import Any

import foolbox as fb
import torch
from torch import nn

from ._adapter_common import AdapterCall, adapter, on_tensors
from .attacks import BatchAttack

__all__ = ["build_attack"]

_PGD: dict[str, Any] = {"linf": fb.attacks.LinfPGD, "l2": fb.attacks.L2PGD, "l1": fb.attacks.L1PGD}
_FGM: dict[str, Any] = {"linf": fb.attacks.FGSM, "l2": fb.attacks.FGM, "l1": fb.attacks.L1FastGradientAttack}
_MIFGSM: dict[str, Any] = {
    "linf": fb.attacks.LinfMomentumIterativeFastGradientMethod,
    "l2": fb.attacks.L2MomentumIterativeFastGradientMethod,
    "l1": fb.attacks.L1MomentumIterativeFastGradientMethod,
}
_DEEPFOOL: dict[str, Any] = {"linf": fb.attacks.LinfDeepFoolAttack, "l2": fb.attacks.L2DeepFoolAttack}
_UNIFORM: dict[str, Any] = {
    "linf": fb.attacks.LinfRepeatedAdditiveUniformNoiseAttack,
    "l2": fb.attacks.L2RepeatedAdditiveUniformNoiseAttack,
}


def _make(attack: str, norm: str, p: dict[str, Any]) -> Any:
    restarts = int(p.pop("restarts", 1))
    if restarts < 1:
        raise ValueError(f"params['restarts'] must be an integer >= 1, got {restarts}")
    if attack == "pgd":
        if p["rel_stepsize"] is None:
            p["rel_stepsize"] = 2.5 / p["steps"]
        made: Any = _PGD[norm](**p)
    elif attack in ("fgsm", "fgm"):
        made = _FGM[norm](**p)
    elif attack == "mifgsm":
        if p["rel_stepsize"] is None:
            p["rel_stepsize"] = 1.0 / p["steps"]
        made = _MIFGSM[norm](**p)
    elif attack == "deepfool":
        made = _DEEPFOOL[norm](**p)
    elif attack == "cw":
        made = fb.attacks.L2CarliniWagnerAttack(**p)
    elif attack == "ead":
        made = fb.attacks.EADAttack(**p)
    elif attack == "boundary":
        made = fb.attacks.BoundaryAttack(**p)
    elif attack == "hsj":
        made = fb.attacks.HopSkipJumpAttack(constraint="linf" if norm == "linf" else "l2", **p)
    elif attack == "gaussian-noise":
        made = fb.attacks.L2RepeatedAdditiveGaussianNoiseAttack(**p)
    elif attack == "uniform-noise":
        made = _UNIFORM[norm](**p)
    elif attack == "salt-pepper":
        made = fb.attacks.SaltAndPepperNoiseAttack(**p)
    else:
        raise ValueError(f"no Foolbox adapter for attack {attack!r}")
    return made.repeat(restarts) if restarts > 1 else made


def _starting_points(
    fmodel: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial starting points for decision-based attacks and the mask of images that have one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*failed to draw sufficient random inputs.*")
        starts = fb.attacks.LinearSearchBlendedUniformNoiseAttack().run(
            fmodel, x, fb.criteria.Misclassification(y)
        )
    starts = torch.as_tensor(starts).detach().clone()
    with torch.no_grad():
        found = model(starts).argmax(dim=1) != y
        if not bool(found.all()):
            predictions = model(x).argmax(dim=1)
            distances = torch.cdist(x.flatten(1), x.flatten(1))
            for i in (~found).nonzero().flatten().tolist():
                other = predictions != y[i]
                if bool(other.any()):
                    j = int(
                        torch.where(other, distances[i], torch.full_like(distances[i], float("inf"))).argmin()
                    )
                    starts[i], found[i] = x[j], True
    return starts, found


@adapter
def build_attack(call: AdapterCall) -> BatchAttack:
    """A Foolbox attack as a ``(x, y) -> x_adv`` callable. Foolbox draws random starts and noise from torch's
    global RNG, which ``run_attack`` seeds with ``seed``; it reads the number of classes and the shapes from
    the model and the batch."""
    attack, model, eps = call.attack, call.model, call.eps
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=call.device)
    fb_attack = _make(attack, call.norm, dict(call.params))
    minimisation = isinstance(fb_attack, fb.attacks.base.MinimizationAttack) or (
        isinstance(fb_attack, fb.attacks.base.Repeated)
        and isinstance(fb_attack.attack, fb.attacks.base.MinimizationAttack)
    )

    def craft(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if attack in ("boundary", "hsj"):
            out = inputs.clone()
            starts, found = _starting_points(fmodel, model, inputs, labels)
            if bool(found.any()):
                raw, _, _ = fb_attack(
                    fmodel, inputs[found], labels[found], epsilons=eps, starting_points=starts[found]
                )
                out[found] = raw
            return out
        raw, clipped, _ = fb_attack(fmodel, inputs, labels, epsilons=eps)
        return raw if minimisation else clipped

    return on_tensors(craft, call.device)

"""CleverHans 4 adapter (``cleverhans.torch.attacks``).

CleverHans needs torch tensors (numpy raises ``TypeError``) and int64 labels; the model itself is the
``model_fn``. Work-arounds and choices:

* ``hop_skip_jump_attack`` ignores ``norm`` and reads ``constraint`` (``2`` or ``np.inf``), and it ignores
  labels (untargeted = "change the current prediction"). Only correctly classified points are attacked, one at
  a time, so an already misclassified point is never moved back to its true class; a point whose random
  initialisation fails (CleverHans asserts after 10,000 tries) is returned clean (not broken).
* with ``constraint=np.inf`` CleverHans calls ``torch.min(tensor, float)``, which torch 2 rejects; during the
  call the module sees a ``torch`` whose ``min`` accepts a float as second argument (an elementwise clamp, the
  intended meaning), and is restored afterwards.
* ``sanity_checks`` are off: ``run_attack`` validates inputs and outputs itself.
* PGD ``restarts``: each restart re-runs PGD from a new random start on the points not yet misclassified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from cleverhans.torch.attacks import hop_skip_jump_attack as _hsj_module
from cleverhans.torch.attacks.carlini_wagner_l2 import carlini_wagner_l2
from cleverhans.torch.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.torch.attacks.hop_skip_jump_attack import hop_skip_jump_attack
from cleverhans.torch.attacks.projected_gradient_descent import projected_gradient_descent
from cleverhans.torch.attacks.sparse_l1_descent import sparse_l1_descent
from cleverhans.torch.attacks.spsa import spsa
from torch import Tensor, nn

from ._adapter_common import AdapterCall, adapter, fixed_budget, on_tensors
from .attacks import BatchAttack

__all__ = ["build_attack"]

_CH_NORM: dict[str, float] = {"linf": np.inf, "l2": 2, "l1": 1}


def _predict(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def _pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: float, p: dict[str, Any]) -> Tensor:
    restarts = int(p.pop("restarts"))
    if restarts < 1:
        raise ValueError(f"params['restarts'] must be an integer >= 1, got {restarts}")
    eps_iter = 2.5 * eps / p["nb_iter"] if p["eps_iter"] is None else float(p["eps_iter"])
    p["eps_iter"] = min(eps_iter, eps)  # CleverHans asserts eps_iter <= eps
    p.setdefault("rand_minmax", eps)
    best = x.clone()
    todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        idx = todo.nonzero().flatten()
        if len(idx) == 0:
            break
        adv = projected_gradient_descent(
            model, x[idx], eps, norm=norm, clip_min=0.0, clip_max=1.0, y=y[idx], sanity_checks=False, **p
        )
        best[idx] = adv
        todo[idx] = _predict(model, adv) == y[idx]
    return best


class _TorchWithScalarMin:
    """``torch`` with ``min(tensor, float)`` = ``clamp(tensor, max=float)`` (CleverHans' HopSkipJump linf
    needs it); ``min(tensor, int)`` stays the reduction over dimension ``int``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def min(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and isinstance(args[0], float):
            return torch.clamp(input, max=float(args[0]))
        return torch.min(input, *args, **kwargs)


@contextlib.contextmanager
def _scalar_min_patch() -> Iterator[None]:
    original = _hsj_module.torch
    _hsj_module.torch = _TorchWithScalarMin()  # type: ignore[assignment]
    try:
        yield
    finally:
        _hsj_module.torch = original


def _hsj(model: nn.Module, x: Tensor, y: Tensor, norm: float, p: dict[str, Any], batch_size: int) -> Tensor:
    out = x.clone()
    correct = _predict(model, x) == y
    for i in correct.nonzero().flatten().tolist():
        try:
            with _scalar_min_patch():
                out[i : i + 1] = hop_skip_jump_attack(
                    model,
                    x[i : i + 1],
                    norm,
                    constraint=norm,
                    batch_size=batch_size,
                    verbose=False,
                    clip_min=0.0,
                    clip_max=1.0,
                    **p,
                )
        except AssertionError:  # random initialisation found no adversarial: the point stays clean
            out[i] = x[i]
    return out


@adapter
def build_attack(call: AdapterCall) -> BatchAttack:
    """A CleverHans attack as a ``(x, y) -> x_adv`` callable. CleverHans draws from torch's global RNG, which
    ``run_attack`` seeds with ``seed``."""
    attack, model, params = call.attack, call.model, call.params
    ch_norm = _CH_NORM[call.norm]
    known = ("fgm", "pgd", "cw", "spsa", "hsj", "sparse-l1")
    if attack not in known:
        raise ValueError(f"no CleverHans adapter for attack {attack!r}; valid: {list(known)}")
    fixed = attack in ("fgm", "pgd", "spsa", "sparse-l1")
    budget = fixed_budget(call.eps, f"CleverHans {attack}") if fixed else 0.0

    def craft(x: Tensor, y: Tensor) -> Tensor:
        p = dict(params)
        if attack == "fgm":
            return fast_gradient_method(model, x, budget, ch_norm, clip_min=0.0, clip_max=1.0, y=y, **p)
        if attack == "pgd":
            return _pgd(model, x, y, budget, ch_norm, p)
        if attack == "cw":
            return carlini_wagner_l2(model, x, call.nb_classes, y=y, clip_min=0.0, clip_max=1.0, **p)
        if attack == "spsa":
            return spsa(
                model, x, budget, norm=ch_norm, clip_min=0.0, clip_max=1.0, y=y, sanity_checks=False, **p
            )
        if attack == "hsj":
            return _hsj(model, x, y, ch_norm, p, call.batch_size)
        eps_iter = budget / 10.0 if p.pop("eps_iter") is None else float(params["eps_iter"])
        return sparse_l1_descent(
            model, x, eps=budget, eps_iter=eps_iter, y=y, clip_min=0.0, clip_max=1.0, sanity_checks=False, **p
        )

    return on_tensors(craft, call.device)

"""AutoAttack adapter (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690), through
``torchattacks.AutoAttack``.

* ``standard`` (APGD-CE, APGD-T, FAB-T, Square) for deterministic models, ``rand`` (APGD-CE and APGD-DLR with
  ``eot_iter`` EoT gradient samples) for randomized ones, ``plus`` for the extended list.
* ``torchattacks`` builds its sub-attacks with 10 iterations; the original AutoAttack uses 100.
  ``params['steps']`` (default 100) is written into every APGD/APGD-T/FAB sub-attack, ``params['n_queries']``
  into Square and ``params['eot_iter']`` into the ``rand`` APGD runs, so the defaults follow the original
  AutoAttack.
* ``torchattacks`` reads the device from the model's first parameter (and prints a warning when there is
  none): the model is wrapped in a module whose first parameter is an empty tensor on ``device``.
* ART's own ``AutoAttack`` (which needs ``multiprocess``, see ``notes/art_api.md``) is not used.
"""

from __future__ import annotations

from typing import Any

import torch
import torchattacks
from torch import Tensor, nn

from ._adapter_common import AdapterCall, adapter, fixed_budget, on_tensors
from .attacks import BatchAttack

__all__ = ["build_attack", "build_ensemble"]

_TA_NORM = {"linf": "Linf", "l2": "L2"}


class _OnDevice(nn.Module):
    """``module`` behind an empty parameter on ``device`` (torchattacks infers the device from the first
    one)."""

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.module(x)
        return out


def _configure(ensemble: Any, params: dict[str, Any]) -> None:
    """Write the step/query/EoT settings into every sub-attack of the torchattacks ensemble."""
    for sub in ensemble._autoattack.attacks:
        if isinstance(sub, torchattacks.Square):
            if "n_queries" in params:
                sub.n_queries = int(params["n_queries"])
        else:
            sub.steps = int(params["steps"])
            if "eot_iter" in params and hasattr(sub, "eot_iter"):
                sub.eot_iter = int(params["eot_iter"])


def build_ensemble(
    attack: str,
    model: nn.Module,
    *,
    norm: str,
    eps: float | None,
    params: dict[str, Any],
    device: torch.device,
    nb_classes: int,
    seed: int,
) -> torchattacks.AutoAttack:
    """The configured ``torchattacks.AutoAttack`` (version ``attack``) on ``model``."""
    if attack not in ("standard", "plus", "rand"):
        raise ValueError(f"no AutoAttack version {attack!r}; valid: ['plus', 'rand', 'standard']")
    budget = fixed_budget(eps, "AutoAttack")
    for key in ("steps", "n_queries", "eot_iter"):
        if key in params and (isinstance(params[key], bool) or int(params[key]) < 1):
            raise ValueError(f"params[{key!r}] must be an integer >= 1, got {params[key]!r}")
    ensemble = torchattacks.AutoAttack(
        _OnDevice(model, device),
        norm=_TA_NORM[norm],
        eps=float(budget),
        version=attack,
        n_classes=nb_classes,
        seed=seed,
    )
    _configure(ensemble, params)
    return ensemble


@adapter
def build_attack(call: AdapterCall) -> BatchAttack:
    """A torchattacks AutoAttack as a ``(x, y) -> x_adv`` callable, seeded with ``seed``."""
    ensemble = build_ensemble(
        call.attack,
        call.model,
        norm=call.norm,
        eps=call.eps,
        params=call.params,
        device=call.device,
        nb_classes=call.nb_classes,
        seed=call.seed,
    )
    return on_tensors(ensemble, call.device)

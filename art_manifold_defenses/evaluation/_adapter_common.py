"""What the attack adapters (``adapters_<library>``) share: the ``build_attack`` entry point that
:func:`~.attacks.run_attack` calls (:func:`adapter`, around a builder reading one :class:`AdapterCall`), the
check of a fixed-budget attack's ``eps`` (:func:`fixed_budget`) and the numpy <-> torch round trip of the
libraries that attack torch tensors (:func:`on_tensors`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .attacks import BatchAttack

__all__ = ["AdapterCall", "adapter", "fixed_budget", "on_tensors"]


@dataclass(frozen=True)
class AdapterCall:
    """The arguments of one ``build_attack`` call: the attack's name in its library and the model (logits),
    then, by keyword, the norm, the budget (``None`` for a minimisation attack), the validated parameters, the
    torch device, the number of classes, the shape of one image, the batch size and the seed (already applied
    by :func:`~.attacks.run_attack` to the global generators; a library with its own seed reads it here)."""

    attack: str
    model: nn.Module
    _: KW_ONLY
    norm: str
    eps: float | None
    params: dict[str, Any]
    device: torch.device
    nb_classes: int
    input_shape: tuple[int, ...]
    batch_size: int
    seed: int


def adapter(build: Callable[[AdapterCall], BatchAttack]) -> Callable[..., BatchAttack]:
    """``build`` as an adapter's ``build_attack(attack, model, *, norm, eps, params, device, nb_classes,
    input_shape, batch_size, seed)``, the call of :func:`~.attacks.run_attack` (the fields of
    :class:`AdapterCall`; a missing or unknown keyword raises ``TypeError``). Name and docstring are
    ``build``'s."""

    def build_attack(attack: str, model: nn.Module, **settings: Any) -> BatchAttack:
        return build(AdapterCall(attack, model, **settings))

    build_attack.__module__ = build.__module__
    build_attack.__name__ = build.__name__
    build_attack.__qualname__ = build.__qualname__
    build_attack.__doc__ = build.__doc__
    return build_attack


def fixed_budget(eps: float | None, attack: str) -> float:
    """``eps`` of a fixed-budget attack (``attack`` names it in the error): ``None`` raises ``ValueError``."""
    if eps is None:
        raise ValueError(f"{attack} is a fixed-budget attack and needs a finite eps")
    return eps


def on_tensors(craft: Callable[[Tensor, Tensor], Tensor], device: torch.device) -> BatchAttack:
    """``craft(images, int64 labels) -> adversarial images`` on torch tensors (on ``device``) as a
    :data:`~.attacks.BatchAttack` on numpy batches (float32 out)."""

    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        labels = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        return np.asarray(craft(inputs, labels).detach().cpu().numpy(), dtype=np.float32)

    return run

"""ReLUs written without an ``nn.ReLU`` module: the functional forms and the other ways of writing
``max(x, 0)``.

Forward hooks see ``nn.ReLU`` modules only. The FPD's ReLU -> ELU swap (paper 002) and the manifold
regularizer's Hamming term (paper 003) both need to know when a network computes a ReLU some other way;
:func:`is_relu_call` says so for one ``__torch_function__`` call, :data:`FUNCTIONAL_RELUS` lists the
functional ReLUs proper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FUNCTIONAL_RELUS", "is_relu_call"]

#: The functional forms of ReLU.
FUNCTIONAL_RELUS: frozenset[Any] = frozenset(
    {F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}
)
_CLAMPS: frozenset[Any] = frozenset(
    {
        torch.clamp,
        torch.clamp_,
        Tensor.clamp,
        Tensor.clamp_,
        torch.clip,
        torch.clip_,
        Tensor.clip,
        Tensor.clip_,
    }
)
_CLAMP_MINS: frozenset[Any] = frozenset(
    {torch.clamp_min, torch.clamp_min_, Tensor.clamp_min, Tensor.clamp_min_}
)
_MAXIMA: frozenset[Any] = frozenset(
    {torch.maximum, Tensor.maximum, torch.max, Tensor.max, torch.fmax, Tensor.fmax}
)


def _is_zero(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == 0
    return (
        isinstance(value, Tensor)
        and value.numel() > 0
        and not value.requires_grad
        and bool((value == 0).all())
    )


def is_relu_call(func: Any, args: Sequence[Any], kwargs: dict[str, Any] | None) -> bool:
    """Whether ``func(*args, **kwargs)`` computes a ReLU: a functional ReLU, a clamp with lower bound 0 and no
    upper bound, the element-wise maximum of a tensor and a zero, or ``threshold(x, 0, 0)``.

    Paper: Jin & Rinard 2020 (paper 003), eq. 4 (the ReLUs whose pre-activations the Hamming term needs); no
    equation: a detector of activations that forward hooks cannot see.
    """
    kwargs = kwargs or {}
    if func in FUNCTIONAL_RELUS:
        return True
    if func in _CLAMPS:
        low = args[1] if len(args) > 1 else kwargs.get("min")
        high = args[2] if len(args) > 2 else kwargs.get("max")
        return low is not None and high is None and _is_zero(low)
    if func in _CLAMP_MINS:
        low = args[1] if len(args) > 1 else kwargs.get("min")
        return low is not None and _is_zero(low)
    if func in _MAXIMA:
        other = args[1] if len(args) > 1 else kwargs.get("other")
        if (
            other is None or isinstance(other, int) and func in (torch.max, Tensor.max)
        ):  # max(x) or max(x, dim)
            return False
        return _is_zero(other) or (
            isinstance(args[0], Tensor) and _is_zero(args[0]) and isinstance(other, Tensor)
        )
    if func is F.threshold:
        threshold = args[1] if len(args) > 1 else kwargs.get("threshold")
        value = args[2] if len(args) > 2 else kwargs.get("value")
        return threshold is not None and value is not None and _is_zero(threshold) and _is_zero(value)
    return False

"""Hyper-parameter handling shared by :class:`~.manifold_regularizer.ManifoldRegularizer`,
:class:`~.trainer.ManifoldRegularizationTrainer` and the schedules: the finite, non-negative number check and
ART-style ``set_params``. Torch-free, so that :mod:`.schedules` stays light."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def _check_non_negative(value: Any, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite int or float >= 0 (a bool is not a number here)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class _SettableParams:
    """ART-style ``set_params`` for a class that lists its hyper-parameters in ``params`` and validates them
    in ``_check_params``."""

    params: list[str]
    _check_params: Callable[[], None]  # each subclass validates its own hyper-parameters

    def set_params(self, **kwargs: Any) -> None:
        """Set hyper-parameters by name (ART style) and validate them."""
        for key, value in kwargs.items():
            if key not in self.params:
                raise ValueError(f"unknown parameter {key!r}; expected one of {self.params}")
            setattr(self, key, value)
        self._check_params()

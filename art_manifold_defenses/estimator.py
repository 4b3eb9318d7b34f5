"""Glue to ART: wrap any PyTorch model as a ``PyTorchClassifier`` with the package's conventions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier
from torch import Tensor, nn

from .utils import art_device_type

__all__ = ["Float32Input", "to_art_classifier"]


class Float32Input(nn.Module):
    """Casts inputs to float32 before the wrapped module (numpy 2 makes some ART attacks feed float64)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.float())


def to_art_classifier(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    nb_classes: int,
    device: str | torch.device | None = "cpu",
    loss: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    preprocessing_defences: Any = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    **kwargs: Any,
) -> PyTorchClassifier:
    """An ART ``PyTorchClassifier`` for ``model`` with ``clip_values=(0, 1)``, cross-entropy loss, the right
    ``input_shape``/``nb_classes``, ART's ``device_type`` derived from ``device``, and float32 casting of inputs.

    No paper or equation: the ART (Adversarial Robustness Toolbox) wrapper every attack goes through.

    The returned classifier's ``model`` is a :class:`Float32Input` around ``model`` (ART's ``ModelWrapper`` adds
    its own layer on top); parameters are shared, so training through ART trains ``model``.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    if not isinstance(nb_classes, int) or nb_classes < 2:
        raise ValueError(f"nb_classes must be an integer >= 2, got {nb_classes!r}")
    device_type = art_device_type(device)
    model.eval()
    return PyTorchClassifier(
        model=Float32Input(model),
        loss=loss if loss is not None else nn.CrossEntropyLoss(),
        input_shape=shape,
        nb_classes=nb_classes,
        optimizer=optimizer,
        clip_values=clip_values,
        preprocessing_defences=preprocessing_defences,
        device_type=device_type,
        **kwargs,
    )

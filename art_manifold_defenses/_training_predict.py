"""Predicting with a model outside the training steps: :func:`predict_logits` (eval mode, batches, checked
images) and :func:`evaluate_accuracy` (top-1 accuracy), used for validation, the collapse check and by the
defences' trainers."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .utils import check_images, check_labels, forward_checked, resolve_device


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: Any, *, batch_size: int = 256, device: str | torch.device | None = "cpu"
) -> np.ndarray:
    """Logits of ``model`` on ``x`` (numpy or tensor), computed in eval mode in batches; returns a numpy
    array.

    Raises ``ValueError``/``TypeError`` naming ``x`` for images that are not finite NCHW batches in [0, 1] or
    that the model cannot take (wrong channel count, channels-last layout), and naming ``batch_size`` for a
    non-positive one.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x_np = check_images(x, "x")
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for start in range(0, len(x_np), batch_size):
            outputs.append(
                forward_checked(model, x_np[start : start + batch_size], "x", device=dev).float().cpu()
            )
    finally:
        model.train(was_training)
    return torch.cat(outputs).numpy()


def evaluate_accuracy(
    model: nn.Module, x: Any, y: Any, *, batch_size: int = 256, device: str | torch.device | None = "cpu"
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    logits = predict_logits(model, x, batch_size=batch_size, device=device)
    labels = check_labels(y, len(logits), int(logits.shape[1]), "y")
    return float((logits.argmax(1) == labels).mean())

"""The Dice coefficient of binary (or one-class-of-many) segmentations, per image, and its mean and standard
error."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...utils import as_float_tensor, resolve_device

__all__ = ["dice_score", "predict_masks", "segmentation_dice"]


def dice_score(prediction: Any, target: Any, *, foreground: int = 1) -> np.ndarray:
    """Per-image Dice 2|P and T| / (|P| + |T|) of the ``foreground`` class; 1.0 where both masks are empty.

    Paper: Taghanaki et al. 2019 (paper 001), Tables 4-6 (segmentation results as Dice); the
    standard Dice coefficient.

    ``prediction`` and ``target``: integer label maps of shape (N, H, W) (or one (H, W) map).
    """
    p = np.asarray(prediction.detach().cpu() if isinstance(prediction, torch.Tensor) else prediction)
    t = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
    if p.shape != t.shape:
        raise ValueError(f"prediction and target must have the same shape, got {p.shape} and {t.shape}")
    if p.ndim == 2:
        p, t = p[None], t[None]
    if p.ndim != 3 or len(p) == 0:
        raise ValueError(f"masks must have shape (N, H, W) with N >= 1, got {p.shape}")
    pf = (p == foreground).reshape(len(p), -1)
    tf = (t == foreground).reshape(len(t), -1)
    overlap = (pf & tf).sum(1).astype(np.float64)
    total = pf.sum(1).astype(np.float64) + tf.sum(1)
    return np.where(total > 0, 2.0 * overlap / np.maximum(total, 1.0), 1.0)


@torch.no_grad()
def predict_masks(
    model: nn.Module, x: Any, *, batch_size: int = 32, device: str | torch.device | None = "cpu"
) -> np.ndarray:
    """Arg-max label maps (N, H, W) of a segmentation model returning (N, classes, H, W) logits."""
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(x), batch_size):
            logits = model(as_float_tensor(x[start : start + batch_size], dev))
            if logits.ndim != 4:
                raise ValueError(
                    "a segmentation model must return (N, classes, H, W) logits, got shape "
                    f"{tuple(logits.shape)}"
                )
            out.append(logits.argmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()


def segmentation_dice(
    model: nn.Module, x: Any, masks: Any, *, batch_size: int = 32, device: str | torch.device | None = "cpu"
) -> tuple[float, float]:
    """Mean Dice of the model's predictions on ``(x, masks)`` and its standard error (as the paper's Table 4).

    Paper: Taghanaki et al. 2019 (paper 001), Table 4 (mean Dice and its standard error).
    """
    scores = dice_score(predict_masks(model, x, batch_size=batch_size, device=device), masks)
    stderr = float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0
    return float(scores.mean()), stderr

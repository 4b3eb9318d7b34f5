"""Training a segmentation model (plain or mapped U-Net) with the package's shared loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...training import TrainContext, train
from ...utils import check_images

__all__ = ["OPTIMIZERS", "train_segmentation"]

OPTIMIZERS = ("adadelta", "adam")


def train_segmentation(
    model: nn.Module,
    x: Any,
    masks: Any,
    *,
    epochs: int,
    batch_size: int = 16,
    optimizer: str = "adadelta",
    learning_rate: float | None = None,
    device: str | torch.device | None = "cpu",
    seed: int = 0,
    verbose: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` ((N, classes, H, W) logits) with pixel-wise cross-entropy on ``(x, masks)``.

    Defaults follow paper 001, section 5.2: batch 16, ADADELTA with learning rate 1.0 and rho 0.95
    (``optimizer="adam"`` uses Adam, default lr 1e-3). The paper does not name its segmentation loss;
    pixel-wise cross-entropy is used. The shared loop wants one label per sample, so it is given sample
    indices and the step function looks the masks up.
    """
    x_np = check_images(x, "x")
    m_np = np.asarray(masks)
    if m_np.shape != (x_np.shape[0], *x_np.shape[2:]):
        raise ValueError(f"masks must have shape {(x_np.shape[0], *x_np.shape[2:])}, got {m_np.shape}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if learning_rate is not None and not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number or None, got {learning_rate!r}")
    if optimizer == "adadelta":
        opt: torch.optim.Optimizer = torch.optim.Adadelta(
            model.parameters(), lr=learning_rate or 1.0, rho=0.95
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=learning_rate or 1e-3)
    mask_tensor = torch.from_numpy(m_np.astype(np.int64))

    def step(ctx: TrainContext, xb: Tensor, index: Tensor) -> Tensor:
        target = mask_tensor[index.cpu()].to(xb.device)
        return nn.functional.cross_entropy(ctx.model(xb), target)

    indices = np.arange(len(x_np), dtype=np.int64)
    return train(
        model,
        x_np,
        indices,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=opt,
        step_fn=step,
        device=device,
        seed=seed,
        verbose=verbose,
        desc="segmentation",
        collapse_check=False,  # labels are sample indices, outputs per pixel
    )

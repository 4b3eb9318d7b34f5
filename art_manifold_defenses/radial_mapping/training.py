"""End-to-end training of a mapped CNN with the package's shared loop (centres, widths and A learned with the
CNN)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..training import train

__all__ = ["train_radial_mapping"]


def train_radial_mapping(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    device: str | torch.device | None = "cpu",
    validation_data: tuple[Any, Any] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> list[dict[str, float]]:
    """Train a model returned by :func:`add_radial_mapping` with cross-entropy and Adam (paper 5.1: batch 128,
    Adam lr 1e-3; the authors' code uses batch 32 and 12 epochs). All parameters, the mapping's included, are
    learned.

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.3, eqs. (9)-(11) (cross-entropy over all parameters A,
    C, beta and the CNN's), with the Section 5.1 settings.

    Returns the per-epoch history of :func:`art_manifold_defenses.training.train`.
    """
    if not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    optimizer = torch.optim.Adam(model.parameters(), lr=float(learning_rate))
    return train(
        model,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        device=device,
        validation_data=validation_data,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        verbose=verbose,
        desc="radial-mapping",
    )

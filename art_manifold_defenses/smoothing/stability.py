"""Stability training with noise (STN, Li et al. 2019, section 5.1) and plain Gaussian augmentation, as step
functions for the package's training loop.

| Paper link: https://arxiv.org/abs/1809.03113

``L = CE(f(x), y) + gamma * L_stability(x, x')`` with ``x' = x + N(0, sigma^2 I)`` drawn fresh for every batch
and ``L_stability = -sum_j P(y_j | x) log P(y_j | x')`` (the paper: softmax probabilities of the clean input
as the target). The authors' code (``tf_train``, Bai-Li/STN-Code at commit 5bf425d) uses the raw clean
*logits* as the "labels" of a softmax cross-entropy, with no gradient through them: ``target="logits"``.
``gamma = 0`` gives plain Gaussian data augmentation, ``CE(f(x'), y)`` (Cohen et al.'s training; the ablation
without stability training).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..training import StepFunction, TrainContext, train

__all__ = ["STABILITY_TARGETS", "stability_loss", "stn_step", "train_stn"]

#: ``"softmax"``: the paper's target ``P(y | x)``; ``"logits"``: the authors' code, raw clean logits as the
#: target.
STABILITY_TARGETS = ("softmax", "logits")


def _check_stn_params(sigma: float, stability_weight: float, target: str) -> None:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < float(sigma) < float("inf"):
        raise ValueError(f"sigma must be a positive finite float, got {sigma!r}")
    if (
        isinstance(stability_weight, bool)
        or not isinstance(stability_weight, (int, float))
        or not 0 <= float(stability_weight) < float("inf")
    ):
        raise ValueError(f"stability_weight must be a non-negative finite float, got {stability_weight!r}")
    if target not in STABILITY_TARGETS:
        raise ValueError(f"target must be one of {STABILITY_TARGETS}, got {target!r}")


def stability_loss(
    clean_logits: Tensor, noisy_logits: Tensor, *, target: str = "softmax", stop_gradient: bool = False
) -> Tensor:
    """Mean over the batch of ``-sum_j t_j log softmax(noisy_logits)_j``.

    Paper: Li et al. 2019 (paper 004), Section 5.1 (the stability loss ``L_stability``).

    ``target="softmax"``: ``t = softmax(clean_logits)`` (the paper; gradient flows through both terms unless
    ``stop_gradient``). ``target="logits"``: ``t = clean_logits`` unnormalised and always gradient-stopped
    (the authors' TF1 ``softmax_cross_entropy_with_logits`` call, which does not differentiate its labels).
    """
    if target not in STABILITY_TARGETS:
        raise ValueError(f"target must be one of {STABILITY_TARGETS}, got {target!r}")
    if clean_logits.shape != noisy_logits.shape or clean_logits.ndim != 2:
        raise ValueError(
            f"clean_logits and noisy_logits must both be (N, classes), got {tuple(clean_logits.shape)} and "
            f"{tuple(noisy_logits.shape)}"
        )
    if target == "softmax":
        weights = torch.softmax(clean_logits, dim=1)
        if stop_gradient:
            weights = weights.detach()
    else:
        weights = clean_logits.detach()
    return -(weights * torch.log_softmax(noisy_logits, dim=1)).sum(dim=1).mean()


def stn_step(
    sigma: float, *, stability_weight: float = 1.0, target: str = "softmax", stop_gradient: bool = False
) -> StepFunction:
    """A step function for :func:`~art_manifold_defenses.training.train`: fresh Gaussian noise per batch, then
    the STN loss (``stability_weight > 0``) or Gaussian augmentation (``stability_weight = 0``).

    Paper: Li et al. 2019 (paper 004), Section 5.1 (``L* + gamma L_stability`` on ``x' = x + N(0, sigma^2
    I)``).
    """
    _check_stn_params(sigma, stability_weight, target)

    def step(ctx: TrainContext, x: Tensor, y: Tensor) -> Tensor:
        noisy = x + float(sigma) * torch.randn_like(x)
        if stability_weight == 0:
            return nn.functional.cross_entropy(ctx.model(noisy), y)
        both = ctx.model(torch.cat([x, noisy]))  # one forward pass over the clean and the noisy batch
        clean_logits, noisy_logits = both[: len(x)], both[len(x) :]
        loss = nn.functional.cross_entropy(clean_logits, y)
        return loss + float(stability_weight) * stability_loss(
            clean_logits, noisy_logits, target=target, stop_gradient=stop_gradient
        )

    return step


def train_stn(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    sigma: float,
    stability_weight: float = 1.0,
    target: str = "softmax",
    stop_gradient: bool = False,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    device: str | torch.device | None = "cpu",
    seed: int = 0,
    verbose: bool = True,
    **train_kwargs: Any,
) -> list[dict[str, float]]:
    """Train ``model`` with STN (defaults: the paper's ``gamma = 1``, Adam lr 1e-3 and batch 64 of the
    authors' MNIST flags). Extra keyword arguments go to :func:`~art_manifold_defenses.training.train`
    (scheduler, validation_data, checkpoint_dir, ...). Returns the training history.

    Paper: Li et al. 2019 (paper 004), Section 5.1 (Stability Training with Noise).
    """
    step = stn_step(sigma, stability_weight=stability_weight, target=target, stop_gradient=stop_gradient)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return train(
        model,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        step_fn=step,
        device=device,
        seed=seed,
        verbose=verbose,
        desc="stn" if stability_weight > 0 else "gaussian-aug",
        **train_kwargs,
    )

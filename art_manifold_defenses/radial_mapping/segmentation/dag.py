"""Dense Adversary Generation (DAG, Xie et al., "Adversarial Examples for Semantic Segmentation and Object
Detection", ICCV 2017, https://arxiv.org/abs/1703.08603, Algorithm 1), the segmentation attack of
paper 001."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...utils import check_images, resolve_device

__all__ = ["DenseAdversaryGeneration"]

TARGETS = ("flip", "random")


class DenseAdversaryGeneration:
    """DAG: iteratively push every still-correct pixel towards an adversarial label.

    Reference: Xie et al. 2017, Algorithm 1; used by Taghanaki et al. 2019 (paper 001), Section 5.2 and Tables
    4-5.

    For m = 0 .. iterations-1, with the active set T_m = {pixels t : argmax_c Z_c(x + r, t) = l_t} (still
    correct):
        r_m = sum_{t in T_m} [ grad_x Z_{l'_t}(x + r, t) - grad_x Z_{l_t}(x + r, t) ]
        r  <- r + gamma * r_m / ||r_m||_inf
    stopping early for an image whose active set is empty. Z are the logits, l the true and l' the adversarial
    label map. Paper 001 uses gamma = 0.03 with 10 and 30 iterations.

    Args:
        model: segmentation ``nn.Module`` returning (N, classes, H, W) logits.
        iterations: maximum number of iterations (paper 001: 10 or 30).
        gamma: the perturbation factor (paper 001: 0.03).
        target: ``"flip"`` (l' = 1 - l; binary models only), ``"random"`` (a uniformly drawn other class per
            pixel, seeded) or an explicit integer array (N, H, W).
        clip_values: ``(min, max)`` to clip x + r to (the image range), or None for no clipping (Xie et al. do
            not clip; images here live in [0, 1], so clipping is the default).
        batch_size, device, seed, verbose: batching, torch device, seed of ``target="random"``, tqdm bar.

    Known limitations: DAG is not norm-bounded (||r||_inf grows by up to gamma per iteration); report the
    achieved perturbation size beside the Dice.
    """

    params = ["iterations", "gamma", "target", "clip_values", "batch_size", "seed", "verbose"]

    def __init__(
        self,
        model: nn.Module,
        *,
        iterations: int = 10,
        gamma: float = 0.03,
        target: str | np.ndarray = "flip",
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        batch_size: int = 16,
        device: str | torch.device | None = "cpu",
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.iterations = iterations
        self.gamma = gamma
        self.target = target
        self.clip_values = clip_values
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.seed = seed
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        if not isinstance(self.iterations, int) or isinstance(self.iterations, bool) or self.iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {self.iterations!r}")
        if not isinstance(self.gamma, (int, float)) or isinstance(self.gamma, bool) or not self.gamma > 0:
            raise ValueError(f"gamma must be a positive number, got {self.gamma!r}")
        if isinstance(self.target, str) and self.target not in TARGETS:
            raise ValueError(
                f"target must be one of {TARGETS} or an integer label array, got {self.target!r}"
            )
        if self.clip_values is not None and (
            len(self.clip_values) != 2 or not self.clip_values[0] < self.clip_values[1]
        ):
            raise ValueError(
                f"clip_values must be (min, max) with min < max or None, got {self.clip_values!r}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.seed, int):
            raise TypeError(f"seed must be an integer, got {type(self.seed).__name__}")

    def _adversarial_labels(self, y: Tensor, n_classes: int, generator: torch.Generator) -> Tensor:
        if isinstance(self.target, str) and self.target == "flip":
            if n_classes != 2:
                raise ValueError(
                    f"target='flip' needs a binary segmentation model, this one has {n_classes} classes"
                )
            return 1 - y
        shift = torch.randint(1, n_classes, y.shape, generator=generator)
        return (y + shift.to(y.device)) % n_classes

    def generate(self, x: Any, y: Any) -> np.ndarray:
        """Adversarial images for images ``x`` (N, C, H, W) and true label maps ``y`` (N, H, W)."""
        clip = self.clip_values
        x_np = check_images(
            x, "x", clip_values=(float(clip[0]), float(clip[1])) if clip is not None else None
        )
        y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
        if y_np.shape != (x_np.shape[0], *x_np.shape[2:]):
            raise ValueError(
                f"y must hold label maps of shape {(x_np.shape[0], *x_np.shape[2:])}, got {y_np.shape}"
            )
        if not np.issubdtype(y_np.dtype, np.integer):
            raise ValueError("y must hold integer class labels")
        explicit = None
        if not isinstance(self.target, str):
            explicit = np.asarray(self.target)
            if explicit.shape != y_np.shape:
                raise ValueError(f"target must have the shape of y {y_np.shape}, got {explicit.shape}")
        generator = torch.Generator().manual_seed(self.seed)
        was_training = self.model.training
        self.model.eval()
        out = np.empty_like(x_np)
        try:
            for start in tqdm(
                range(0, len(x_np), self.batch_size), desc="DAG", disable=not self.verbose, leave=False
            ):
                stop = start + self.batch_size
                xb = torch.from_numpy(x_np[start:stop]).to(self.device)
                yb = torch.from_numpy(y_np[start:stop].astype(np.int64)).to(self.device)
                tb = (
                    torch.from_numpy(explicit[start:stop].astype(np.int64)).to(self.device)
                    if explicit is not None
                    else None
                )
                out[start:stop] = self._attack_batch(xb, yb, tb, generator).cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def _attack_batch(
        self, x: Tensor, y: Tensor, target: Tensor | None, generator: torch.Generator
    ) -> Tensor:
        r = torch.zeros_like(x)
        adversarial = target
        for _ in range(self.iterations):
            x_adv = self._clip(x + r).requires_grad_(True)
            logits = self.model(x_adv)
            if logits.ndim != 4 or logits.shape[2:] != y.shape[1:]:
                raise ValueError(
                    f"the model must return (N, classes, H, W) logits matching y, got {tuple(logits.shape)}"
                )
            if adversarial is None:
                adversarial = self._adversarial_labels(y, logits.shape[1], generator)
            active = (logits.argmax(1) == y) & (adversarial != y)
            if not active.any():
                break
            z_adv = logits.gather(1, adversarial.unsqueeze(1)).squeeze(1)
            z_true = logits.gather(1, y.unsqueeze(1)).squeeze(1)
            objective = ((z_adv - z_true) * active).sum()
            (grad,) = torch.autograd.grad(objective, x_adv)
            norm = grad.flatten(1).abs().amax(1).view(-1, *([1] * (x.ndim - 1)))
            still = active.flatten(1).any(1).view_as(norm)
            step = torch.where(
                still & (norm > 0), self.gamma * grad / norm.clamp_min(1e-12), torch.zeros_like(grad)
            )
            r = r + step.detach()
        return self._clip(x + r).detach()

    def _clip(self, x: Tensor) -> Tensor:
        if self.clip_values is None:
            return x
        return x.clamp(float(self.clip_values[0]), float(self.clip_values[1]))

"""Resampling the eps-neighbourhood of each input (Jin & Rinard, section 5.4).

For every sample ``x`` a fresh random *maximal* perturbation ``rho`` is drawn and the pair ``x+ = x + rho``,
``x- = x - rho`` is formed. In l-inf, ``rho`` is a random vertex of the eps-cube (``rho in {-eps, +eps}^d``, a
Rademacher vector times eps); the l2 option draws ``rho`` uniformly on the eps-sphere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["NORMS", "perturbed_pair", "sample_maximal_perturbation"]

NORMS = ("linf", "l2")


def _check_eps_norm(eps: float, norm: str) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def sample_maximal_perturbation(
    x: Tensor, *, eps: float, norm: str = "linf", generator: torch.Generator | None = None
) -> Tensor:
    """A random perturbation of size exactly ``eps`` per sample, shaped like ``x``.

    Paper: Jin & Rinard 2020 (paper 003), Section 5.4 (a random maximal perturbation ``rho`` in ``{+-eps}^d``)
    and the resampling of Section 5.1 / Proposition 5.1.

    ``norm="linf"``: ``rho = eps * s`` with ``s`` uniform on ``{-1, +1}^d`` (a random vertex of the l-inf
    ball; the paper's choice). ``norm="l2"``: ``rho = eps * g / ||g||_2`` with ``g`` standard normal (uniform
    on the l2 sphere).

    Args:
        x: a batch (N, ...) whose shape, dtype and device ``rho`` takes.
        eps: the radius (>= 0).
        norm: ``"linf"`` or ``"l2"``.
        generator: a ``torch.Generator`` on ``x.device`` for reproducible draws (default: the global
            generator).
    """
    _check_eps_norm(eps, norm)
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of shape (N, ...), got shape {tuple(x.shape)}")
    if norm == "linf":
        bits = torch.randint(0, 2, x.shape, generator=generator, device=x.device)
        return (bits.to(x.dtype) * 2 - 1) * eps
    gauss = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    norms = gauss.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
    return gauss / norms * eps


def perturbed_pair(
    x: Tensor, rho: Tensor, *, clip_values: tuple[float, float] | None = (0.0, 1.0)
) -> tuple[Tensor, Tensor]:
    """``(x + rho, x - rho)``, each clipped to ``clip_values`` (``None``: no clipping).

    Paper: Jin & Rinard 2020 (paper 003), Section 5.4 (the pair ``x+ = x + rho``, ``x- = x - rho``; no
    numbered equation).

    The paper does not clip; its reference CIFAR-10 model clamps its input to [0, 1] internally, which
    clipping here mirrors for every model. Clipping makes the pair asymmetric near the boundary of the pixel
    range.
    """
    if rho.shape != x.shape:
        raise ValueError(f"rho must have the shape of x {tuple(x.shape)}, got {tuple(rho.shape)}")
    plus, minus = x + rho, x - rho
    if clip_values is not None:
        low, high = clip_values
        plus, minus = plus.clamp(low, high), minus.clamp(low, high)
    return plus, minus

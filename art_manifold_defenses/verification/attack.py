"""Projected gradient descent with random restarts (Madry et al. 2018, arXiv:1706.06083) under l-inf.

Used by :func:`~art_manifold_defenses.verification.verify` to find cheap counterexamples before the MILP, and
by the ``amd verify`` command for the PGD accuracy reported beside the verified accuracy (paper 003, Table 2:
PGD with 20 steps, 10 restarts, step ``2.5 eps / 20``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..pgd import linf_ball, linf_pgd

__all__ = ["pgd_attack"]


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 20,
    restarts: int = 10,
    step_size: float | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Untargeted l-inf PGD on the cross-entropy with ``restarts`` random starts.

    Paper: Jin & Rinard 2020 (paper 003), Appendix B (20-step l-inf PGD with 10 restarts, step ``2.5 eps /
    20``) and the "Robust" column of Table 2; the PGD of Madry et al. 2018.

    Returns ``(x_adv, fooled)``: per input the first adversarial example found (or the last iterate when none
    was), and a bool mask of the inputs whose ``x_adv`` the model misclassifies. Every ``x_adv`` lies in the
    ball and in ``clip_values``. ``step_size`` defaults to ``2.5 eps / steps``."""
    if eps < 0 or not np.isfinite(eps):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if steps < 0 or restarts < 1:
        raise ValueError(f"steps must be >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    alpha = 2.5 * eps / max(steps, 1) if step_size is None else float(step_size)
    low, high = linf_ball(x, eps, clip_values)
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with torch.no_grad():
        fooled |= model(x).argmax(dim=1) != y
    for _ in range(restarts):
        if bool(fooled.all()):
            break
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
        adv = linf_pgd(
            model,
            x,
            y,
            eps=eps,
            step_size=alpha,
            steps=steps,
            start=low + noise * (high - low),
            clip_values=clip_values,
        )
        with torch.no_grad():
            hit = (model(adv).argmax(dim=1) != y) & ~fooled
        best[hit] = adv[hit].detach()
        fooled |= hit
        if not bool(fooled.all()):
            keep = ~fooled
            best[keep] = adv[keep].detach()
    return best, fooled

"""The one projected-gradient-descent loop the package's own code uses to craft training-time and
counterexample attacks (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks",
arXiv:1706.06083).

Callers choose the start (the clean input, or a random point of the ball: the random-start distribution
differs between the papers and is the caller's) and the number of restarts; :func:`linf_pgd` is the ascent
itself. The evaluation harness attacks through ART, Foolbox, CleverHans and AutoAttack, never through this
loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["linf_ball", "linf_pgd"]


def linf_ball(x: Tensor, eps: float, clip_values: tuple[float, float] = (0.0, 1.0)) -> tuple[Tensor, Tensor]:
    """``(low, high)``: the l-inf ``eps``-ball around ``x`` intersected with the box ``clip_values``,
    element-wise."""
    return torch.clamp(x - eps, min=clip_values[0]), torch.clamp(x + eps, max=clip_values[1])


def linf_pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    start: Tensor | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> Tensor:
    """Untargeted l-inf PGD: from ``start`` (default: ``x``), ``steps`` ascent steps ``x' <- Proj(x' +
    step_size * sign(grad loss(model(x'), y)))`` onto the ``eps``-ball around ``x`` within ``clip_values``
    (Madry et al. 2018, eq. 2.1 with the l-inf sign step). Returns the last iterate (detached).

    No equation of the five papers: the PGD of Madry et al.; papers 000 (rCNN+ noise bank), 002 (``F_PGD``)
    and 003 (counterexamples, Table 2) use it with their own settings.
    """
    low, high = linf_ball(x, eps, clip_values)
    adv = x.detach().clone() if start is None else start.detach()
    for _ in range(steps):
        adv = adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(model(adv), y), adv)
        adv = torch.max(torch.min(adv.detach() + step_size * grad.sign(), high), low)
    return adv.detach()

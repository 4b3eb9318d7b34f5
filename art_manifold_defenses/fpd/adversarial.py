"""L-infinity FGSM and PGD used for the optional adversarial training of FPD (``F_FGSM`` / ``F_PGD``,
paper Sec. 4.2).

Small, self-contained torch versions (the training loop needs them per batch, on the training device, without
ART's numpy round trip). They maximise the cross-entropy of the model's (tanh) logits, as the authors'
training attacks do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pgd import linf_pgd

__all__ = ["fgsm_linf", "pgd_linf"]


def _loss_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm_linf(model: nn.Module, x: Tensor, y: Tensor, *, eps: float) -> Tensor:
    """One signed-gradient step of size ``eps``, clipped to [0, 1] (Goodfellow et al., 2015).

    Paper: Li et al. 2020 (paper 002), Section 4.2 (adversarially trained ``F_FGSM``);
    the FGSM step of Goodfellow et al.
    """
    return (x + eps * _loss_gradient(model, x, y).sign()).clamp(0.0, 1.0).detach()


def pgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    eps_step: float,
    max_iter: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient ascent in the L-infinity ``eps``-ball around ``x`` (Madry et al., 2018), clipped to
    [0, 1].

    Paper: Li et al. 2020 (paper 002), Section 4.2 (adversarially trained ``F_PGD``);
    the PGD of Madry et al.
    """
    start = None
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        start = (x.detach() + eps * noise).clamp(0.0, 1.0)
    return linf_pgd(model, x, y, eps=eps, step_size=eps_step, steps=max_iter, start=start)

"""Batch-norm running statistics of the FPD inference path.

The front and back denoising modules are the *same* modules called twice, so every batch-norm layer in them is
shared by several passes that see different inputs. During Algorithm 1 the running statistics are updated by
every pass the trainer runs -- phase 1 (front pass on ``x_noisy``), phase 2 (front pass on ``x_noisy``, back
pass on the denoised ``x'``) and the second pass (front pass on ``x'``, back pass on the denoised ``x''``).
Early in training ``x''`` is far from an image (reconstruction MSE of 10-100 on MNIST) and the parameter-free
middle layer ``x'' + NL(x'')`` is cubic in it, so the second pass pushes running variances of the shared stem
to ``1e5`` and more; the eval-mode network then normalises the *inference* pass (front on ``x``, back on the
denoised ``x'``) with statistics it never produces and predicts one class for every input.
:func:`recalibrate_batchnorm` recomputes the running statistics from the inference path alone (a cumulative
average over the given images, Ioffe & Szegedy 2015, Sec. 3.1), so eval mode normalises with the statistics of
what eval mode computes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["recalibrate_batchnorm"]


def recalibrate_batchnorm(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> int:
    """Recompute the running mean and variance of every batch-norm layer of ``model`` from ``model(x)``.

    Each layer's statistics are reset and re-estimated as the cumulative average (``momentum=None``) of the
    batch statistics of ``model``'s own forward pass (train mode, no gradient) over ``x`` in batches of
    ``batch_size``; parameters, momenta and the model's train/eval mode are left as they were. Dropout layers
    are switched to eval mode for the pass so that they do not perturb the statistics.

    Args:
        model: the network (its ``forward`` is the path whose statistics are wanted).
        x: images ``(N, C, H, W)`` (numpy or tensor), e.g. a sample of the training set.
        batch_size: batch size of the estimation passes (at least 2).
        device: where to run (default: the model's device).

    Returns:
        The number of batch-norm layers recalibrated (0 when the model has none; it is then left untouched).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 2:
        raise ValueError(
            f"batch_size must be an integer >= 2 (batch statistics need two samples), got {batch_size!r}"
        )
    data = torch.as_tensor(x)
    if data.dim() != 4 or data.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of images (N, C, H, W), got shape {tuple(data.shape)}")
    norms = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms:
        return 0
    dev = (
        torch.device(device)
        if device is not None
        else next((p.device for p in model.parameters()), torch.device("cpu"))
    )
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    try:
        model.train()
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        with torch.no_grad():
            for start in range(0, data.shape[0], batch_size):
                batch = data[start : start + batch_size]
                if batch.shape[0] < 2 and start > 0:
                    break  # a last batch of one image has no batch variance
                model(batch.to(dev, dtype=torch.float32))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        for module, mode in modes.items():
            module.training = mode
    return len(norms)

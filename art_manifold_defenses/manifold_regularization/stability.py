"""Empirical ReLU stability: how often the activation pattern is the same at ``x+`` and ``x-``.

This is the quantity the Hamming regularizer pushes up (its ``alpha -> inf`` limit counts the disagreements).
It is an *empirical* measure over random vertices of the eps-ball; a ReLU that agrees on every sampled pair
may still flip somewhere in the ball. The sound counterpart (sign constant over the whole ball by interval
bounds) belongs to the exact-verification code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..utils import as_float_tensor, check_images, resolve_device
from .perturbation import NORMS, perturbed_pair, sample_maximal_perturbation
from .relu_hooks import ReLURecorder

__all__ = ["relu_stability"]


@torch.no_grad()
def relu_stability(
    model: nn.Module,
    x: Any,
    eps: float,
    *,
    norm: str = "linf",
    samples: int = 1,
    batch_size: int = 256,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    activation_types: Sequence[type[nn.Module]] = (nn.ReLU,),
    device: str | torch.device | None = "cpu",
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, Any]:
    """Per-layer agreement of the activation pattern (``z > 0``) between ``x + rho`` and ``x - rho``.

    Paper: Jin & Rinard 2020 (paper 003), Section 5.3 (agreement of the activation patterns ``f_H`` whose
    Hamming distance eqs. 12-13 regularize), measured rather than trained.

    ``rho`` is a random maximal perturbation (a vertex of the l-inf eps-ball, or a point of the l2
    eps-sphere), drawn ``samples`` times per input. The model runs in eval mode.

    Returns:
        ``{"eps", "norm", "samples", "num_inputs", "functional_relus", "overall", "overall_unanimous",
        "layers"}`` where ``layers`` is a list of ``{"name", "units", "agreement", "unanimous"}``:
        ``agreement`` is the fraction of (input, ReLU, draw) triples whose two patterns agree, ``unanimous``
        the fraction of (input, ReLU) pairs that agree in every draw; ``overall*`` weight the layers by their
        number of ReLUs. ``functional_relus`` counts functional ReLU calls per forward pass that this measure
        cannot see.

    Raises:
        ValueError: bad ``x``/``eps``/``samples``/``batch_size``, or a model without ReLU modules.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    x_np = check_images(arr, "x", clip_values=clip_values, ndim=max(arr.ndim, 2))
    dev = resolve_device(device)
    model = model.to(dev)
    recorder = ReLURecorder(model, activation_types=activation_types)
    if not recorder.modules:
        raise ValueError(
            f"{type(model).__name__} has no {[t.__name__ for t in activation_types]} module to measure"
        )
    generator = torch.Generator(device=dev).manual_seed(seed)
    was_training = model.training
    model.eval()
    names: list[str] = []
    units: list[int] = []
    agree_sum = np.zeros(0)
    unanimous_sum = np.zeros(0)
    functional = 0
    try:
        starts = range(0, len(x_np), batch_size)
        for start in tqdm(starts, desc="relu stability", disable=not verbose, leave=False):
            xb = as_float_tensor(x_np[start : start + batch_size], dev)
            n = xb.shape[0]
            draws = []
            for _ in range(samples):
                rho = sample_maximal_perturbation(xb, eps=eps, norm=norm, generator=generator)
                x_plus, x_minus = perturbed_pair(xb, rho, clip_values=clip_values)
                with recorder:
                    model(torch.cat([x_plus, x_minus]))
                functional = max(functional, recorder.functional_calls)
                if not names:
                    names = [name for name, _ in recorder.records]
                    units = [int(z[0].numel()) for _, z in recorder.records]
                    agree_sum, unanimous_sum = np.zeros(len(names)), np.zeros(len(names))
                # (n, sum of units) indicators: 1 where the ReLU takes the same branch at x+ and x-
                draws.append(
                    torch.cat(
                        [((z[:n] > 0) == (z[n:] > 0)).flatten(1).float() for _, z in recorder.records], dim=1
                    )
                )
            stacked = torch.stack(draws)  # (samples, n, sum of units)
            for index, block in enumerate(stacked.split(units, dim=2)):
                agree_sum[index] += float(block.mean(dim=0).sum())
                unanimous_sum[index] += float(block.amin(dim=0).sum())
    finally:
        model.train(was_training)
    total = len(x_np)
    layers = [
        {
            "name": name,
            "units": u,
            "agreement": agree_sum[i] / (total * u),
            "unanimous": unanimous_sum[i] / (total * u),
        }
        for i, (name, u) in enumerate(zip(names, units, strict=True))
    ]
    weights = np.asarray(units, dtype=np.float64)
    return {
        "eps": float(eps),
        "norm": norm,
        "samples": samples,
        "num_inputs": total,
        "functional_relus": functional,
        "overall": float(np.dot([layer["agreement"] for layer in layers], weights) / weights.sum()),
        "overall_unanimous": float(np.dot([layer["unanimous"] for layer in layers], weights) / weights.sum()),
        "layers": layers,
    }

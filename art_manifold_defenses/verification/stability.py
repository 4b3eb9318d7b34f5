"""Provable ReLU stability: the share of ReLUs whose sign is fixed over the whole eps-ball (by sound bounds).

This is what decides the cost of exact verification (each unstable ReLU is one binary of the MILP) and what
training for verifiability (Xiao et al. 2019's RS loss; the Hamming term of paper 003's manifold
regularization) tries to raise. Unlike the empirical agreement between two sampled points, a ReLU counted
stable here cannot flip anywhere in the ball.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from ..utils import check_images
from .bounds import input_box
from .network import extract_network
from .verifier import BOUND_METHODS, compute_bounds

__all__ = ["StabilityMonitor", "stable_relu_fraction"]


def stable_relu_fraction(
    model: nn.Module,
    x: Any,
    eps: float,
    *,
    bounds: str = "crown",
    clip_values: tuple[float, float] = (0.0, 1.0),
    affine_types: Sequence[type[nn.Module]] = (),
    verbose: bool = False,
) -> dict[str, Any]:
    """Average over the images of ``x`` of the per-layer shares of provably active, inactive and unstable
    ReLUs.

    Paper: Xiao et al. 2019 (provably stable ReLUs make the MILP of Tjeng et al. 2019 cheap) and Jin & Rinard
    2020 (paper 003), Section 5.3; counts of stable ReLUs.

    ``bounds``: ``"ibp"`` (fast), ``"crown"`` (default) or ``"lp"`` (slow). Returns ``{"eps", "bounds",
    "images", "relus", "stable", "unstable_per_image", "layers": [{"units", "active", "inactive", "unstable"},
    ...]}`` where ``stable`` is the overall share of stable ReLUs and the layer entries are shares."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if bounds not in BOUND_METHODS:
        raise ValueError(f"bounds must be one of {BOUND_METHODS}, got {bounds!r}")
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    images = check_images(arr, "x", clip_values=clip_values, ndim=max(arr.ndim, 2))
    network = extract_network(model, images.shape[1:], affine_types=affine_types)
    sums = np.zeros((network.num_hidden, 3))
    unstable = []
    for image in tqdm(images, desc="relu stability", disable=not verbose):
        lower, upper = input_box(image, float(eps), clip_values)
        result = compute_bounds(network, lower, upper, bounds)
        for k, counts in enumerate(result.stable_counts()):
            sums[k] += (counts["active"], counts["inactive"], counts["unstable"])
        unstable.append(result.unstable_count)
    units = [layer.out_features for layer in network.layers[:-1]]
    shares = sums / len(images) / np.maximum(np.array(units), 1)[:, None]
    return {
        "eps": float(eps),
        "bounds": bounds,
        "images": len(images),
        "relus": network.relu_count,
        "stable": 1.0 - float(np.mean(unstable)) / max(network.relu_count, 1),
        "unstable_per_image": float(np.mean(unstable)),
        "layers": [
            {"units": int(n), "active": float(a), "inactive": float(i), "unstable": float(u)}
            for n, (a, i, u) in zip(units, shares, strict=True)
        ],
    }


class StabilityMonitor:
    """An ``on_epoch_end`` callback for :func:`art_manifold_defenses.training.train` (or any loop): after each
    epoch, measures :func:`stable_relu_fraction` of ``ctx.model`` on fixed images and records it in
    :attr:`history` (and in the epoch record as ``stable_relus``), so a run with and without the Hamming term
    can be compared.

    Paper: Xiao et al. 2019 (ReLU stability for faster verification) and Jin & Rinard 2020 (paper 003),
    Section 5.3 (the Hamming term); an epoch callback.
    """

    def __init__(self, x: Any, eps: float, *, bounds: str = "ibp", max_images: int = 20) -> None:
        if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
            raise ValueError(f"max_images must be a positive integer, got {max_images!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not np.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        if bounds not in BOUND_METHODS:
            raise ValueError(f"bounds must be one of {BOUND_METHODS}, got {bounds!r}")
        self.x = check_images(x, "x", ndim=max(np.asarray(x).ndim, 2))[:max_images]
        self.eps = eps
        self.bounds = bounds
        self.history: list[dict[str, Any]] = []

    def __call__(self, ctx: Any, record: dict[str, float]) -> None:
        model = ctx.model
        was_training = model.training
        model.eval()
        try:
            result = stable_relu_fraction(model, self.x, self.eps, bounds=self.bounds)
        finally:
            model.train(was_training)
        result["epoch"] = int(getattr(ctx, "epoch", len(self.history)))
        self.history.append(result)
        record["stable_relus"] = result["stable"]

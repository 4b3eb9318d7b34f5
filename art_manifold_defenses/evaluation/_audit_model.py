"""The audit's checks on the model itself, on a clean batch: input gradients (:func:`measure_gradients`,
:func:`check_gradients`: zero or non-finite gradients) and determinism (:func:`measure_determinism`,
:func:`check_determinism`: randomness attacked without EoT), Athalye et al. 2018, Section 3.1. Re-exported by
:mod:`.audit`, whose module docstring describes every flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..utils import as_float_tensor, resolve_device
from ._audit_flag import ATHALYE_2018, AuditFlag

__all__ = ["check_determinism", "check_gradients", "measure_determinism", "measure_gradients"]


# ------------------------------------------------------------------------------------------------------------
# measurements on the model (clean batch)
# ------------------------------------------------------------------------------------------------------------
def _margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per point ``max_{j != y} z_j - z_y`` (the C&W margin): its gradient does not vanish when softmax
    saturates."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.max(dim=1).values - true


def measure_gradients(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    max_points: int = 256,
) -> dict[str, Any]:
    """Input gradients of the cross-entropy and of the margin loss on (at most ``max_points``) clean points.

    Evidence for the zero / non-finite gradient checks of Athalye et al. 2018, Section 3.1.

    Returns ``n``, ``zero_fraction`` (points whose margin-loss gradient is exactly zero), ``ce_zero_fraction``
    (same for cross-entropy; a saturated softmax also gives this), ``nonfinite_fraction`` (points with a
    NaN/Inf gradient entry in either loss) and ``median_norm`` (median l2 norm of the margin-loss gradient).
    """
    dev = resolve_device(device)
    count = min(len(x), int(max_points))
    was_training = model.training
    model.eval()
    zero, ce_zero, nonfinite, norms = [], [], [], []
    try:
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            xb = as_float_tensor(x[start:stop], dev).requires_grad_(True)
            yb = torch.as_tensor(np.asarray(y[start:stop]), device=dev, dtype=torch.long)
            with torch.enable_grad():
                logits = model(xb).float()
                ce = nn.functional.cross_entropy(logits, yb, reduction="sum")
                (ce_grad,) = torch.autograd.grad(ce, xb, retain_graph=True, allow_unused=True)
                margin = _margin_loss(logits, yb).sum()
                (margin_grad,) = torch.autograd.grad(margin, xb, allow_unused=True)
            ce_grad = torch.zeros_like(xb) if ce_grad is None else ce_grad.detach()
            margin_grad = torch.zeros_like(xb) if margin_grad is None else margin_grad.detach()
            flat_ce, flat_m = ce_grad.flatten(1), margin_grad.flatten(1)
            bad = ~(torch.isfinite(flat_ce).all(1) & torch.isfinite(flat_m).all(1))
            nonfinite.append(bad.cpu().numpy())
            zero.append(((flat_m == 0).all(1) & ~bad).cpu().numpy())
            ce_zero.append(((flat_ce == 0).all(1) & ~bad).cpu().numpy())
            norms.append(torch.nan_to_num(flat_m.double().norm(dim=1), nan=0.0, posinf=0.0).cpu().numpy())
    finally:
        model.train(was_training)
    zero_arr, nonfinite_arr = np.concatenate(zero), np.concatenate(nonfinite)
    return {
        "n": int(count),
        "zero_fraction": float(zero_arr.mean()),
        "ce_zero_fraction": float(np.concatenate(ce_zero).mean()),
        "nonfinite_fraction": float(nonfinite_arr.mean()),
        "median_norm": float(np.median(np.concatenate(norms))),
    }


@torch.no_grad()
def measure_determinism(
    model: nn.Module,
    x: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    max_points: int = 256,
) -> dict[str, Any]:
    """Run the model twice on the same (at most ``max_points``) clean inputs; report how much the outputs
    change.

    Evidence for the randomness check (Athalye et al. 2018, Section 3.1; randomness calls for EoT, their
    Section 4.3).

    Returns ``n``, ``changed_fraction`` (points whose predicted class differs between the two calls) and
    ``max_logit_difference`` (largest absolute difference of an output entry).
    """
    dev = resolve_device(device)
    count = min(len(x), int(max_points))
    was_training = model.training
    model.eval()
    changed, max_diff, scale = 0, 0.0, 0.0
    try:
        for start in range(0, count, batch_size):
            xb = as_float_tensor(x[start : min(start + batch_size, count)], dev)
            first, second = model(xb).float(), model(xb).float()
            changed += int((first.argmax(1) != second.argmax(1)).sum())
            max_diff = max(max_diff, float(torch.nan_to_num((first - second).abs(), nan=float("inf")).max()))
            scale = max(scale, float(torch.nan_to_num(first.abs(), nan=0.0, posinf=0.0).max()))
    finally:
        model.train(was_training)
    return {
        "n": int(count),
        "changed_fraction": changed / max(count, 1),
        "max_logit_difference": max_diff,
        "logit_scale": scale,
    }


# ------------------------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------------------------
def check_gradients(
    stats: Mapping[str, Any] | None, *, zero_gradient_fraction: float = 0.2, bpda: bool = False
) -> list[AuditFlag]:
    """Flags from :func:`measure_gradients`: exactly-zero gradients on many points, any NaN/Inf gradient."""
    if not stats:
        return []
    flags = []
    note = (
        " The attacks used the model's BPDA surrogate, so the gradient-based results do not rely on this "
        "gradient."
        if bpda
        else (
            " Gradient-based attacks see no signal: use BPDA (set model.bpda_surrogate) or gradient-free "
            "attacks."
        )
    )
    if stats["zero_fraction"] >= zero_gradient_fraction and stats["zero_fraction"] > 0:
        flags.append(
            AuditFlag(
                "zero_gradients",
                f"the input gradient of the margin loss is exactly zero on {stats['zero_fraction']:.0%} of "
                f"{stats['n']} clean "
                f"points (threshold {zero_gradient_fraction:.0%}): shattered/masked gradients.{note}",
                {**stats, "threshold": zero_gradient_fraction, "bpda": bpda},
                ATHALYE_2018,
            )
        )
    if stats["nonfinite_fraction"] > 0:
        flags.append(
            AuditFlag(
                "nonfinite_gradients",
                f"the input gradient contains NaN or Inf on {stats['nonfinite_fraction']:.0%} of "
                f"{stats['n']} clean points "
                f"(exploding/numerically unstable gradients).{note}",
                {**stats, "bpda": bpda},
                ATHALYE_2018,
            )
        )
    return flags


def check_determinism(
    stats: Mapping[str, Any] | None, *, eot: bool, declared_stochastic: bool
) -> list[AuditFlag]:
    """Flag a model whose output changes between two identical calls while it was attacked without EoT."""
    if not stats or eot:
        return []
    random = stats["changed_fraction"] > 0 or stats["max_logit_difference"] > 1e-3 * (
        1.0 + stats.get("logit_scale", 0.0)
    )
    if not random:
        return []
    why = (
        "it declares stochastic=True but EoT was disabled (eot_samples=1)"
        if declared_stochastic
        else (
            "it does not declare `stochastic = True`, so the harness attacked it without EoT and scored it "
            "with one pass"
        )
    )
    return [
        AuditFlag(
            "nondeterministic_predictions",
            f"two identical calls changed the prediction of {stats['changed_fraction']:.0%} of {stats['n']} "
            "points (largest "
            f"output change {stats['max_logit_difference']:.3g}); {why}. Randomness hides gradients: attack "
            "with EoT.",
            dict(stats),
            ATHALYE_2018,
        )
    ]

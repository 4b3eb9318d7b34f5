"""The threat-model helpers of :func:`~.attacks.run_attack`: :func:`perturbation_norms` and
:func:`enforce_budget`, the budget policy described in :mod:`.attacks` (round-off overshoots projected back,
out-of-budget minimisation results replaced by the clean input or projected). Re-exported by :mod:`.attacks`.
"""

from __future__ import annotations

import warnings

import numpy as np

from .attack_registry import _ROUND_OFF, normalise_norm

__all__ = ["enforce_budget", "perturbation_norms"]


def perturbation_norms(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-example ``norm`` of ``x_adv - x`` (float64, shape ``(N,)``)."""
    delta = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    norm = normalise_norm(norm)
    if norm == "linf":
        return np.abs(delta).max(axis=1) if delta.shape[1] else np.zeros(len(x))
    if norm == "l2":
        return np.sqrt((delta**2).sum(axis=1))
    return np.abs(delta).sum(axis=1)


def _project(x_adv: np.ndarray, x: np.ndarray, norm: str, eps: float, rows: np.ndarray) -> np.ndarray:
    """Move ``rows`` of ``x_adv`` into the ``eps``-ball around ``x`` (linf: clipping; l2/l1: radial
    scaling)."""
    out = x_adv.copy()
    if not rows.any():
        return out
    delta = out[rows].astype(np.float64) - x[rows]
    if norm == "linf":
        delta = np.clip(delta, -eps, eps)
    else:
        norms = perturbation_norms(out[rows], x[rows], norm)
        scale = np.minimum(1.0, eps * (1 - 1e-6) / np.maximum(norms, 1e-12))
        delta = delta * scale.reshape(-1, *([1] * (delta.ndim - 1)))
    out[rows] = np.clip(x[rows] + delta, 0.0, 1.0).astype(np.float32)
    return out


def enforce_budget(
    x_adv: np.ndarray,
    x: np.ndarray,
    *,
    norm: str,
    eps: float | None,
    minimisation: bool,
    out_of_budget: str = "clean",
) -> np.ndarray:
    """Make ``x_adv`` a valid float32 batch in ``[0, 1]`` and apply the budget policy described in the module
    doc.

    Rows containing NaN/Inf are replaced by the clean input (with a ``RuntimeWarning``). For a fixed-epsilon
    attack, overshoots up to ``1e-3`` relative (round-off) are projected; larger ones are kept, for the runner
    to flag.
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.asarray(x_adv, dtype=np.float32).reshape(x.shape).copy()
    bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if bad.any():
        warnings.warn(
            f"{int(bad.sum())} adversarial examples contained NaN/Inf; their clean inputs are returned",
            RuntimeWarning,
            stacklevel=2,
        )
        out[bad] = x[bad]
    out = np.clip(out, 0.0, 1.0)
    if eps is None:
        return out
    norms = perturbation_norms(out, x, norm)
    over = norms > eps
    if not over.any():
        return out
    if minimisation:
        if out_of_budget == "clean":
            out[over] = x[over]
            return out
        return _project(out, x, norm, eps, over)
    return _project(out, x, norm, eps, over & (norms <= eps * (1 + _ROUND_OFF) + 1e-7))

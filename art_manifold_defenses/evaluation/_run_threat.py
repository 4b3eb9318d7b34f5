"""The threat-model check of :func:`~.runner.evaluate`: which adversarial examples leave their threat model,
with the tolerances it allows (re-exported by :mod:`.runner`).

Carlini et al. 2019 ("On Evaluating Adversarial Robustness", https://arxiv.org/abs/1902.06705) ask that every
adversarial example be checked against its threat model; a violating example is discarded by the runner.
"""

from __future__ import annotations

import numpy as np

from .attacks import perturbation_norms

__all__ = ["BOX_TOLERANCE", "NORM_TOLERANCE", "threat_model_violations"]

#: Slack allowed on ``||x_adv - x|| <= eps`` (float32 rounding of projections).
NORM_TOLERANCE = 1e-5
#: Slack allowed on the box ``[0, 1]``.
BOX_TOLERANCE = 1e-6


def threat_model_violations(x: np.ndarray, x_adv: np.ndarray, norm: str, eps: float | None) -> np.ndarray:
    """Per point: True when ``x_adv`` is non-finite, leaves ``[0, 1]`` (by more than ``1e-6``) or is farther
    than ``eps + 1e-5`` from ``x`` (``eps=None``: unbounded, only the box is checked).

    Checks every adversarial example against its threat model, as Carlini et al. 2019 ("On Evaluating
    Adversarial Robustness") ask.
    """
    x = np.asarray(x)
    if np.shape(x_adv) != x.shape:
        raise ValueError(f"x_adv has shape {np.shape(x_adv)}, expected the shape of x {x.shape}")
    flat = np.asarray(x_adv, dtype=np.float64).reshape(len(x), -1)
    bad = np.asarray(~np.isfinite(flat).all(axis=1), dtype=bool)
    safe = np.where(np.isfinite(flat), flat, 0.5)
    bad |= (safe < -BOX_TOLERANCE).any(axis=1) | (safe > 1 + BOX_TOLERANCE).any(axis=1)
    if eps is not None:
        norms = perturbation_norms(np.where(np.isfinite(flat), flat, 0.0).reshape(x.shape), x, norm)
        bad |= norms > float(eps) + NORM_TOLERANCE
    return np.asarray(bad, dtype=bool)

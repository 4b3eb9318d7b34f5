"""What a certification run is: its mode and bounds, the TSV columns of each mode, the checked inputs and
settings (:class:`_Run`) and the fingerprint its rows are written under (:func:`certification_fingerprint`).
Used by :mod:`.outputs` (``certify_to_tsv``, ``certify_sharded``) and :mod:`._certify_rows`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..fingerprint import image_hashes, make_fingerprint, model_hash, overwrite_hint
from ..utils import check_labels
from .certification import resolve_bounds
from .choices import INTERVALS

if TYPE_CHECKING:
    from .estimator import RenyiSmoothingPyTorch


#: The three certification modes of a TSV: ``fixed`` (CERTIFY), ``adaptive`` (input-specific sizes),
#: ``decision``.
MODES = ("fixed", "adaptive", "decision")


def _columns(bounds: Sequence[str], mode: str = "fixed") -> list[str]:
    """TSV columns of a mode. The fixed mode keeps the columns of earlier versions (every row spends
    ``n0 + n`` samples, stated by the fingerprint), so its files still resume; the other modes add ``samples``
    per row."""
    if mode == "decision":
        return [
            "idx",
            "label",
            "prediction",
            "decision",
            f"radius_{bounds[0]}",
            "correct",
            "seconds",
            "samples",
            "rounds",
            "count_top",
            "count_second",
            "p_lower",
            "p_upper",
            "image_hash",
        ]
    extra = ["samples"] if mode == "adaptive" else []
    return [
        "idx",
        "label",
        "prediction",
        *[f"radius_{b}" for b in bounds],
        "correct",
        "seconds",
        "count_top",
        "count_second",
        "p1_lower",
        "p2_upper",
        "cohen_p_lower",
        *extra,
        "image_hash",
    ]


def _mode_bounds(bound: str | None, radius: float | None, samples: str) -> tuple[str, tuple[str, ...]]:
    """The mode of a certification run and its bounds (the decision mode decides for one bound, default
    Cohen)."""
    if samples not in ("fixed", "adaptive"):
        raise ValueError(f"samples must be 'fixed' or 'adaptive', got {samples!r}")
    if radius is None:
        return samples, resolve_bounds("all" if bound is None else bound)
    if samples != "fixed":
        raise ValueError("radius (decision mode) and samples='adaptive' are two different modes: pass one")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0 <= float(radius) < np.inf:
        raise ValueError(f"radius must be a finite radius >= 0, got {radius!r}")
    chosen = "cohen" if bound is None else bound
    if chosen not in ("cohen", "renyi", "pixeldp"):
        raise ValueError(
            f"bound must be 'cohen', 'renyi' or 'pixeldp' in the decision mode (one bound), got {bound!r}"
        )
    return "decision", (chosen,)


#: What a refusal to resume a certification TSV offers.
_HINT = overwrite_hint("resume=False")


def _legacy_settings_path(path: Path) -> Path:
    """The settings sidecar of earlier versions (removed when a file is started afresh)."""
    return path.with_name(path.name + ".settings.json")


@dataclass(frozen=True)
class _Sampling:
    """The sampling settings of a certification run, as :func:`~.outputs.certify_to_tsv` received them."""

    n: int
    n0: int
    interval: str
    batch_size: int
    seed: int
    radius: float | None
    max_radius_loss: float
    first_round: int
    growth: float


@dataclass(frozen=True)
class _Run:
    """A certification run's checked inputs and the fingerprint its TSV rows are written under."""

    mode: str
    bounds: tuple[str, ...]
    x: np.ndarray
    labels: np.ndarray
    idx: np.ndarray
    hashes: list[str]
    alpha: float
    fingerprint: dict[str, Any]
    sampling: _Sampling

    @property
    def columns(self) -> list[str]:
        return _columns(self.bounds, self.mode)

    @property
    def expected(self) -> dict[int, tuple[int, str]]:
        """Index -> (label, image hash) of every image of the run (what a finished row must match)."""
        return {int(i): (int(lab), h) for i, lab, h in zip(self.idx, self.labels, self.hashes, strict=True)}

    def subset(self, positions: np.ndarray) -> _Run:
        """The same run restricted to the images at ``positions`` (same settings and fingerprint)."""
        return replace(
            self,
            x=self.x[positions],
            labels=self.labels[positions],
            idx=self.idx[positions],
            hashes=[self.hashes[int(j)] for j in positions],
        )


def _prepare_run(
    estimator: RenyiSmoothingPyTorch,
    x: Any,
    y: Any,
    indices: Any,
    *,
    n: int,
    n0: int,
    alpha: float | None,
    bound: str | None,
    interval: str,
    batch_size: int,
    seed: int,
    radius: float | None,
    samples: str,
    max_radius_loss: float,
    first_round: int,
    growth: float,
) -> _Run:
    """Check the inputs and settings of :func:`~.outputs.certify_to_tsv` /
    :func:`~.outputs.certify_sharded` (errors name the argument) and compute the run's fingerprint."""
    mode, bounds = _mode_bounds(bound, radius, samples)
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if mode == "decision" and interval != "clopper-pearson":
        raise ValueError(f"interval must be 'clopper-pearson' in the decision mode, got {interval!r}")
    x_np = estimator._check_x(x)
    labels = check_labels(y, len(x_np), estimator.nb_classes, "y")
    idx = np.arange(len(x_np)) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.shape != (len(x_np),):
        raise ValueError(f"indices must have one entry per image ({len(x_np)}), got shape {idx.shape}")
    alpha_value = float(estimator.alpha if alpha is None else alpha)
    mode_settings = _mode_settings(
        mode, radius=radius, max_radius_loss=max_radius_loss, first_round=first_round, growth=growth
    )
    fingerprint = certification_fingerprint(
        estimator,
        n=n,
        n0=n0,
        alpha=alpha_value,
        bounds=bounds,
        interval=interval,
        batch_size=batch_size,
        seed=seed,
        **mode_settings,
    )
    sampling = _Sampling(n, n0, interval, batch_size, seed, radius, max_radius_loss, first_round, growth)
    return _Run(mode, bounds, x_np, labels, idx, image_hashes(x_np), alpha_value, fingerprint, sampling)


def _mode_settings(
    mode: str, *, radius: float | None, max_radius_loss: float, first_round: int, growth: float
) -> dict[str, Any]:
    """The settings of the adaptive and decision modes that change a row (none for the fixed mode, whose
    fingerprint stays that of earlier versions)."""
    if mode == "adaptive":
        return {"mode": mode, "max_radius_loss": float(max_radius_loss), "first_round": int(first_round)}
    if mode == "decision":
        assert radius is not None
        return {
            "mode": mode,
            "radius": float(radius),
            "first_round": int(first_round),
            "growth": float(growth),
        }
    return {}


def certification_settings(
    estimator: RenyiSmoothingPyTorch,
    *,
    n: int,
    n0: int,
    alpha: float,
    bounds: Sequence[str],
    interval: str,
    batch_size: int,
    seed: int,
    **mode: Any,
) -> dict[str, Any]:
    """The settings a certification TSV is written with (part of its fingerprint, reported by the summary);
    ``mode``: the adaptive or decision mode's settings (``mode``, ``radius``, ``max_radius_loss``,
    ``first_round``, ``growth``)."""
    return {
        "n": int(n),
        "n0": int(n0),
        "alpha": float(alpha),
        "sigma": estimator.sigma,
        "bounds": list(bounds),
        "interval": interval,
        "batch_size": int(batch_size),
        "seed": int(seed),
        **mode,
    }


def certification_fingerprint(estimator: RenyiSmoothingPyTorch, **settings: Any) -> dict[str, Any]:
    """The fingerprint of a certification TSV: :func:`certification_settings` (``settings`` are its keyword
    arguments), the number of classes, and the hashes of the base model (module types and state dict) and of
    every preprocessing module of the estimator (the class names of the others).
    """
    preprocessing = [
        model_hash(op) if isinstance(op, nn.Module) else type(op).__name__
        for op in estimator.active_preprocessing
    ]
    return make_fingerprint(
        "certify",
        model=model_hash(estimator.user_model),
        preprocessing=preprocessing,
        nb_classes=int(estimator.nb_classes),
        **certification_settings(estimator, **settings),
    )

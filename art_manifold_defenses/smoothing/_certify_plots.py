"""Certification figures: certified accuracy vs radius from certification TSVs
(:func:`plot_certified_accuracy`) and the bound comparison of Li et al.'s appendix A
(:func:`plot_bound_comparison`). Re-exported by :mod:`.outputs`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .._figures import save_figure
from ._certify_summary import read_certify_tsv
from .bounds import cohen_radius, pixeldp_radius, renyi_radius


def plot_certified_accuracy(
    tsvs: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    bounds: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Certified accuracy vs radius, one line per (TSV, bound); ``tsvs`` maps a label (e.g. ``"sigma=0.7"``)
    to a certification TSV, or is a single TSV.

    Paper: Li et al. 2019 (paper 004), Fig. 1 (accuracy lower bounds vs attack size, with PixelDP), and Cohen
    et al. 2019's certified-accuracy curves; a plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = {"": tsvs} if isinstance(tsvs, (str, os.PathLike)) else dict(tsvs)
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"renyi": "-", "cohen": "--", "pixeldp": ":"}
    for label, tsv in sources.items():
        rows = read_certify_tsv(tsv)
        correct = np.array([int(r["correct"]) for r in rows], dtype=bool)
        names = [c[len("radius_") :] for c in rows[0] if c.startswith("radius_")] if rows else []
        for b in (
            names if bounds is None else [b for b in bounds if f"radius_{b}" in (rows[0] if rows else {})]
        ):
            rad = np.array([float(r[f"radius_{b}"]) for r in rows])
            grid = np.linspace(0, max(float(rad.max()) * 1.05, 0.1), 200)
            acc = [float(np.mean(correct & (rad > 0) & (rad >= g))) for g in grid]
            ax.plot(grid, acc, styles.get(b, "-"), label=f"{label} {b}".strip())
    ax.set_xlabel("l2 radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(fig, out_path, dpi=120)


def plot_bound_comparison(
    out_path: str | os.PathLike[str],
    *,
    sigma: float = 1.0,
    p2_values: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.3),
) -> Path:
    """The comparison of Li et al.'s appendix A (Fig. 4), extended with Cohen et al.: the radius of each bound
    over ``p1`` for several ``p2`` (one panel per ``p2``), at noise ``sigma``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(p2_values), figsize=(3.2 * len(p2_values), 3.2), sharey=True, squeeze=False
    )
    for ax, p2 in zip(axes[0], p2_values, strict=True):
        p1 = np.linspace(
            max(p2, 0.1 - p2) + 1e-3, 1.0 - p2 - 1e-4, 300
        )  # valid top-two pairs: p1 + p2 >= 0.2
        ax.plot(p1, renyi_radius(p1, p2, sigma), "r-", label="Rényi (Li et al.)")
        ax.plot(p1, pixeldp_radius(p1, p2, sigma), "b:", label="PixelDP")
        ax.plot(p1, cohen_radius(p1, sigma, np.full_like(p1, p2)), "k--", label="Cohen et al.")
        ax.set_title(f"p2 = {p2:g}")
        ax.set_xlabel("p1")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"certified l2 radius (sigma = {sigma:g})")
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, out_path, dpi=120)

"""The PNG figures: :func:`plot_robustness_curves` (accuracy against epsilon per attack of one record, one
panel per norm) and :func:`plot_accuracy_vs_epsilon` (the per-point worst case of several models in one
figure, the demo's). matplotlib with the Agg backend, imported when a figure is drawn. Re-exported by
:mod:`.report`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._figures import save_figure
from ._report_compare import _NORM_LABEL, comparison_grid, comparison_norms, measured_grid
from ._report_record import worst_case_curve

__all__ = ["plot_accuracy_vs_epsilon", "plot_robustness_curves"]


def _curve_groups(
    record: Mapping[str, Any],
) -> dict[str, dict[tuple[str, str, str], list[Mapping[str, Any]]]]:
    groups: dict[str, dict[tuple[str, str, str], list[Mapping[str, Any]]]] = {}
    for a in record["attacks"]:
        if a.get("error") is not None:
            continue
        key = (a["library"], a["attack"], json.dumps(a.get("params", {}), sort_keys=True))
        groups.setdefault(a["norm"], {}).setdefault(key, []).append(a)
    return groups


def plot_robustness_curves(
    record: Mapping[str, Any], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Accuracy vs epsilon per attack, one panel per norm, written as a PNG (matplotlib, Agg backend).

    Fixed-budget attacks give one marker per epsilon (a line from the clean accuracy at 0 when the suite
    sweeps epsilon); minimisation attacks give the empirical curve
    ``mean(correct clean and ||delta_i|| > eps)`` from their per-point perturbation norms (up to their
    budget). The thick black line is the per-point worst case at each epsilon of the panel
    (:func:`worst_case_curve`): at most every attack's line, since a point counts only if it survives every
    attack allowed that budget; the dashed line is the suite's overall worst case.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = _curve_groups(record)
    clean = float(record["clean_accuracy"])
    clean_correct = np.asarray(record["per_point"]["clean_correct"], dtype=bool)
    panels = sorted(groups) or ["linf"]
    fig, axes = plt.subplots(1, len(panels), figsize=(8.0 * len(panels), 4.2), squeeze=False)
    for ax, norm in zip(axes[0], panels, strict=True):
        for (library, attack, params), members in sorted(groups.get(norm, {}).items()):
            label = f"{library}/{attack}" + ("" if params == "{}" else f" {params}")
            label = label if len(label) <= 48 else label[:45] + "..."
            bounded = sorted((m for m in members if m["eps"] is not None), key=lambda m: m["eps"])
            if members[0].get("minimisation") and any(m.get("norms") for m in members):
                best = max(members, key=lambda m: math.inf if m["eps"] is None else m["eps"])
                norms = np.array([math.inf if v is None else v for v in best["norms"]], dtype=np.float64)
                finite = norms[np.isfinite(norms)]
                top = (
                    best["eps"]
                    if best["eps"] is not None
                    else (float(finite.max()) * 1.05 if len(finite) else 1.0)
                )
                grid = np.linspace(0.0, top, 100)
                acc = [float((clean_correct & ~(norms <= e)).mean()) for e in grid]
                ax.plot(grid, acc, label=label)
            elif len(bounded) > 1:
                xs = [0.0] + [m["eps"] for m in bounded]
                ys = [clean] + [m["accuracy"] for m in bounded]
                ax.plot(xs, ys, marker="o", label=label)
            elif bounded:  # a single budget: a marker, not a line that would suggest a linear decline
                ax.plot(
                    [bounded[0]["eps"]], [bounded[0]["accuracy"]], marker="o", linestyle="none", label=label
                )
        worst_x, worst_y = worst_case_curve(record, norm)
        # drawn under the attacks' lines (zorder 2), wide enough to show where an attack's line lies on it
        ax.plot(
            worst_x,
            worst_y,
            color="black",
            linewidth=3.5,
            alpha=0.8,
            marker="D",
            markersize=5,
            zorder=1.5,
            label="per-point worst case",
        )
        ax.plot([0.0], [clean], marker="s", color="black", linestyle="none", label="clean")
        ax.axhline(
            float(record["robust_accuracy"]),
            color="black",
            linestyle="--",
            linewidth=1,
            label="worst case (suite)",
        )
        ax.set_xlabel(f"epsilon ({norm})")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{title or record['model']} -- {norm}")
        ax.grid(alpha=0.3)
        # beside the panel, not over the curves (a legend inside covered data points)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return save_figure(fig, path, dpi=110)


def plot_accuracy_vs_epsilon(
    models: Sequence[tuple[str, Mapping[str, Any]]],
    path: str | os.PathLike[str],
    *,
    baseline: str | None = None,
    title: str | None = None,
) -> Path:
    """Accuracy against epsilon of several models in one figure: one panel per norm, one line per model, each
    the per-point worst case over every attack of its suite at each epsilon of :func:`comparison_grid`
    (:func:`worst_case_curve`); the model named ``baseline`` is drawn black and dashed. PNG, Agg backend.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    records = [record for _, record in models]
    norms = comparison_norms(records) or ["linf"]
    markers = ["o", "s", "^", "v", "D", "P", "X", "*", "<", ">"]
    fig, axes = plt.subplots(1, len(norms), figsize=(6.4 * len(norms) + 2.2, 4.2), squeeze=False)
    for ax, norm in zip(axes[0], norms, strict=True):
        grid = comparison_grid(records, norm)
        for index, (name, record) in enumerate(models):
            measured = measured_grid(record, norm, grid)
            if not measured:  # not attacked in this norm: no line (it would show the clean accuracy)
                continue
            xs, ys = worst_case_curve(record, norm, measured)
            style: dict[str, Any] = (
                {"color": "black", "linestyle": "--", "linewidth": 2.0}
                if name == baseline
                else {"linewidth": 1.5}
            )
            ax.plot(xs, ys, marker=markers[index % len(markers)], markersize=5, label=name, **style)
        ax.set_xlabel(f"epsilon ({_NORM_LABEL.get(norm, norm)})")
        ax.set_ylabel("accuracy (per-point worst case of the suite)")
        ax.set_ylim(-0.02, 1.02)
        if grid:
            ax.set_xticks(grid)
        ax.set_title(f"{title + ' -- ' if title else ''}{_NORM_LABEL.get(norm, norm)}")
        ax.grid(alpha=0.3)
    # one legend for every panel (every model, in order), right of the last one, not over the curves
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for line in ax.get_lines():
            handles.setdefault(str(line.get_label()), line)
    order = [name for name, _ in models if name in handles]
    axes[0][-1].legend(
        [handles[name] for name in order],
        order,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
    )
    return save_figure(fig, path, dpi=110)

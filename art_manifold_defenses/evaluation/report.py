"""Reports of an evaluation: ``results.json`` (the record), a Markdown table and PNG robustness curves.

The JSON record (schema ``art-manifold-defenses/results/1``) holds:

* ``model``, ``dataset``, ``n``, ``seed``, ``clean_accuracy``, ``robust_accuracy`` (fractions in [0, 1]; robust =
  per-point worst case over every attack that ran);
* ``attacks``: one entry per attack with ``library``, ``attack``, ``norm``, ``eps``, ``params``, ``name``, ``label``,
  ``accuracy``, ``seconds``, ``median_norm``, ``violations``, ``repeats``, ``eot_samples``, ``bpda``, ``error`` and
  the per-point ``correct`` list (so the worst case can be recomputed, see :func:`recompute_robust_accuracy`);
* ``audit``: ``{"flags": [{code, message, evidence, reference}], "gradients": ..., "determinism": ...}``;
* ``versions`` (torch, art, foolbox, cleverhans, torchattacks, numpy, package), ``settings``, ``seconds``;
* RobustBench-style fields (https://github.com/RobustBench/robustbench, ``model_info`` records), in percent with two
  decimals: ``clean_acc``, ``robust_acc``, ``autoattack_acc`` (``None`` when AutoAttack did not run), ``reported``
  (the paper's number, ``None`` unless given), ``threat_model`` (``"Linf"``/``"L2"``/``"L1"``/``"mixed"``), ``eps``,
  ``number_forward_passes``;
* ``per_point``: ``clean_correct`` and ``robust_correct`` lists.

Markdown and PNG are rendered from the record only, so they can be regenerated from a saved ``results.json``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import write_text_atomic
from .results import RESULTS_FORMAT, EvaluationResult, result_to_dict
from .results import json_clean as _json_clean

__all__ = [
    "RESULTS_FORMAT",
    "combined_markdown",
    "load_results",
    "markdown_table",
    "plot_robustness_curves",
    "recompute_robust_accuracy",
    "worst_case_curve",
    "result_to_dict",
    "write_report",
]


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``results.json`` record (``ValueError`` if it is not one).

    No paper or equation: report I/O.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not an art-manifold-defenses results record (format {RESULTS_FORMAT})")
    return data


def recompute_robust_accuracy(record: Mapping[str, Any]) -> float:
    """The per-point worst case recomputed from the per-attack ``correct`` lists of a record.

    The per-point worst case of Carlini et al. 2019 / Croce & Hein 2020, from stored results; no equation.
    """
    robust = np.asarray(record["per_point"]["clean_correct"], dtype=bool).copy()
    for attack in record["attacks"]:
        if attack.get("error") is None:
            robust &= np.asarray(attack["correct"], dtype=bool)
    return float(robust.mean()) if len(robust) else 0.0


# --------------------------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------------------------
def _fmt_eps(eps: float | None) -> str:
    return "unbounded" if eps is None else f"{eps:g}"


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _summary_lines(record: Mapping[str, Any]) -> list[str]:
    settings = record.get("settings", {})
    extra = []
    if settings.get("stochastic"):
        extra.append(f"stochastic model: EoT {settings.get('eot_samples')} samples, majority of {settings.get('votes')} "
                     f"votes, worst of {settings.get('repeats')} repeats")  # fmt: skip
    if settings.get("bpda"):
        extra.append("BPDA surrogate used for gradient-based attacks")
    lines = [
        f"- model: `{record['model']}`, dataset: `{record.get('dataset')}`, n = {record['n']}, seed = {record['seed']}",
        f"- clean accuracy: **{_fmt_pct(record['clean_accuracy'])}**",
        f"- robust accuracy (per-point worst case over {sum(a.get('error') is None for a in record['attacks'])} attacks): "
        f"**{_fmt_pct(record['robust_accuracy'])}**",
    ]
    if record.get("autoattack_acc") is not None:
        lines.append(f"- AutoAttack accuracy: {record['autoattack_acc']:.2f}%")
    lines += [f"- {e}" for e in extra]
    return lines


def markdown_table(record: Mapping[str, Any], *, title: str | None = None, curves: str | None = None) -> str:
    """The Markdown report of a record: summary, one row per attack, the audit flags and (optionally) the curves.

    No paper or equation: report formatting.
    """
    out = [f"# {title or 'Evaluation: ' + str(record['model'])}", ""]
    out += _summary_lines(record)
    out += ["", "| attack | library | norm | eps | accuracy | median perturbation | violations | seconds |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for a in record["attacks"]:
        if a.get("error") is not None:
            out.append(
                f"| {a['label']} | {a['library']} | {a['norm']} | {_fmt_eps(a['eps'])} | failed: {a['error']} | | | |"
            )
            continue
        median = "" if a.get("median_norm") is None else f"{a['median_norm']:.4g}"
        label = a["label"] + (f" ({a['note']})" if a.get("note") else "")
        out.append(f"| {label} | {a['library']} | {a['norm']} | {_fmt_eps(a['eps'])} | {_fmt_pct(a['accuracy'])} | "
                   f"{median} | {a.get('violations', 0)} | {a['seconds']:.1f} |")  # fmt: skip
    flags = record.get("audit", {}).get("flags", [])
    out += ["", f"## Gradient-masking audit: {len(flags)} flag(s)", ""]
    out += [f"- **{f['code']}**: {f['message']}" for f in flags] or [
        "- no flag raised (this does not prove robustness)."
    ]
    if curves:
        out += ["", f"![robustness curves]({curves})"]
    versions = record.get("versions", {})
    if versions:
        out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    return "\n".join(out) + "\n"


def combined_markdown(
    sections: Sequence[tuple[str, Mapping[str, Any], str | None]], *, title: str, preamble: str = ""
) -> str:
    """One report for several records (the demo): a summary table, then each record's section.

    ``sections`` = ``(name, record, curves image path relative to the report or None)``.
    """
    out = [f"# {title}", ""]
    if preamble:
        out += [preamble, ""]
    out += [
        "| model | clean accuracy | robust accuracy | AutoAttack | audit flags |",
        "|---|---|---|---|---|",
    ]
    for name, record, _ in sections:
        aa = "n/a" if record.get("autoattack_acc") is None else f"{record['autoattack_acc']:.2f}%"
        codes = sorted({f["code"] for f in record.get("audit", {}).get("flags", [])})
        out.append(f"| {name} | {_fmt_pct(record['clean_accuracy'])} | {_fmt_pct(record['robust_accuracy'])} | {aa} | "
                   f"{', '.join(codes) or 'none'} |")  # fmt: skip
    for name, record, curves in sections:
        body = markdown_table(record, title=name, curves=curves)
        out += [""] + [
            ("#" + line if line.startswith("#") else line) for line in body.splitlines()
        ]  # demote headings
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------------------------------------------------
def _within(eps: float, budget: float) -> bool:
    return eps <= budget * (1 + 1e-9) + 1e-12


def worst_case_curve(
    record: Mapping[str, Any], norm: str, eps_values: Sequence[float] | None = None
) -> tuple[list[float], list[float]]:
    """The per-point worst-case accuracy of a record's ``norm`` attacks as a function of epsilon.

    The per-point worst case of Carlini et al. 2019 / Croce & Hein 2020, taken per budget; no equation of a paper.
    At each ``e`` a point counts as robust when it is correct clean, survives every fixed-budget attack of ``norm``
    with ``eps <= e`` (its ``correct`` entry), and every minimisation attack of ``norm`` left it unbroken at ``e``
    (no stored perturbation norm ``<= e``; a minimisation attack without norms counts through ``correct`` once its
    budget is ``<= e``). Failed attacks are skipped. ``eps_values`` defaults to 0 and every finite budget of the
    ``norm`` attacks (a grid up to the largest stored norm when there is none). Returns ``(eps, accuracy)`` lists.
    """
    robust0 = np.asarray(record["per_point"]["clean_correct"], dtype=bool)
    attacks = [a for a in record["attacks"] if a.get("error") is None and a["norm"] == norm]
    per_point_norms: list[np.ndarray | None] = []
    for a in attacks:
        values = a.get("norms")
        if a.get("minimisation") and values is not None and len(values) == len(robust0):
            per_point_norms.append(np.array([math.inf if v is None else v for v in values], dtype=np.float64))
        else:
            per_point_norms.append(None)
    if eps_values is None:
        budgets = sorted({float(a["eps"]) for a in attacks if a["eps"] is not None})
        if budgets:
            eps_values = [0.0, *budgets]
        else:
            finite = [v[np.isfinite(v)] for v in per_point_norms if v is not None]
            top = max((float(v.max()) for v in finite if len(v)), default=0.0)
            eps_values = list(np.linspace(0.0, top * 1.05, 50)) if top > 0 else [0.0]
    xs, ys = [], []
    for e in eps_values:
        robust = robust0.copy()
        for a, norms in zip(attacks, per_point_norms, strict=True):
            if a["eps"] is not None and _within(float(a["eps"]), float(e)):
                robust &= np.asarray(a["correct"], dtype=bool)
            if norms is not None:
                robust &= ~(norms <= e)
        xs.append(float(e))
        ys.append(float(robust.mean()) if len(robust) else 0.0)
    return xs, ys


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

    No paper or equation: a plot of accuracy against the attack budget.

    Fixed-budget attacks give one marker per epsilon (a line from the clean accuracy at 0 when the suite sweeps
    epsilon); minimisation attacks give the empirical curve ``mean(correct clean and ||delta_i|| > eps)`` from
    their per-point perturbation norms (up to their budget). The thick black line is the per-point worst case at each
    epsilon of the panel (:func:`worst_case_curve`): at most every attack's line, since a point counts only if it
    survives every attack allowed that budget; the dashed line is the suite's overall worst case.
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
        ax.plot(worst_x, worst_y, color="black", linewidth=3.5, alpha=0.8, marker="D", markersize=5, zorder=1.5,
                label="per-point worst case")  # fmt: skip
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------------------------
def write_report(result: EvaluationResult | Mapping[str, Any], out_dir: str | os.PathLike[str], *,
                 title: str | None = None) -> dict[str, Path]:  # fmt: skip
    """Write ``results.json``, ``results.md`` and ``curves.png`` to ``out_dir``; return their paths.

    No paper or equation: writes the report files.
    """
    record = dict(result) if isinstance(result, Mapping) else result_to_dict(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_text_atomic(out / "results.json", json.dumps(_json_clean(record), indent=2, sort_keys=False) + "\n")
    curves = plot_robustness_curves(record, out / "curves.png", title=title)
    md_path = out / "results.md"
    md_path.write_text(markdown_table(record, title=title, curves=curves.name))
    return {"json": json_path, "markdown": md_path, "curves": curves}

"""Reports of an evaluation: ``results.json`` (the record), a Markdown table and PNG robustness curves.

The JSON record (schema ``art-manifold-defenses/results/1``) holds:

* ``model``, ``dataset``, ``n``, ``seed``, ``clean_accuracy``, ``robust_accuracy`` (fractions in [0, 1];
  robust = per-point worst case over every attack that ran);
* ``attacks``: one entry per attack with ``library``, ``attack``, ``norm``, ``eps``, ``params``, ``name``,
  ``label``, ``accuracy``, ``seconds``, ``median_norm``, ``violations``, ``repeats``, ``eot_samples``,
  ``bpda``, ``error`` and the per-point ``correct`` list (so the worst case can be recomputed, see
  :func:`recompute_robust_accuracy`);
* ``audit``: ``{"flags": [{code, message, evidence, reference}], "gradients": ..., "determinism": ...}``;
* ``versions`` (torch, art, foolbox, cleverhans, torchattacks, numpy, package), ``settings``, ``seconds``;
* RobustBench-style fields (https://github.com/RobustBench/robustbench, ``model_info`` records), in percent
  with two decimals: ``clean_acc``, ``robust_acc``, ``autoattack_acc`` (``None`` when AutoAttack did not run),
  ``reported`` (the paper's number, ``None`` unless given), ``threat_model``
  (``"Linf"``/``"L2"``/``"L1"``/``"mixed"``), ``eps``, ``number_forward_passes``;
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
    "COMPARISON_NORMS",
    "DEMO_FIGURE",
    "DEMO_FORMAT",
    "combined_markdown",
    "comparison_grid",
    "comparison_norms",
    "comparison_table",
    "load_results",
    "measured_grid",
    "markdown_table",
    "plot_accuracy_vs_epsilon",
    "plot_robustness_curves",
    "read_against_baseline",
    "recompute_robust_accuracy",
    "worst_case_curve",
    "result_to_dict",
    "wilson_interval",
    "write_demo_report",
    "write_report",
]


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``results.json`` record (``ValueError`` if it is not one)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not an art-manifold-defenses results record (format {RESULTS_FORMAT})")
    return data


def recompute_robust_accuracy(record: Mapping[str, Any]) -> float:
    """The per-point worst case recomputed from the per-attack ``correct`` lists of a record.

    The per-point worst case of Carlini et al. 2019 / Croce & Hein 2020, from stored results.
    """
    robust = np.asarray(record["per_point"]["clean_correct"], dtype=bool).copy()
    for attack in record["attacks"]:
        if attack.get("error") is None:
            robust &= np.asarray(attack["correct"], dtype=bool)
    return float(robust.mean()) if len(robust) else 0.0


# ------------------------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------------------------
def _fmt_eps(eps: float | None) -> str:
    return "unbounded" if eps is None else f"{eps:g}"


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _summary_lines(record: Mapping[str, Any]) -> list[str]:
    settings = record.get("settings", {})
    extra = []
    if settings.get("stochastic"):
        extra.append(
            f"stochastic model: EoT {settings.get('eot_samples')} samples, majority of "
            f"{settings.get('votes')} "
            f"votes, worst of {settings.get('repeats')} repeats"
        )
    if settings.get("bpda"):
        extra.append("BPDA surrogate used for gradient-based attacks")
    lines = [
        f"- model: `{record['model']}`, dataset: `{record.get('dataset')}`, n = {record['n']}, seed = "
        f"{record['seed']}",
        f"- clean accuracy: **{_fmt_pct(record['clean_accuracy'])}**",
        "- robust accuracy (per-point worst case over "
        f"{sum(a.get('error') is None for a in record['attacks'])} attacks): "
        f"**{_fmt_pct(record['robust_accuracy'])}**",
    ]
    if record.get("autoattack_acc") is not None:
        lines.append(f"- AutoAttack accuracy: {record['autoattack_acc']:.2f}%")
    lines += [f"- {e}" for e in extra]
    return lines


def markdown_table(record: Mapping[str, Any], *, title: str | None = None, curves: str | None = None) -> str:
    """The Markdown report of a record: summary, one row per attack, the audit flags and (optionally) the
    curves."""
    out = [f"# {title or 'Evaluation: ' + str(record['model'])}", ""]
    out += _summary_lines(record)
    out += [
        "",
        "| attack | library | norm | eps | accuracy | median perturbation | violations | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in record["attacks"]:
        if a.get("error") is not None:
            out.append(
                f"| {a['label']} | {a['library']} | {a['norm']} | {_fmt_eps(a['eps'])} | failed: "
                f"{a['error']} | | | |"
            )
            continue
        median = "" if a.get("median_norm") is None else f"{a['median_norm']:.4g}"
        label = a["label"] + (f" ({a['note']})" if a.get("note") else "")
        out.append(
            f"| {label} | {a['library']} | {a['norm']} | {_fmt_eps(a['eps'])} | {_fmt_pct(a['accuracy'])} | "
            f"{median} | {a.get('violations', 0)} | {a['seconds']:.1f} |"
        )
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
    sections: Sequence[tuple[str, Mapping[str, Any], str | None]],
    *,
    title: str,
    preamble: str = "",
    summary: bool = True,
) -> str:
    """One report for several records: a summary table (unless ``summary`` is false), then each record's
    section.

    ``sections`` = ``(name, record, curves image path relative to the report or None)``.
    """
    out = [f"# {title}", ""]
    if preamble:
        out += [preamble, ""]
    if summary:
        out += [
            "| model | clean accuracy | robust accuracy | AutoAttack | audit flags |",
            "|---|---|---|---|---|",
        ]
    for name, record, _ in sections if summary else ():
        aa = "n/a" if record.get("autoattack_acc") is None else f"{record['autoattack_acc']:.2f}%"
        codes = sorted({f["code"] for f in record.get("audit", {}).get("flags", [])})
        out.append(
            f"| {name} | {_fmt_pct(record['clean_accuracy'])} | {_fmt_pct(record['robust_accuracy'])} | {aa} "
            "| "
            f"{', '.join(codes) or 'none'} |"
        )
    for name, record, curves in sections:
        body = markdown_table(record, title=name, curves=curves)
        out += [""] + [
            ("#" + line if line.startswith("#") else line) for line in body.splitlines()
        ]  # demote headings
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------------------
# curves
# ------------------------------------------------------------------------------------------------------------
def _within(eps: float, budget: float) -> bool:
    return eps <= budget * (1 + 1e-9) + 1e-12


def worst_case_curve(
    record: Mapping[str, Any], norm: str, eps_values: Sequence[float] | None = None
) -> tuple[list[float], list[float]]:
    """The per-point worst-case accuracy of a record's ``norm`` attacks as a function of epsilon.

    The per-point worst case of Carlini et al. 2019 / Croce & Hein 2020, taken per budget. At each ``e`` a
    point counts as robust when it is correct clean, survives every fixed-budget attack of ``norm`` with
    ``eps <= e`` (its ``correct`` entry), and every minimisation attack of ``norm`` left it unbroken at ``e``
    (no stored perturbation norm ``<= e``; a minimisation attack without norms counts through ``correct`` once
    its budget is ``<= e``). Failed attacks are skipped. ``eps_values`` defaults to 0 and every finite budget
    of the ``norm`` attacks (a grid up to the largest stored norm when there is none). Returns
    ``(eps, accuracy)`` lists.
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------------------
def write_report(
    result: EvaluationResult | Mapping[str, Any], out_dir: str | os.PathLike[str], *, title: str | None = None
) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and ``curves.png`` to ``out_dir``; return their paths."""
    record = dict(result) if isinstance(result, Mapping) else result_to_dict(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_text_atomic(
        out / "results.json", json.dumps(_json_clean(record), indent=2, sort_keys=False) + "\n"
    )
    curves = plot_robustness_curves(record, out / "curves.png", title=title)
    md_path = out / "results.md"
    md_path.write_text(markdown_table(record, title=title, curves=curves.name))
    return {"json": json_path, "markdown": md_path, "curves": curves}


# ------------------------------------------------------------------------------------------------------------
# several models side by side (the demo)
# ------------------------------------------------------------------------------------------------------------
#: The norms of the comparison figure and table, in panel order.
COMPARISON_NORMS = ("linf", "l2", "l1")
_NORM_LABEL = {"linf": "l-inf", "l2": "l2", "l1": "l1"}
_Z95 = 1.959963984540054  # the 97.5% normal quantile


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); ``(0, 1)`` when ``n`` is 0.

    Wilson 1927, "Probable inference, the law of succession, and statistical inference", JASA 22:209, the
    score interval ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def comparison_grid(records: Sequence[Mapping[str, Any]], norm: str) -> list[float]:
    """0 and every budget the records' ``norm`` attacks report robustness at (union over the records).

    The budgets are :func:`~.audit.reported_budgets` of the attacks that ran (unbounded and large-epsilon
    sanity checks left out), so the grid is the suite's own.
    """
    from types import SimpleNamespace

    from .audit import reported_budgets

    attacks = [
        SimpleNamespace(norm=a["norm"], eps=a["eps"])
        for r in records
        for a in r["attacks"]
        if a.get("error") is None and a["norm"] == norm
    ]
    budgets = reported_budgets(attacks).get(norm, [])
    return [0.0, *budgets] if budgets else []


def comparison_norms(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The norms, in :data:`COMPARISON_NORMS` order, at which some record reports a finite budget."""
    return [norm for norm in COMPARISON_NORMS if comparison_grid(records, norm)]


def measured_grid(record: Mapping[str, Any], norm: str, grid: Sequence[float]) -> list[float]:
    """The epsilons of ``grid`` at which ``record`` was attacked in ``norm``: 0 and those at or above its
    smallest ``norm`` budget (every one when an attack of ``norm`` is unbounded); none when no attack of
    ``norm`` ran. Below its smallest budget the per-point worst case would be the clean accuracy, which no
    attack measured.
    """
    attacks = [a for a in record["attacks"] if a.get("error") is None and a["norm"] == norm]
    if not attacks:
        return []
    if any(a["eps"] is None for a in attacks):
        return [float(e) for e in grid]
    smallest = min(float(a["eps"]) for a in attacks)
    return [float(e) for e in grid if e == 0 or _within(smallest, float(e))]


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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _eps_list(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def read_against_baseline(
    worst_case: Sequence[tuple[float, float]],
    baseline_worst_case: Sequence[tuple[float, float]],
    *,
    n: int,
    baseline_n: int,
    clean_accuracy: float,
    baseline_clean_accuracy: float,
    flags: Sequence[str] = (),
    clean_margin: float = 0.05,
    is_baseline: bool = False,
) -> str:
    """A one-line reading of a model's row beside the baseline's, computed from the numbers only.

    ``worst_case`` and ``baseline_worst_case`` are ``(eps, accuracy)`` pairs at the same epsilons (> 0; an
    epsilon missing from the baseline is skipped) on ``n`` and ``baseline_n`` attacked points;
    ``clean_accuracy`` and ``baseline_clean_accuracy`` are test accuracies. The parts, joined by ``"; "``:

    * ``"flagged: CODES"`` first when the gradient-masking audit raised flags;
    * for the baseline itself (``is_baseline``): ``"the reference"``;
    * ``"more robust than the baseline at eps E"`` where the model's interval lies above the baseline's;
      ``"possibly more robust than the baseline at eps E (the 95% intervals overlap)"`` where its accuracy is
      above the baseline's interval but the intervals overlap; ``"no robustness beyond the baseline"`` when
      its accuracy is within or below the baseline's interval at every epsilon (``" (less robust at eps E)"``
      added where its interval lies below the baseline's; beside a "more robust" part:
      ``"less robust than the baseline at eps E"``);
    * ``"less accurate than the baseline on clean data (-P points)"`` when the clean accuracy is more than
      ``clean_margin`` under the baseline's (``"more accurate ..."`` when above).
    """
    parts = [f"flagged: {', '.join(flags)}"] if flags else []
    if is_baseline:
        return "; ".join([*parts, "the reference"])
    baseline = {round(float(e), 12): float(a) for e, a in baseline_worst_case}
    above, possibly, below = [], [], []
    for eps, accuracy in worst_case:
        base = baseline.get(round(float(eps), 12))
        if base is None or eps <= 0:
            continue
        low, high = wilson_interval(round(accuracy * n), n)
        base_low, base_high = wilson_interval(round(base * baseline_n), baseline_n)
        if low > base_high:
            above.append(eps)
        elif accuracy > base_high:
            possibly.append(eps)
        elif high < base_low:
            below.append(eps)
    if above:
        parts.append(f"more robust than the baseline at eps {_eps_list(above)}")
    if possibly:
        parts.append(
            f"possibly more robust than the baseline at eps {_eps_list(possibly)} (the 95% intervals overlap)"
        )
    if not above and not possibly:
        parts.append(
            "no robustness beyond the baseline"
            + (f" (less robust at eps {_eps_list(below)})" if below else "")
        )
    elif below:
        parts.append(f"less robust than the baseline at eps {_eps_list(below)}")
    gap = clean_accuracy - baseline_clean_accuracy
    if abs(gap) > clean_margin:
        parts.append(
            f"{'more' if gap > 0 else 'less'} accurate than the baseline on clean data "
            f"({100 * gap:+.1f} points)"
        )
    return "; ".join(parts)


def _fmt_interval(accuracy: float, n: int) -> str:
    low, high = wilson_interval(round(accuracy * n), n)
    return f"{accuracy:.2f} [{low:.2f}, {high:.2f}]"


def _fmt_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _clean(row: Mapping[str, Any]) -> float:
    """The clean accuracy of a table row: its test accuracy when given, else the attacked points'."""
    value = row.get("test_accuracy")
    return float(row["record"]["clean_accuracy"] if value is None else value)


def _row_reading(
    row: Mapping[str, Any],
    curve: Mapping[float, float],
    base_row: Mapping[str, Any],
    base_curve: Mapping[float, float],
    codes: Sequence[str],
    is_baseline: bool,
) -> str:
    """The reading of one row in one norm (``curve``: its measured ``{eps: worst case}``)."""
    own = [(e, a) for e, a in curve.items() if e > 0]
    base = [(e, a) for e, a in base_curve.items() if e > 0]
    if not is_baseline and not (own and base):
        return "not attacked" if not own else "the baseline was not attacked"
    return read_against_baseline(
        own,
        base,
        n=int(row["record"]["n"]),
        baseline_n=int(base_row["record"]["n"]),
        clean_accuracy=_clean(row),
        baseline_clean_accuracy=_clean(base_row),
        flags=codes,
        is_baseline=is_baseline,
    )


def comparison_table(rows: Sequence[Mapping[str, Any]], baseline: int | None = 0) -> str:
    """The Markdown table of the demo: one row per model, its clean accuracy, worst-case accuracy with its 95%
    interval at each epsilon of :func:`comparison_grid`, costs and reading (:func:`read_against_baseline`
    against ``rows[baseline]``; without a baseline the reading lists the audit flags only).

    Each row: ``name``, ``record`` (a results record), and optionally ``test_accuracy`` (on the whole test
    set, used for the clean comparison when given), ``train_seconds``, ``attack_seconds``,
    ``certify_seconds``. No paper or equation: report formatting.
    """
    records = [row["record"] for row in rows]
    columns = [
        (norm, eps) for norm in comparison_norms(records) for eps in comparison_grid(records, norm)[1:]
    ]
    # per model and norm: {eps: worst-case accuracy} at the epsilons it was attacked at
    curves = [
        {
            norm: dict(
                zip(
                    *worst_case_curve(r, norm, measured_grid(r, norm, comparison_grid(records, norm))),
                    strict=True,
                )
            )
            for norm in {c[0] for c in columns}
        }
        for r in records
    ]

    certify = any(row.get("certify_seconds") is not None for row in rows)
    header = [
        "model",
        "test accuracy",
        "clean (attacked)",
        *[f"{_NORM_LABEL.get(norm, norm)} {eps:g}" for norm, eps in columns],
        "train s",
        "attack s",
        *(["certify s"] if certify else []),
        "reading",
    ]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    norms = list(dict.fromkeys(norm for norm, _ in columns))
    for index, (row, record, curve) in enumerate(zip(rows, records, curves, strict=True)):
        n = int(record["n"])
        codes = sorted({f["code"] for f in record.get("audit", {}).get("flags", [])})
        readings = [f"flagged: {', '.join(codes)}" if codes else "no baseline in this run"]
        if baseline is not None:
            readings = [
                _row_reading(
                    row, curve[norm], rows[baseline], curves[baseline][norm], codes, index == baseline
                )
                for norm in norms
            ]
        reading = (
            readings[0]
            if len(readings) == 1
            else " / ".join(
                f"{_NORM_LABEL.get(norm, norm)}: {text}" for norm, text in zip(norms, readings, strict=True)
            )
        )
        test = row.get("test_accuracy")
        cells = [
            str(row["name"]),
            "" if test is None else f"{float(test):.3f}",
            _fmt_interval(float(record["clean_accuracy"]), n),
            *[
                _fmt_interval(curve[norm][eps], n) if eps in curve[norm] else "not attacked"
                for norm, eps in columns
            ],
            _fmt_seconds(row.get("train_seconds")),
            _fmt_seconds(row.get("attack_seconds")),
            *([_fmt_seconds(row.get("certify_seconds"))] if certify else []),
            reading or "no attack reported",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


#: ``results.json`` format of ``amd demo`` (version 2 lacked ``settings`` and ``certify_seconds``; still
#: rendered).
DEMO_FORMAT = "art-manifold-defenses/demo/3"
_DEMO_FORMATS = (DEMO_FORMAT, "art-manifold-defenses/demo/2")
#: The demo's accuracy-against-epsilon figure, beside ``report.md``.
DEMO_FIGURE = "robustness_vs_epsilon.png"


def _certified_lines(entry: Mapping[str, Any], folder: Path) -> list[str]:
    cert = entry.get("certified")
    if not cert:
        return []
    name, radii = entry["name"], cert["radii"]
    lines = [
        f"### Certified l2 accuracy of `{name}`",
        "",
        f"Certified accuracy against the l2 radius on the {cert['images']} attacked test images (n = "
        f"{cert['n']} "
        "noisy samples per image, alpha 0.001), one line per bound; a point counts at radius r when the "
        "smoothed "
        "prediction is correct and certified at r.",
        "",
    ]
    if (folder / name / "certified_accuracy.png").is_file():
        lines += [f"![certified accuracy of {name}]({name}/certified_accuracy.png)", ""]
    lines += ["| bound | " + " | ".join(f"r = {r:g}" for r in radii) + " |", "|---|" + "---|" * len(radii)]
    lines += [
        f"| {bound} | " + " | ".join(f"{values[f'{r:g}']:.3f}" for r in radii) + " |"
        for bound, values in cert["certified_accuracy"].items()
    ]
    return [*lines, ""]


def write_demo_report(out_dir: str | os.PathLike[str], *, title: str = "art-manifold-defenses demo") -> Path:
    """Render ``report.md`` and :data:`DEMO_FIGURE` of an ``amd demo`` folder from its saved files only (its
    ``results.json`` and each model's ``results.json``), so a finished run can be re-rendered
    (``amd demo --render-only``). The first entry is the baseline every reading compares against. Returns the
    report's path.
    """
    out = Path(out_dir)
    if not (out / "results.json").is_file():
        raise FileNotFoundError(f"{out / 'results.json'} does not exist: run amd demo --out {out} first")
    summary = json.loads((out / "results.json").read_text())
    if not isinstance(summary, dict) or summary.get("format") not in _DEMO_FORMATS:
        raise ValueError(f"{out / 'results.json'} is not an amd demo summary (format {DEMO_FORMAT})")
    entries = summary["entries"]
    if not entries:
        raise ValueError(f"{out / 'results.json'} lists no model")
    records = [load_results(out / entry["results"]) for entry in entries]
    # the undefended entry (version 2 files: the one named "baseline")
    undefended = [
        i
        for i, e in enumerate(entries)
        if e.get("defence", "?") is None or ("defence" not in e and e["name"] == "baseline")
    ]
    base_index = undefended[0] if undefended else None
    base = None if base_index is None else str(entries[base_index]["name"])
    plot_accuracy_vs_epsilon(
        [(e["name"], r) for e, r in zip(entries, records, strict=True)], out / DEMO_FIGURE, baseline=base
    )
    settings = summary.get("settings") or {}
    n = int(records[0]["n"])
    norms = comparison_norms(records)
    grids = {norm: comparison_grid(records, norm)[1:] for norm in norms}
    budgets = "; ".join(
        f"{_NORM_LABEL.get(norm, norm)} eps {_eps_list(grid)}" for norm, grid in grids.items()
    )
    low, high = wilson_interval(n // 2, n)
    half = 100 * (high - low) / 2
    command = settings.get("command")
    intro = [
        *([f"`{command}`:"] if command else []),
        f"{'every' if command else 'In this run every'} model was trained "
        f"{'about ' + str(settings['epochs']) if 'epochs' in settings else 'a few'} epochs on the 4,000 "
        "embedded MNIST "
        "training images and attacked with the "
        f"{'`' + settings['suite'] + '` ' if 'suite' in settings else ''}suite "
        f"({budgets or 'no finite budget'}) on the first {n} test images (seed {records[0].get('seed')}); "
        f"{float(summary['seconds']):.0f} s in all (`results.json`: `seconds`). Demo-sized settings: these "
        "numbers show "
        "how the pieces fit together, not what each paper reports (see `examples/reproduce_*.py`).",
    ]
    rows = [
        {
            "name": e["name"],
            "record": r,
            "test_accuracy": e.get("test_accuracy_full"),
            "train_seconds": e.get("train_seconds"),
            "attack_seconds": e.get("evaluation_seconds"),
            "certify_seconds": e.get("certify_seconds") if e.get("certified") else None,
        }
        for e, r in zip(entries, records, strict=True)
    ]
    against = f"against `{base}`" if base else "(no undefended baseline in this run: the flags only)"
    body = [
        " ".join(intro),
        "",
        "## Accuracy against epsilon",
        "",
        f"![accuracy against epsilon, every model]({DEMO_FIGURE})",
        "",
        "Each line is one model's per-point worst case over every attack of the suite at that epsilon: a "
        "test point "
        "counts only if it is classified correctly clean and survives every attack with a budget up to "
        "epsilon (at 0: "
        "the clean accuracy of the attacked "
        f"points){f'; `{base}` (black, dashed) is the undefended baseline' if base else ''}. On {n} points "
        f"a 95% interval is up to +-{half:.0f} points wide around an accuracy of 50%.",
        "",
        "## Models against the baseline",
        "",
        comparison_table(rows, base_index).rstrip("\n"),
        "",
        f"Test accuracy: on all the test images; clean and worst case: on the {n} attacked points, with the "
        "95% Wilson "
        "interval. Train s: training, attack s: the `evaluate` call (every attack of the suite and the audit)"
        f"{', certify s: the certification' if any(r['certify_seconds'] is not None for r in rows) else ''}, "
        "in "
        f"wall-clock seconds. Reading: computed from these numbers {against}: "
        "'flagged' lists the gradient-masking audit's flags; 'more robust' where the model's interval lies "
        "above the "
        "baseline's, 'possibly more robust' where its accuracy is above the baseline's interval but the "
        "intervals "
        "overlap, 'no robustness beyond the baseline' where it is within (or below) the baseline's interval "
        "at every "
        "epsilon, 'less robust' where its interval lies below; 'less (more) accurate on clean data' where "
        "its test "
        "accuracy differs from the baseline's by more than 5 points.",
        "",
    ]
    for entry in entries:
        body += _certified_lines(entry, out)
    body += ["## The models", "", *[f"- `{e['name']}`: {e.get('description', '')}" for e in entries]]
    sections = [(e["name"], r, f"{e['name']}/curves.png") for e, r in zip(entries, records, strict=True)]
    path = out / "report.md"
    write_text_atomic(path, combined_markdown(sections, title=title, preamble="\n".join(body), summary=False))
    return path

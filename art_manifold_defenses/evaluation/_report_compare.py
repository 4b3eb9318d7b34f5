"""Several models side by side (the demo): the epsilon grid they share (:func:`comparison_grid`,
:func:`comparison_norms`, :func:`measured_grid`), the Wilson interval (:func:`wilson_interval`), the one-line
reading of a model against the baseline (:func:`read_against_baseline`) and the comparison table
(:func:`comparison_table`). Re-exported by :mod:`.report`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._report_record import _within, worst_case_curve

__all__ = [
    "COMPARISON_NORMS",
    "comparison_grid",
    "comparison_norms",
    "comparison_table",
    "measured_grid",
    "read_against_baseline",
    "wilson_interval",
]

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

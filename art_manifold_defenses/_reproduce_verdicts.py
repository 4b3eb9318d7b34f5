"""How ``amd reproduce`` judges a number: the 95% Clopper-Pearson interval of an accuracy on ``n`` points
(:func:`accuracy_interval`), a paper claim's verdict line (:func:`claim_verdict`, :func:`row_verdicts`,
:func:`not_testable`) and the defended models that are training failures (:func:`training_failures`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: Level of every accuracy interval in the report: two-sided 95% Clopper-Pearson (exact binomial), from the
#: package's one implementation (:mod:`art_manifold_defenses.smoothing.confidence`, alpha/2 on each side).
CONFIDENCE = 0.95
#: A defended model whose clean accuracy is more than this many points below its baseline's is a training
#: failure: its robustness rows are not presented as a defence result.
TRAINING_FAILURE_POINTS = 5.0
#: The three outcomes a verdict line states (``not reproduced`` contains ``reproduced``).
VERDICTS = ("reproduced", "not reproduced", "not testable here")


def correct_count(percent: float, n: int) -> int:
    """The number of correct points behind an accuracy of ``percent`` % on ``n`` points; raises ``ValueError``
    when ``percent`` is not (to rounding) a whole count out of ``n`` (an accuracy on other points than the
    row's ``n``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (the points behind the accuracy), got {n!r}")
    if not 0.0 <= percent <= 100.0:
        raise ValueError(f"an accuracy must lie in [0, 100] %, got {percent!r}")
    k = percent * n / 100.0
    if abs(k - round(k)) > 1e-6 * max(1.0, k):
        raise ValueError(
            f"{percent!r} % of n = {n} points is not a whole number of points ({k:.4f}): wrong n?"
        )
    return int(round(k))


def accuracy_interval(percent: float, n: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided ``confidence`` Clopper-Pearson interval (in %) of an accuracy of ``percent`` % measured on
    ``n`` points: ``[Beta^-1(a; k, n - k + 1), Beta^-1(1 - a; k + 1, n - k)]`` with
    ``a = (1 - confidence) / 2`` and ``k`` correct points (0 below at ``k = 0``, 100 above at ``k = n``). E.g.
    0 of 200: [0, 1.8]; 100 of 200: [42.9, 57.1]."""
    from .smoothing.confidence import clopper_pearson_lower, clopper_pearson_upper

    k = correct_count(percent, n)
    alpha = (1.0 - confidence) / 2.0
    return 100.0 * float(clopper_pearson_lower(k, n, alpha)), 100.0 * float(
        clopper_pearson_upper(k, n, alpha)
    )


def claim_verdict(
    claim: str,
    paper: float,
    ours: float | None,
    n: int,
    *,
    higher_is_better: bool | None = True,
    strongest: float | None = None,
) -> str:
    """One verdict line: ``"<claim>: reproduced (...)"``, ``"<claim>: not reproduced (...)"`` or, when
    ``ours`` is None (not measured), ``"<claim>: not testable here (not measured at this scale)"``.

    Judged by where the paper's number lies against our 95% interval (:func:`accuracy_interval`) of ``ours``
    (our number under the paper's attack or setting, on ``n`` points), with no tolerance beyond the interval:

    - ``higher_is_better=True`` (the paper claims at least ``paper`` %, e.g. a robust accuracy): reproduced
      when the paper's number is at most the interval's upper end;
    - ``False`` (the paper claims at most ``paper`` %, e.g. an undefended model's accuracy under attack):
      reproduced when it is at least the lower end;
    - ``None`` (the paper's number itself): reproduced when it lies inside the interval.

    ``strongest`` (ours under the strongest evaluation, same ``n``) adds whether a robustness claim also holds
    there.
    """
    if ours is None or n == 0:
        return not_testable(claim, "not measured at this scale")
    lo, hi = accuracy_interval(ours, n)
    ours_text = f"ours {ours:.1f} [{lo:.1f}, {hi:.1f}], n = {n}"
    if paper > hi:
        where, ok = "above", higher_is_better is False
    elif paper < lo:
        where, ok = "below", higher_is_better is True
    else:
        where, ok = "inside", True
    line = f"{claim}: {'reproduced' if ok else 'not reproduced'} (paper {paper:.1f} {where} {ours_text})"
    if strongest is not None and higher_is_better is not False:
        s_lo, s_hi = accuracy_interval(strongest, n)
        holds = paper <= s_hi if higher_is_better else s_lo <= paper <= s_hi
        where = "consistent with" if holds else ("above" if paper > s_hi else "below")
        line += f"; strongest attack {strongest:.1f} [{s_lo:.1f}, {s_hi:.1f}]: paper {where} it"
    return line


def not_testable(claim: str, reason: str) -> str:
    """The verdict line of a claim this reproduction cannot judge: ``"<claim>: not testable here (<reason>)"``
    (the data, the scale, a training failure)."""
    return f"{claim}: not testable here ({reason})"


def clean_accuracy(rows: Sequence[dict[str, Any]], model: str) -> tuple[float, int | None] | None:
    """``(ours, n)`` of ``model``'s clean row (its first row whose metric starts with ``clean``); None without
    one."""
    for row in rows:
        if (
            row["model"] == model
            and str(row["metric"]).lower().startswith("clean")
            and row["ours"] is not None
        ):
            return float(row["ours"]), row.get("n")
    return None


def training_failures(rows: Sequence[dict[str, Any]], baselines: dict[str, str]) -> dict[str, str]:
    """Defended models (keys of ``baselines``) whose clean accuracy is more than
    :data:`TRAINING_FAILURE_POINTS` below their baseline's, each with the reason ``"training failure (clean X
    vs Y for its baseline B)"``."""
    failed = {}
    for model, baseline in baselines.items():
        ours, base = clean_accuracy(rows, model), clean_accuracy(rows, baseline)
        if ours is not None and base is not None and base[0] - ours[0] > TRAINING_FAILURE_POINTS:
            failed[model] = (
                f"training failure (clean {ours[0]:.1f} vs {base[0]:.1f} for its baseline {baseline})"
            )
    return failed


def row_verdicts(
    rows: Sequence[dict[str, Any]],
    baselines: dict[str, str],
    *,
    models: Sequence[str] | None = None,
    metrics: Callable[[str], bool] | None = None,
) -> list[str]:
    """A verdict line (:func:`claim_verdict`) for every row of a defended model (a key of ``baselines``, or
    one of ``models``) with a paper number (and, with ``metrics``, a metric it accepts): the paper claims at
    least its number. The robustness rows of a training failure (:func:`training_failures`) and unmeasured
    rows are not testable here; a training failure's clean row is judged like any other."""
    failed = training_failures(rows, baselines)
    chosen = set(baselines if models is None else models)
    lines = []
    for row in rows:
        if (
            row["model"] not in chosen
            or row["paper"] is None
            or (metrics is not None and not metrics(row["metric"]))
        ):
            continue
        claim = f"{row['model']}, {row['metric']} (paper {row['paper']:.1f})"
        if row["model"] in failed and clean_accuracy([row], row["model"]) is None:
            lines.append(not_testable(claim, failed[row["model"]]))
        else:
            lines.append(
                claim_verdict(claim, row["paper"], row["ours"], row["n"], strongest=row["strongest"])
            )
    return lines

"""The record each reproduction script writes and ``amd reproduce`` renders: ``summary.json`` in the schema
of :func:`write_summary` (checked by :func:`_check_summary`), and :func:`strongest_accuracy`, the per-point
worst case over a harness ``results.json`` in one threat model."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._reproduce_verdicts import VERDICTS, clean_accuracy, correct_count

SUMMARY_FILE = "summary.json"


def _check_summary(
    rows: Sequence[dict[str, Any]], baselines: dict[str, str], verdicts: Sequence[str]
) -> None:
    """``ValueError`` naming the first row, baseline or verdict that breaks :func:`write_summary`'s schema."""
    required = {"model", "metric", "paper", "ours", "strongest", "flags", "n"}
    for row in rows:
        if missing := required - set(row):
            raise ValueError(f"summary row {row} lacks {sorted(missing)}")
        n = row["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(
                f"summary row {row}: n must be a non-negative integer (points behind ours/strongest)"
            )
        for key in ("ours", "strongest"):
            if row[key] is None:
                continue
            if n == 0:
                raise ValueError(f"summary row {row}: {key} = {row[key]} on n = 0 points")
            try:
                correct_count(row[key], n)
            except ValueError as error:
                raise ValueError(f"summary row {row}: {key}: {error}") from None
    models = {row["model"] for row in rows}
    for model, baseline in baselines.items():
        for name in (model, baseline):
            if name not in models:
                raise ValueError(f"baselines: {name!r} is not a model of the rows ({sorted(models)})")
            if clean_accuracy(rows, name) is None:
                raise ValueError(
                    f"baselines: {name!r} has no clean row (a metric starting with 'clean' with ours)"
                )
    for line in verdicts:
        if not isinstance(line, str) or not any(word in line for word in VERDICTS):
            raise ValueError(f"verdict {line!r} states none of {VERDICTS}")


def write_summary(
    folder: str | Path,
    *,
    paper: str,
    scale: str,
    seed: int,
    seconds: float,
    command: str,
    rows: list[dict[str, Any]],
    details: str,
    notes: Sequence[str] = (),
    baselines: dict[str, str] | None = None,
    verdicts: Sequence[str] = (),
) -> Path:
    """Write ``folder/summary.json``, the record ``amd reproduce`` renders (one per reproduction script).

    Each row: ``model``, ``metric`` (what is measured, e.g. ``"PGD linf 0.3"``; a model's clean accuracy is
    its first row whose metric starts with ``clean``), ``paper`` (the paper's number in %, or None where the
    paper has none), ``ours`` (our number in % under the paper's attack/setting), ``strongest`` (ours in %
    under the strongest evaluation, the per-point worst case over every attack run on that model at that
    budget; None where it does not apply, e.g. for a certified number), ``n`` (int: the points behind ``ours``
    and ``strongest``, each of which must be a whole count out of ``n``; the report gives every accuracy its
    95% Clopper-Pearson interval from it) and ``flags`` (audit flag codes).

    ``baselines`` maps each defended model to the plain model it is compared with (both must have a clean
    row): a defended model more than :data:`TRAINING_FAILURE_POINTS` below its baseline's clean accuracy is
    reported as a training failure, not as a robustness result. ``verdicts`` is one line per paper claim, each
    stating ``reproduced``, ``not reproduced`` or ``not testable here (why)`` (:func:`claim_verdict`,
    :func:`row_verdicts`, :func:`not_testable`). ``details`` names the script's detailed table. Versions are
    recorded here, from the running process. A row, baseline or verdict outside this schema raises
    ``ValueError`` naming it.
    """
    import platform

    import numpy as np
    import torch

    from ._version import __version__

    baselines = dict(baselines or {})
    _check_summary(rows, baselines, verdicts)
    record = {
        "paper": paper,
        "scale": scale,
        "seed": seed,
        "seconds": float(seconds),
        "command": command,
        "details": details,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
        "notes": list(notes),
        "baselines": baselines,
        "verdicts": list(verdicts),
        "versions": {
            "art_manifold_defenses": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    path = Path(folder) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    return path


def strongest_accuracy(
    record: dict[str, Any], *, norm: str, eps: float | None, label: str | None = None
) -> float | None:
    """Per-point worst case (in %) over every attack of a harness ``results.json`` record in the threat model
    (``norm``, ``eps``): a point counts as robust when it is classified correctly clean and under every attack
    of that norm whose budget is at most ``eps`` (an adversarial example inside a smaller ball is inside this
    one too).

    A minimisation attack with no budget (``eps`` None, e.g. C&W l2 reported at a distance threshold) has no
    ball to share: pass its ``label`` and its own per-point result is returned. None when no attack of the
    record matches.
    """
    from .evaluation import worst_case

    def in_row(attack: dict[str, Any]) -> bool:
        if attack.get("error") is not None or attack.get("correct") is None:
            return False
        same_ball = (
            eps is not None
            and attack.get("norm") == norm
            and attack.get("eps") is not None
            and attack["eps"] <= eps + 1e-9
        )
        return same_ball or (label is not None and attack.get("label") == label)

    matched = [attack["correct"] for attack in record["attacks"] if in_row(attack)]
    robust = worst_case(record["per_point"]["clean_correct"], matched)
    return 100.0 * float(robust.mean()) if matched and len(robust) else None

"""Reading a saved evaluation record (``results.json``): :func:`load_results`, and the per-point worst case
recomputed from its per-attack ``correct`` lists, overall (:func:`recompute_robust_accuracy`) and per budget
(:func:`worst_case_curve`). Re-exported by :mod:`.report`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .results import RESULTS_FORMAT

__all__ = ["load_results", "recompute_robust_accuracy", "worst_case_curve"]


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

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

This module writes the files (:func:`write_report`). The record's reading (``_report_record``), its Markdown
(``_report_markdown``), the figures (``_report_plots``), the comparison of several models
(``_report_compare``) and the demo's report (``_report_demo``) live in modules beside it; every name is
importable from here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..utils import write_text_atomic
from ._report_compare import _NORM_LABEL as _NORM_LABEL
from ._report_compare import _Z95 as _Z95
from ._report_compare import (
    COMPARISON_NORMS,
    comparison_grid,
    comparison_norms,
    comparison_table,
    measured_grid,
    read_against_baseline,
    wilson_interval,
)
from ._report_compare import _clean as _clean
from ._report_compare import _eps_list as _eps_list
from ._report_compare import _fmt_interval as _fmt_interval
from ._report_compare import _fmt_seconds as _fmt_seconds
from ._report_compare import _row_reading as _row_reading
from ._report_demo import _DEMO_FORMATS as _DEMO_FORMATS
from ._report_demo import DEMO_FIGURE, DEMO_FORMAT, write_demo_report
from ._report_demo import _certified_lines as _certified_lines
from ._report_markdown import _fmt_eps as _fmt_eps
from ._report_markdown import _fmt_pct as _fmt_pct
from ._report_markdown import _summary_lines as _summary_lines
from ._report_markdown import combined_markdown, markdown_table
from ._report_plots import _curve_groups as _curve_groups
from ._report_plots import plot_accuracy_vs_epsilon, plot_robustness_curves
from ._report_record import _within as _within
from ._report_record import load_results, recompute_robust_accuracy, worst_case_curve
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

"""The report of an ``amd demo`` folder (:func:`write_demo_report`): every model's accuracy against epsilon
in one figure, the comparison table against the undefended baseline, certified accuracies and each model's
own section, rendered from the folder's saved files only. Re-exported by :mod:`.report`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..utils import write_text_atomic
from ._report_compare import (
    _NORM_LABEL,
    _eps_list,
    comparison_grid,
    comparison_norms,
    comparison_table,
    wilson_interval,
)
from ._report_markdown import combined_markdown
from ._report_plots import plot_accuracy_vs_epsilon
from ._report_record import load_results

__all__ = ["DEMO_FIGURE", "DEMO_FORMAT", "write_demo_report"]

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
    summary, entries, records = _read_demo_summary(out)
    base_index = _baseline_index(entries)
    base = None if base_index is None else str(entries[base_index]["name"])
    plot_accuracy_vs_epsilon(
        [(e["name"], r) for e, r in zip(entries, records, strict=True)], out / DEMO_FIGURE, baseline=base
    )
    n = int(records[0]["n"])
    rows = _demo_rows(entries, records)
    body = [
        _demo_intro(summary, records),
        "",
        *_figure_lines(base, n),
        *_comparison_lines(rows, base_index, base, n),
    ]
    for entry in entries:
        body += _certified_lines(entry, out)
    body += ["## The models", "", *[f"- `{e['name']}`: {e.get('description', '')}" for e in entries]]
    sections = [(e["name"], r, f"{e['name']}/curves.png") for e, r in zip(entries, records, strict=True)]
    path = out / "report.md"
    write_text_atomic(path, combined_markdown(sections, title=title, preamble="\n".join(body), summary=False))
    return path


def _read_demo_summary(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo folder's ``results.json`` (checked), its entries and each entry's results record."""
    if not (out / "results.json").is_file():
        raise FileNotFoundError(f"{out / 'results.json'} does not exist: run amd demo --out {out} first")
    summary = json.loads((out / "results.json").read_text())
    if not isinstance(summary, dict) or summary.get("format") not in _DEMO_FORMATS:
        raise ValueError(f"{out / 'results.json'} is not an amd demo summary (format {DEMO_FORMAT})")
    entries = summary["entries"]
    if not entries:
        raise ValueError(f"{out / 'results.json'} lists no model")
    records = [load_results(out / entry["results"]) for entry in entries]
    return summary, entries, records


def _baseline_index(entries: Sequence[Mapping[str, Any]]) -> int | None:
    """The index of the undefended entry (version 2 files: the one named "baseline"), ``None`` without one."""
    undefended = [
        i
        for i, e in enumerate(entries)
        if e.get("defence", "?") is None or ("defence" not in e and e["name"] == "baseline")
    ]
    return undefended[0] if undefended else None


def _demo_intro(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    """The report's first paragraph: the command, training, suite and budgets, attacked points, run time."""
    settings = summary.get("settings") or {}
    n = int(records[0]["n"])
    norms = comparison_norms(records)
    grids = {norm: comparison_grid(records, norm)[1:] for norm in norms}
    budgets = "; ".join(
        f"{_NORM_LABEL.get(norm, norm)} eps {_eps_list(grid)}" for norm, grid in grids.items()
    )
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
    return " ".join(intro)


def _demo_rows(
    entries: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of :func:`~._report_compare.comparison_table`, one per entry."""
    return [
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


def _figure_lines(base: str | None, n: int) -> list[str]:
    """The "Accuracy against epsilon" section: the figure and how to read it (``base``: the baseline's
    name)."""
    low, high = wilson_interval(n // 2, n)
    half = 100 * (high - low) / 2
    return [
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
    ]


def _comparison_lines(
    rows: Sequence[Mapping[str, Any]], base_index: int | None, base: str | None, n: int
) -> list[str]:
    """The "Models against the baseline" section: the comparison table and how its columns are read."""
    against = f"against `{base}`" if base else "(no undefended baseline in this run: the flags only)"
    return [
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

"""``REPRODUCTION.md``: :func:`render` writes one section per paper from its ``summary.json`` (or why there
is none), every accuracy with its 95% interval, a training failure's robustness rows withheld, and the
verdict lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._reproduce_papers import REPRODUCTIONS, Reproduction
from ._reproduce_summary import SUMMARY_FILE
from ._reproduce_verdicts import TRAINING_FAILURE_POINTS, accuracy_interval, clean_accuracy, training_failures


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _cell(value: float | None, n: int | None = None) -> str:
    """An accuracy cell: ``"x.x [lo, hi]"`` with its 95% interval on ``n`` points, ``"x.x"`` where ``n`` is
    unknown (an old summary) or ``value`` is not a whole count out of it, ``"-"`` for no value."""
    if value is None:
        return "-"
    if n is None or n < 1:
        return f"{value:.1f}"
    try:
        lo, hi = accuracy_interval(value, n)
    except ValueError:
        return f"{value:.1f}"
    return f"{value:.1f} [{lo:.1f}, {hi:.1f}]"


def _table(record: dict[str, Any]) -> list[str]:
    """A summary's rows as Markdown: the n of each row, every accuracy with its interval (the paper's number
    as published, without one), and a training failure's robustness rows withheld behind one marking row."""
    rows = record["rows"]
    failed = training_failures(rows, record.get("baselines") or {})
    lines = [
        "| model | metric | n | paper | ours (paper's attack) | ours (strongest) | audit flags |",
        "|---|---|---|---|---|---|---|",
    ]
    withheld: dict[str, int] = {}
    for row in rows:
        model = row["model"]
        is_clean = clean_accuracy([row], model) is not None
        if model in failed and not is_clean:
            if model not in withheld:
                withheld[model] = 0
                lines.append(
                    f"| {model} | {failed[model]}: robustness rows withheld, not a defence result | - | - | "
                    "- | - | - |"
                )
            withheld[model] += 1
            continue
        n = row.get("n")
        paper = "-" if row["paper"] is None else f"{row['paper']:.1f}"
        lines.append(
            f"| {model} | {row['metric']} | {'?' if n is None else n} | {paper} | {_cell(row['ours'], n)} "
            f"| {_cell(row['strongest'], n)} | {', '.join(row['flags']) or '-'} |"
        )
    lines.append("")
    for model, count in withheld.items():
        lines.append(
            f"- {model}: {failed[model]}, more than {TRAINING_FAILURE_POINTS:g} points below its baseline; "
            f"its {count} robustness row(s) are in the detailed table only."
        )
    return [*lines, ""] if withheld else lines


def _verdict_lines(record: dict[str, Any]) -> list[str]:
    """The section's verdict lines (or why it has none)."""
    if "verdicts" not in record:
        return ["**Verdicts:** none recorded (this summary predates the verdict schema).", ""]
    if not record["verdicts"]:
        return ["**Verdicts:** none (the summary states no paper claim).", ""]
    return [
        "**Verdicts** (the paper's number against our 95% interval):",
        "",
        *[f"- {line}" for line in record["verdicts"]],
        "",
    ]


def render(
    out: Path,
    items: Sequence[Reproduction],
    scale: str,
    statuses: dict[str, dict[str, Any]],
    *,
    flat_links: bool = False,
) -> str:
    """``REPRODUCTION.md``: one section per paper from its ``summary.json`` (or why there is none).

    Links to each paper's detailed table point into ``<paper>/`` (the layout of ``OUT``), or beside the report
    with ``flat_links`` (the layout :func:`publish` writes).
    """
    lines = _intro(items, scale)
    for item in items:
        lines += _section(out, item, scale, statuses.get(item.key, {}), flat_links=flat_links)
    return "\n".join(lines).rstrip() + "\n"


def _intro(items: Sequence[Reproduction], scale: str) -> list[str]:
    """The report's title and the paragraph saying how to read its tables and verdicts."""
    return [
        "# Reproduction of the five papers",
        "",
        "Written by `amd reproduce "
        f"{' '.join(i.key for i in items) if len(items) < len(REPRODUCTIONS) else 'all'} "
        f"--scale {scale}`. Numbers in %; *paper* is the paper's number, *ours (paper's attack)* is this "
        "package under "
        "the paper's own attack or setting, *ours (strongest)* is the per-point worst case over every attack "
        "the "
        "harness ran on that model at that budget (the honest number; '-' where it does not apply, e.g. "
        "certified "
        "accuracy). *n* is the number of points behind a row (the same points for every attack of a model); "
        "every "
        "accuracy of ours carries its two-sided 95% Clopper-Pearson (exact binomial) interval on those n "
        "points, "
        "`x.x [lo, hi]` ('n ?' and no interval: a summary written before n was recorded). A defended model "
        "whose "
        f"clean accuracy is more than {TRAINING_FAILURE_POINTS:g} points below its baseline's is marked as a "
        "training "
        "failure and its robustness rows are withheld. Each verdict judges a paper claim by where the "
        "paper's number "
        "lies against our interval: reproduced, not reproduced, or not testable here (and why). Audit flags "
        "are the "
        "harness's gradient-masking checks. Each section links the script's detailed table, which has the "
        "full "
        "settings. The numbers are from one seed.",
        "",
    ]


def _section(
    out: Path, item: Reproduction, scale: str, status: dict[str, Any], *, flat_links: bool
) -> list[str]:
    """One paper's section: its heading, then why it has no result at ``scale``, or its run, table, verdicts
    and notes from its ``summary.json``."""
    folder = out / item.key
    summary = folder / SUMMARY_FILE
    lines = [f"## Paper {item.paper}: {item.title}", ""]
    if not summary.exists():
        why = status.get("status", "started, not finished" if (folder / "log.txt").exists() else "not run")
        if why == "failed":
            why = f"failed (exit {status.get('exit_code')}), see `{item.key}/log.txt`"
        elif why == "running":
            why = f"started {status.get('started')}, not finished"
        lines += [f"No result at scale `{scale}`: {why}.", ""]
        return lines
    record = json.loads(summary.read_text())
    if record["scale"] != scale:
        lines += [
            (
                f"No result at scale `{scale}` (`{item.key}/{SUMMARY_FILE}` is from scale "
                f"`{record['scale']}`)."
            ),
            "",
        ]
        return lines
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    lines += [
        f"Scale `{record['scale']}`, seed {record['seed']}, run time {_duration(record['seconds'])}, "
        f"{record['date']}; "
        f"versions: {versions}.  ",
        f"Command: `{record['command']}`; details: [{record['details']}]"
        f"({record['details'] if flat_links else item.key + '/' + record['details']}).",
        "",
    ]
    lines += [*_table(record), *_verdict_lines(record), *[f"- {note}" for note in record["notes"]], ""]
    return lines

"""``amd reproduce <paper|all>``: run each paper's reproduction and render one ``REPRODUCTION.md``.

Every paper has a script in the repository's ``examples/`` (``reproduce_<paper>.py --scale smoke|quick|full``)
that trains (resuming from its own work folder), evaluates with the paper's attacks and with the harness's
strongest ones (per-point worst case, gradient-masking audit), certifies where the paper certifies, and writes
a detailed Markdown table plus a ``summary.json`` in the schema of :func:`write_summary`. This module runs
those scripts one after the other, each in its own process (a failure is recorded and the next paper still
runs), and renders ``OUT/REPRODUCTION.md`` from the summaries: per paper, the paper's number, ours under the
paper's attack and ours under the strongest attack, each of ours with its 95% Clopper-Pearson interval on the
row's ``n`` points (:func:`accuracy_interval`), with the audit flags, scale, seed, versions and run time; a
defended model more than :data:`TRAINING_FAILURE_POINTS` below its baseline's clean accuracy is marked as a
training failure, not shown as a defence result (:func:`training_failures`); each section ends with one
verdict line per paper claim (reproduced, not reproduced, not testable here: :func:`claim_verdict`).

A paper whose ``summary.json`` already exists for the same scale and seed is not run again (``--force`` reruns
it; the script itself still reuses its cached models and attack results). ``--render-only`` only rewrites the
report.

Papers (``../shared/papers``): 000 RBF-CNN (Nandy et al. 2020), 001 radial-basis feature mapping (Taghanaki
et al. 2019), 002 Feature Pyramid Decoder (Li et al. 2020), 003 manifold regularization (Jin & Rinard 2020)
and its exact verification table, 004 Rényi smoothing / STN (Li et al. 2019).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .defences import DEFENCES
from .utils import device_arg

SUMMARY_FILE = "summary.json"
REPORT_FILE = "REPRODUCTION.md"
SCALES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Reproduction:
    """One paper's reproduction script and how ``amd reproduce`` calls it.

    ``arguments(folder, scale, data_root, seed, device)`` gives the script's command-line arguments so that
    its detailed table, its ``summary.json`` and its work files (models, cached attack results) all land in
    ``folder``.
    """

    key: str
    paper: str
    title: str
    script: str
    arguments: Callable[[Path, str, str, int, str], list[str]]


def _out_work(folder: Path, scale: str, data_root: str, seed: int, device: str) -> list[str]:
    """Scripts taking ``--out`` (the table) and ``--work`` (models and caches)."""
    return [
        "--scale",
        scale,
        "--out",
        str(folder),
        "--work",
        str(folder / "work"),
        "--data-root",
        data_root,
        "--seed",
        str(seed),
        "--device",
        device,
    ]


def _results_out(name: str, *, takes_device: bool = True) -> Callable[[Path, str, str, int, str], list[str]]:
    """Scripts taking ``--results`` (the table's path) and ``--out`` (models and caches);
    ``takes_device=False`` for a CPU-only script without ``--device``."""

    def arguments(folder: Path, scale: str, data_root: str, seed: int, device: str) -> list[str]:
        args = [
            "--scale",
            scale,
            "--results",
            str(folder / name),
            "--out",
            str(folder / "work"),
            "--data-root",
            data_root,
            "--seed",
            str(seed),
        ]
        return [*args, "--device", device] if takes_device else args

    return arguments


def _defence(
    name: str, script: str, arguments: Callable[[Path, str, str, int, str], list[str]]
) -> Reproduction:
    """The reproduction of a listed defence: its key, paper number and title come from its record in
    :data:`art_manifold_defenses.defences.DEFENCES`."""
    defence = DEFENCES[name]
    return Reproduction(defence.name, defence.paper_id, defence.paper, script, arguments)


#: The reproductions, in the order ``amd reproduce all`` runs them (cheapest first).
REPRODUCTIONS: dict[str, Reproduction] = {
    r.key: r
    for r in (
        _defence("stn", "reproduce_stn.py", _out_work),
        Reproduction(
            "verification",
            "003",
            "Exact verification of manifold regularization (Jin & Rinard 2020, Table 2)",
            "reproduce_verification.py",
            _results_out("verification.md", takes_device=False),
        ),
        _defence("radial-mapping", "reproduce_radial_mapping.py", _out_work),
        _defence("manifold-reg", "reproduce_manifold_regularization.py", _out_work),
        _defence("rbf-cnn", "reproduce_rbf_cnn.py", _out_work),
        _defence("fpd", "reproduce_fpd.py", _results_out("fpd.md")),
    )
}


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


def examples_dir() -> Path:
    """The repository's ``examples/`` folder (the reproduction scripts live there, beside the package)."""
    folder = Path(os.environ.get("AMD_EXAMPLES_DIR", Path(__file__).resolve().parent.parent / "examples"))
    if not (folder / "reproduce_stn.py").exists():
        raise FileNotFoundError(
            f"the reproduction scripts are not in {folder}: run `amd reproduce` from a checkout of the "
            "repository "
            "(pip install -e .) or point AMD_EXAMPLES_DIR at its examples/ folder"
        )
    return folder


def select(names: Sequence[str]) -> list[Reproduction]:
    """The reproductions named (``all`` for every one), in :data:`REPRODUCTIONS` order; unknown names
    raise."""
    if unknown := [n for n in names if n != "all" and n not in REPRODUCTIONS]:
        raise ValueError(f"unknown paper(s) {unknown}: choose from {['all', *REPRODUCTIONS]}")
    return [r for key, r in REPRODUCTIONS.items() if "all" in names or key in names]


def run_one(
    item: Reproduction,
    out: Path,
    *,
    scale: str,
    data_root: str,
    seed: int,
    device: str,
    force: bool,
    python: str = sys.executable,
) -> dict[str, Any]:
    """Run one reproduction script (or reuse its summary); returns the status recorded in
    ``out/runs.json``."""
    folder = out / item.key
    summary = folder / SUMMARY_FILE
    if summary.exists() and not force:
        record = json.loads(summary.read_text())
        if record.get("scale") == scale and record.get("seed") == seed:
            print(f"[{item.key}] reusing {summary} ({record['seconds']:.0f} s when it ran)", flush=True)
            return {"status": "reused", "seconds": 0.0}
    command = [
        python,
        str(examples_dir() / item.script),
        *item.arguments(folder, scale, data_root, seed, device),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[{item.key}] {' '.join(command)}  (log: {folder / 'log.txt'})", flush=True)
    started = time.time()
    with open(folder / "log.txt", "a") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: {' '.join(command)}\n")
        log.flush()
        code = subprocess.call(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    seconds = time.time() - started
    if code != 0 or not summary.exists():
        tail = (folder / "log.txt").read_text().splitlines()[-5:]
        print(
            f"[{item.key}] failed (exit {code}) after {seconds:.0f} s; last lines of its log:\n  "
            + "\n  ".join(tail),
            flush=True,
        )
        return {"status": "failed", "exit_code": code, "seconds": seconds, "log_tail": tail}
    print(f"[{item.key}] done in {seconds:.0f} s", flush=True)
    return {"status": "ran", "seconds": seconds}


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
    lines = [
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
    for item in items:
        folder = out / item.key
        summary = folder / SUMMARY_FILE
        lines += [f"## Paper {item.paper}: {item.title}", ""]
        status = statuses.get(item.key, {})
        if not summary.exists():
            why = status.get(
                "status", "started, not finished" if (folder / "log.txt").exists() else "not run"
            )
            if why == "failed":
                why = f"failed (exit {status.get('exit_code')}), see `{item.key}/log.txt`"
            elif why == "running":
                why = f"started {status.get('started')}, not finished"
            lines += [f"No result at scale `{scale}`: {why}.", ""]
            continue
        record = json.loads(summary.read_text())
        if record["scale"] != scale:
            lines += [
                (
                    f"No result at scale `{scale}` (`{item.key}/{SUMMARY_FILE}` is from scale "
                    f"`{record['scale']}`)."
                ),
                "",
            ]
            continue
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
    return "\n".join(lines).rstrip() + "\n"


def reproduce(
    names: Sequence[str],
    *,
    scale: str,
    out: str | Path,
    data_root: str,
    seed: int = 0,
    device: str = "cpu",
    force: bool = False,
    render_only: bool = False,
) -> Path:
    """Run the named reproductions (``["all"]`` for every paper) and write ``out/REPRODUCTION.md``; returns
    its path."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    items = select(names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs_file = out / "runs.json"

    def read_statuses() -> dict[
        str, dict[str, Any]
    ]:  # reread each time: another invocation may run other papers
        return json.loads(runs_file.read_text()) if runs_file.exists() else {}

    if not render_only:
        for item in items:
            started = {"status": "running", "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            runs_file.write_text(json.dumps({**read_statuses(), item.key: started}, indent=2) + "\n")
            status = run_one(
                item, out, scale=scale, data_root=data_root, seed=seed, device=device, force=force
            )
            runs_file.write_text(json.dumps({**read_statuses(), item.key: status}, indent=2) + "\n")
    report = out / REPORT_FILE
    report.write_text(render(out, items, scale, read_statuses()))
    print(f"wrote {report}")
    return report


def publish(out: str | Path, target: str | Path, names: Sequence[str], *, scale: str) -> Path:
    """Copy the report into ``target`` (e.g. ``examples/results``): each paper's detailed table beside it, its
    ``summary.json`` as ``summaries/<paper>.json``, and ``REPRODUCTION.md`` with links to those copies. Papers
    without a summary at ``scale`` are listed as not run and nothing of theirs is copied."""
    out, target = Path(out), Path(target)
    items = select(names)
    (target / "summaries").mkdir(parents=True, exist_ok=True)
    for item in items:
        summary = out / item.key / SUMMARY_FILE
        if not summary.exists() or json.loads(summary.read_text())["scale"] != scale:
            continue
        details = json.loads(summary.read_text())["details"]
        shutil.copyfile(out / item.key / details, target / details)
        shutil.copyfile(summary, target / "summaries" / f"{item.key}.json")
    runs_file = out / "runs.json"
    statuses = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    report = target / REPORT_FILE
    report.write_text(render(out, items, scale, statuses, flat_links=True))
    print(f"published {report}")
    return report


def add_subcommands(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Register ``amd reproduce`` (see :data:`art_manifold_defenses.cli.SUBCOMMAND_MODULES`)."""
    parser = sub.add_parser("reproduce", help="run the papers' reproductions and render REPRODUCTION.md")
    parser.add_argument(
        "papers", nargs="+", metavar="PAPER", help=f"all, or some of: {', '.join(REPRODUCTIONS)}"
    )
    parser.add_argument(
        "--scale", default="quick", choices=SCALES, help="smoke (minutes), quick (hours on a CPU), full (GPU)"
    )
    parser.add_argument(
        "--out", default="runs/reproduction", help="folder for the report, each paper's table and work files"
    )
    parser.add_argument(
        "--data-root",
        default=os.environ.get("AMD_DATA_DIR", "../shared/data"),
        help="folder with MNIST/raw (default: $AMD_DATA_DIR or ../shared/data)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed passed to every script (default: 0)")
    parser.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--force", action="store_true", help="rerun papers whose summary.json exists")
    parser.add_argument(
        "--render-only", action="store_true", help="only rewrite REPRODUCTION.md from the summaries"
    )
    parser.add_argument(
        "--publish",
        default=None,
        metavar="DIR",
        help="also copy the report and each paper's table into DIR (e.g. examples/results)",
    )

    def handler(args: argparse.Namespace) -> int:
        try:
            report = reproduce(
                args.papers,
                scale=args.scale,
                out=args.out,
                data_root=args.data_root,
                seed=args.seed,
                device=args.device,
                force=args.force,
                render_only=args.render_only,
            )
        except KeyboardInterrupt:
            print(
                f"amd reproduce: interrupted; the same command resumes from the caches in {args.out}",
                file=sys.stderr,
            )
            return 130
        if args.publish:
            publish(args.out, args.publish, args.papers, scale=args.scale)
        statuses = (
            json.loads((report.parent / "runs.json").read_text())
            if (report.parent / "runs.json").exists()
            else {}
        )
        return 1 if any(s.get("status") == "failed" for s in statuses.values()) else 0

    return {"reproduce": handler}

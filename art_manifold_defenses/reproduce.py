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

The pieces live beside this module: the papers' scripts in ``_reproduce_papers``, intervals and verdicts in
``_reproduce_verdicts``, the ``summary.json`` schema in ``_reproduce_summary`` and the report in
``_reproduce_report``; every name is importable from here.
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
from pathlib import Path
from typing import Any

from ._reproduce_papers import REPRODUCTIONS as REPRODUCTIONS
from ._reproduce_papers import Reproduction as Reproduction
from ._reproduce_papers import _defence as _defence
from ._reproduce_papers import _out_work as _out_work
from ._reproduce_papers import _results_out as _results_out
from ._reproduce_report import _cell as _cell
from ._reproduce_report import _duration as _duration
from ._reproduce_report import _table as _table
from ._reproduce_report import _verdict_lines as _verdict_lines
from ._reproduce_report import render as render
from ._reproduce_summary import SUMMARY_FILE as SUMMARY_FILE
from ._reproduce_summary import _check_summary as _check_summary
from ._reproduce_summary import strongest_accuracy as strongest_accuracy
from ._reproduce_summary import write_summary as write_summary
from ._reproduce_verdicts import CONFIDENCE as CONFIDENCE
from ._reproduce_verdicts import TRAINING_FAILURE_POINTS as TRAINING_FAILURE_POINTS
from ._reproduce_verdicts import VERDICTS as VERDICTS
from ._reproduce_verdicts import accuracy_interval as accuracy_interval
from ._reproduce_verdicts import claim_verdict as claim_verdict
from ._reproduce_verdicts import clean_accuracy as clean_accuracy
from ._reproduce_verdicts import correct_count as correct_count
from ._reproduce_verdicts import not_testable as not_testable
from ._reproduce_verdicts import row_verdicts as row_verdicts
from ._reproduce_verdicts import training_failures as training_failures
from .utils import device_arg

__all__ = [
    "CONFIDENCE",
    "REPORT_FILE",
    "REPRODUCTIONS",
    "SCALES",
    "SUMMARY_FILE",
    "TRAINING_FAILURE_POINTS",
    "VERDICTS",
    "Reproduction",
    "accuracy_interval",
    "add_subcommands",
    "claim_verdict",
    "clean_accuracy",
    "correct_count",
    "examples_dir",
    "not_testable",
    "publish",
    "render",
    "reproduce",
    "row_verdicts",
    "run_one",
    "select",
    "strongest_accuracy",
    "training_failures",
    "write_summary",
]

REPORT_FILE = "REPRODUCTION.md"
SCALES = ("smoke", "quick", "full")


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

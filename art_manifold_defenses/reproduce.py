"""``amd reproduce <paper|all>``: run each paper's reproduction and render one ``REPRODUCTION.md``.

Every paper has a script in the repository's ``examples/`` (``reproduce_<paper>.py --scale smoke|quick|full``) that
trains (resuming from its own work folder), evaluates with the paper's attacks and with the harness's strongest ones
(per-point worst case, gradient-masking audit), certifies where the paper certifies, and writes a detailed Markdown
table plus a ``summary.json`` in the schema of :func:`write_summary`. This module runs those scripts one after the
other, each in its own process (a failure is recorded and the next paper still runs), and renders
``OUT/REPRODUCTION.md`` from the summaries: per paper, the paper's number, ours under the paper's attack and ours
under the strongest attack, with the audit flags, scale, seed, versions and run time.

A paper whose ``summary.json`` already exists for the same scale and seed is not run again (``--force`` reruns it;
the script itself still reuses its cached models and attack results). ``--render-only`` only rewrites the report.

Papers (``../shared/papers``): 000 RBF-CNN (Nandy et al. 2020), 001 radial-basis feature mapping (Taghanaki et al.
2019), 002 Feature Pyramid Decoder (Li et al. 2020), 003 manifold regularization (Jin & Rinard 2020) and its exact
verification table, 004 Rényi smoothing / STN (Li et al. 2019).
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

from .utils import device_arg

SUMMARY_FILE = "summary.json"
REPORT_FILE = "REPRODUCTION.md"
SCALES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Reproduction:
    """One paper's reproduction script and how ``amd reproduce`` calls it.

    ``arguments(folder, scale, data_root, seed, device)`` gives the script's command-line arguments so that its
    detailed table, its ``summary.json`` and its work files (models, cached attack results) all land in ``folder``.
    """

    key: str
    paper: str
    title: str
    script: str
    arguments: Callable[[Path, str, str, int, str], list[str]]


def _out_work(folder: Path, scale: str, data_root: str, seed: int, device: str) -> list[str]:
    """Scripts taking ``--out`` (the table) and ``--work`` (models and caches)."""
    return ["--scale", scale, "--out", str(folder), "--work", str(folder / "work"), "--data-root", data_root,
            "--seed", str(seed), "--device", device]  # fmt: skip


def _results_out(name: str, *, takes_device: bool = True) -> Callable[[Path, str, str, int, str], list[str]]:
    """Scripts taking ``--results`` (the table's path) and ``--out`` (models and caches); ``takes_device=False`` for a
    CPU-only script without ``--device``."""

    def arguments(folder: Path, scale: str, data_root: str, seed: int, device: str) -> list[str]:
        args = ["--scale", scale, "--results", str(folder / name), "--out", str(folder / "work"), "--data-root", data_root,
                "--seed", str(seed)]  # fmt: skip
        return [*args, "--device", device] if takes_device else args

    return arguments


#: The reproductions, in the order ``amd reproduce all`` runs them (cheapest first).
REPRODUCTIONS: dict[str, Reproduction] = {
    r.key: r
    for r in (
        Reproduction(
            "stn",
            "004",
            "Rényi randomized smoothing / STN (Li et al., NeurIPS 2019)",
            "reproduce_stn.py",
            _out_work,
        ),
        Reproduction(
            "verification",
            "003",
            "Exact verification of manifold regularization (Jin & Rinard 2020, Table 2)",
            "reproduce_verification.py",
            _results_out("verification.md", takes_device=False),
        ),  # fmt: skip
        Reproduction(
            "radial-mapping",
            "001",
            "Radial-basis feature mapping (Taghanaki et al., CVPR 2019)",
            "reproduce_radial_mapping.py",
            _out_work,
        ),  # fmt: skip
        Reproduction(
            "manifold-reg",
            "003",
            "Manifold regularization (Jin & Rinard 2020)",
            "reproduce_manifold_regularization.py",
            _out_work,
        ),  # fmt: skip
        Reproduction("rbf-cnn", "000", "RBF-CNN (Nandy, Hsu & Lee 2020)", "reproduce_rbf_cnn.py", _out_work),
        Reproduction(
            "fpd",
            "002",
            "Feature Pyramid Decoder (Li et al., CVPR 2020)",
            "reproduce_fpd.py",
            _results_out("fpd.md"),
        ),
    )
}


def write_summary(folder: str | Path, *, paper: str, scale: str, seed: int, seconds: float, command: str,
                  rows: list[dict[str, Any]], details: str, notes: Sequence[str] = ()) -> Path:  # fmt: skip
    """Write ``folder/summary.json``, the record ``amd reproduce`` renders (one per reproduction script).

    Each row: ``model``, ``metric`` (what is measured, e.g. ``"PGD linf 0.3"``), ``paper`` (the paper's number in %,
    or None where the paper has none), ``ours`` (our number in % under the paper's attack/setting), ``strongest``
    (ours in % under the strongest evaluation, the per-point worst case over every attack that ran; None where it
    does not apply, e.g. for a certified number) and ``flags`` (audit flag codes). ``details`` names the script's
    detailed table. Versions are recorded here, from the running process.
    """
    import platform

    import numpy as np
    import torch

    from ._version import __version__

    required = {"model", "metric", "paper", "ours", "strongest", "flags"}
    for row in rows:
        if missing := required - set(row):
            raise ValueError(f"summary row {row} lacks {sorted(missing)}")
    record = {
        "paper": paper, "scale": scale, "seed": seed, "seconds": float(seconds), "command": command, "details": details,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows, "notes": list(notes),
        "versions": {"art_manifold_defenses": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }  # fmt: skip
    path = Path(folder) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    return path


def strongest_accuracy(
    record: dict[str, Any], *, norm: str, eps: float | None, label: str | None = None
) -> float | None:
    """Per-point worst case (in %) over every attack of a harness ``results.json`` record in the threat model
    (``norm``, ``eps``): a point counts as robust when it is classified correctly clean and under every attack of that
    norm whose budget is at most ``eps`` (an adversarial example inside a smaller ball is inside this one too).

    A minimisation attack with no budget (``eps`` None, e.g. C&W l2 reported at a distance threshold) has no ball to
    share: pass its ``label`` and its own per-point result is returned. None when no attack of the record matches.
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
            f"the reproduction scripts are not in {folder}: run `amd reproduce` from a checkout of the repository "
            "(pip install -e .) or point AMD_EXAMPLES_DIR at its examples/ folder"
        )
    return folder


def select(names: Sequence[str]) -> list[Reproduction]:
    """The reproductions named (``all`` for every one), in :data:`REPRODUCTIONS` order; unknown names raise."""
    if unknown := [n for n in names if n != "all" and n not in REPRODUCTIONS]:
        raise ValueError(f"unknown paper(s) {unknown}: choose from {['all', *REPRODUCTIONS]}")
    return [r for key, r in REPRODUCTIONS.items() if "all" in names or key in names]


def run_one(item: Reproduction, out: Path, *, scale: str, data_root: str, seed: int, device: str, force: bool,
            python: str = sys.executable) -> dict[str, Any]:  # fmt: skip
    """Run one reproduction script (or reuse its summary); returns the status recorded in ``out/runs.json``."""
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


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(out: Path, items: Sequence[Reproduction], scale: str, statuses: dict[str, dict[str, Any]], *,
           flat_links: bool = False) -> str:  # fmt: skip
    """``REPRODUCTION.md``: one section per paper from its ``summary.json`` (or why there is none).

    Links to each paper's detailed table point into ``<paper>/`` (the layout of ``OUT``), or beside the report with
    ``flat_links`` (the layout :func:`publish` writes).
    """
    lines = [
        "# Reproduction of the five papers",
        "",
        f"Written by `amd reproduce {' '.join(i.key for i in items) if len(items) < len(REPRODUCTIONS) else 'all'} "
        f"--scale {scale}`. Numbers in %; *paper* is the paper's number, *ours (paper's attack)* is this package under "
        "the paper's own attack or setting, *ours (strongest)* is the per-point worst case over every attack the "
        "harness ran on that model (the honest number; '-' where it does not apply, e.g. certified accuracy). Audit "
        "flags are the harness's gradient-masking checks. Each section links the script's detailed table, which has "
        "the full settings. Seed noise: the numbers are from one seed; on n attacked points a difference below about "
        "2 sqrt(p(1-p)/n) (7 points at n = 200, p = 0.5) is sampling noise.",
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
                f"No result at scale `{scale}` (`{item.key}/{SUMMARY_FILE}` is from scale `{record['scale']}`).",
                "",
            ]
            continue
        versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
        lines += [
            f"Scale `{record['scale']}`, seed {record['seed']}, run time {_duration(record['seconds'])}, {record['date']}; "
            f"versions: {versions}.  ",
            f"Command: `{record['command']}`; details: [{record['details']}]"
            f"({record['details'] if flat_links else item.key + '/' + record['details']}).",
            "",
            "| model | metric | paper | ours (paper's attack) | ours (strongest) | audit flags |",
            "|---|---|---|---|---|---|",
        ]
        for row in record["rows"]:
            lines.append(f"| {row['model']} | {row['metric']} | {_cell(row['paper'])} | {_cell(row['ours'])} "
                         f"| {_cell(row['strongest'])} | {', '.join(row['flags']) or '-'} |")  # fmt: skip
        lines += ["", *[f"- {note}" for note in record["notes"]], ""]
    return "\n".join(lines).rstrip() + "\n"


def reproduce(names: Sequence[str], *, scale: str, out: str | Path, data_root: str, seed: int = 0, device: str = "cpu",
              force: bool = False, render_only: bool = False) -> Path:  # fmt: skip
    """Run the named reproductions (``["all"]`` for every paper) and write ``out/REPRODUCTION.md``; returns its path."""
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
    ``summary.json`` as ``summaries/<paper>.json``, and ``REPRODUCTION.md`` with links to those copies. Papers without
    a summary at ``scale`` are listed as not run and nothing of theirs is copied."""
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
    parser.add_argument("--data-root", default=os.environ.get("AMD_DATA_DIR", "../shared/data"),
                        help="folder with MNIST/raw (default: $AMD_DATA_DIR or ../shared/data)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed passed to every script (default: 0)")
    parser.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--force", action="store_true", help="rerun papers whose summary.json exists")
    parser.add_argument(
        "--render-only", action="store_true", help="only rewrite REPRODUCTION.md from the summaries"
    )
    parser.add_argument("--publish", default=None, metavar="DIR",
                        help="also copy the report and each paper's table into DIR (e.g. examples/results)")  # fmt: skip

    def handler(args: argparse.Namespace) -> int:
        try:
            report = reproduce(args.papers, scale=args.scale, out=args.out, data_root=args.data_root, seed=args.seed,
                               device=args.device, force=args.force, render_only=args.render_only)  # fmt: skip
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

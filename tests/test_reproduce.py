"""``amd reproduce``: the per-threat-model worst case, the summary schema, running scripts (reuse, failure) and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from art_manifold_defenses import cli
from art_manifold_defenses.reproduce import (
    REPRODUCTIONS,
    reproduce,
    select,
    strongest_accuracy,
    write_summary,
)

RECORD = {
    "per_point": {"clean_correct": [1, 1, 1, 0]},
    "attacks": [
        {"label": "PGD 0.1", "norm": "linf", "eps": 0.1, "correct": [1, 0, 1, 0], "error": None},
        {"label": "FGSM 0.3", "norm": "linf", "eps": 0.3, "correct": [1, 1, 0, 0], "error": None},
        {"label": "broken", "norm": "linf", "eps": 0.3, "correct": None, "error": "crashed"},
        {"label": "C&W l2", "norm": "l2", "eps": None, "correct": [0, 1, 1, 1], "error": None},
        {"label": "PGD l2 2", "norm": "l2", "eps": 2.0, "correct": [1, 1, 1, 0], "error": None},
    ],
}


def test_strongest_accuracy_takes_every_attack_in_the_ball_per_point() -> None:
    assert strongest_accuracy(RECORD, norm="linf", eps=0.3) == pytest.approx(25.0)  # only point 0 survives both
    assert strongest_accuracy(RECORD, norm="linf", eps=0.1) == pytest.approx(50.0)  # the 0.3 attack is outside the ball
    assert strongest_accuracy(RECORD, norm="l2", eps=2.0) == pytest.approx(75.0)  # C&W has no budget: not in the ball
    assert strongest_accuracy(RECORD, norm="l2", eps=None, label="C&W l2") == pytest.approx(50.0)  # clean-wrong point 3
    assert strongest_accuracy(RECORD, norm="l1", eps=15.0) is None


def test_write_summary_checks_rows_and_records_versions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks"):
        write_summary(tmp_path, paper="000", scale="smoke", seed=0, seconds=1.0, command="c", details="d.md",
                      rows=[{"model": "m", "metric": "clean"}])  # fmt: skip
    path = write_summary(tmp_path, paper="000", scale="smoke", seed=0, seconds=1.0, command="c", details="d.md",
                         rows=[{"model": "m", "metric": "clean", "paper": 99.0, "ours": 98.0, "strongest": None, "flags": []}])  # fmt: skip
    record = json.loads(path.read_text())
    assert record["rows"][0]["ours"] == 98.0 and "torch" in record["versions"]


def test_select_orders_and_rejects_unknown_papers() -> None:
    assert [r.key for r in select(["all"])] == list(REPRODUCTIONS)
    assert [r.key for r in select(["fpd", "stn"])] == ["stn", "fpd"]
    with pytest.raises(ValueError, match="unknown paper"):
        select(["nope"])


FAKE_SCRIPT = """
import argparse, pathlib, sys
from art_manifold_defenses.reproduce import write_summary
parser = argparse.ArgumentParser()
for name in ("--scale", "--out", "--work", "--data-root", "--seed", "--device", "--results"):
    parser.add_argument(name)
args = parser.parse_args()
folder = pathlib.Path(args.out)
folder.mkdir(parents=True, exist_ok=True)
with open(folder / "calls.txt", "a") as calls:
    calls.write("run\\n")
write_summary(folder, paper="004", scale=args.scale, seed=int(args.seed), seconds=12.0, command="fake", details="stn.md",
              rows=[{"model": "STN sigma=0.7", "metric": "certified l2 1.4", "paper": 51.0, "ours": 12.5, "strongest": None,
                     "flags": ["one_step_beats_iterative"]}], notes=["a note"])
"""


def test_reproduce_runs_reuses_records_failures_and_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "reproduce_stn.py").write_text(FAKE_SCRIPT)
    (examples / "reproduce_verification.py").write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    monkeypatch.setenv("AMD_EXAMPLES_DIR", str(examples))
    out = tmp_path / "out"
    code = cli.main(["reproduce", "stn", "verification", "--scale", "smoke", "--out", str(out), "--data-root", "x"])
    assert code == 1  # one paper failed; the other still ran
    assert (out / "stn" / "calls.txt").read_text() == "run\n"
    report = (out / "REPRODUCTION.md").read_text()
    assert "| STN sigma=0.7 | certified l2 1.4 | 51.0 | 12.5 | - | one_step_beats_iterative |" in report
    assert "- a note" in report and "failed (exit 3)" in report
    statuses = json.loads((out / "runs.json").read_text())
    assert statuses["stn"]["status"] == "ran" and statuses["verification"]["status"] == "failed"
    statuses["verification"] = {"status": "running", "started": "2026-01-01 00:00 UTC"}  # as a killed run leaves it
    (out / "runs.json").write_text(json.dumps(statuses))
    report = reproduce(["all"], scale="smoke", out=out, data_root="x", render_only=True).read_text()
    assert "started 2026-01-01 00:00 UTC, not finished" in report and "No result at scale `smoke`: not run." in report

    reproduce(["stn"], scale="smoke", out=out, data_root="x")  # same scale and seed: the summary is reused
    assert (out / "stn" / "calls.txt").read_text() == "run\n"
    reproduce(["stn"], scale="smoke", out=out, data_root="x", force=True)
    assert (out / "stn" / "calls.txt").read_text() == "run\nrun\n"


def test_reproduce_without_scripts_or_with_bad_arguments_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("AMD_EXAMPLES_DIR", str(tmp_path))
    assert cli.main(["reproduce", "stn", "--out", str(tmp_path / "o")]) == 2
    assert "reproduction scripts are not in" in capsys.readouterr().err
    assert cli.main(["reproduce", "bogus", "--out", str(tmp_path / "o")]) == 2
    assert "unknown paper" in capsys.readouterr().err


def test_repository_scripts_exist_for_every_reproduction() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    for item in REPRODUCTIONS.values():
        source = (examples / item.script).read_text()
        assert "write_summary(" in source, item.script


def test_report_does_not_pass_off_another_scale_as_this_one(tmp_path: Path) -> None:
    write_summary(tmp_path / "stn", paper="004", scale="smoke", seed=0, seconds=30.0, command="c", details="stn.md",
                  rows=[{"model": "m", "metric": "clean", "paper": None, "ours": 50.0, "strongest": None, "flags": []}])  # fmt: skip
    report = reproduce(["stn"], scale="quick", out=tmp_path, data_root="x", render_only=True).read_text()
    assert "is from scale `smoke`" in report and "| m | clean |" not in report
    report = reproduce(["stn"], scale="smoke", out=tmp_path, data_root="x", render_only=True).read_text()
    assert "| m | clean | - | 50.0 | - | - |" in report and "run time 30 s" in report


def test_publish_copies_tables_beside_the_report_with_working_links(tmp_path: Path) -> None:
    out, target = tmp_path / "out", tmp_path / "results"
    write_summary(out / "stn", paper="004", scale="quick", seed=0, seconds=300.0, command="c", details="stn.md",
                  rows=[{"model": "m", "metric": "clean", "paper": None, "ours": 50.0, "strongest": None, "flags": []}])  # fmt: skip
    (out / "stn" / "stn.md").write_text("# details\n")
    assert "(stn/stn.md)" in reproduce(["all"], scale="quick", out=out, data_root="x", render_only=True).read_text()
    assert cli.main(["reproduce", "all", "--scale", "quick", "--out", str(out), "--render-only", "--publish", str(target)]) == 0
    report = (target / "REPRODUCTION.md").read_text()
    assert "[stn.md](stn.md)" in report and "run time 5 min" in report and "No result at scale `quick`: not run." in report
    assert (target / "stn.md").read_text() == "# details\n"
    assert json.loads((target / "summaries" / "stn.json").read_text())["rows"][0]["ours"] == 50.0

"""``amd reproduce``: the per-threat-model worst case, the summary schema, running scripts (reuse, failure)
and the report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from art_manifold_defenses import cli
from art_manifold_defenses.reproduce import (
    REPRODUCTIONS,
    accuracy_interval,
    claim_verdict,
    not_testable,
    render,
    reproduce,
    row_verdicts,
    select,
    strongest_accuracy,
    training_failures,
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
    assert strongest_accuracy(RECORD, norm="linf", eps=0.3) == pytest.approx(
        25.0
    )  # only point 0 survives both
    assert strongest_accuracy(RECORD, norm="linf", eps=0.1) == pytest.approx(
        50.0
    )  # the 0.3 attack is outside the ball
    assert strongest_accuracy(RECORD, norm="l2", eps=2.0) == pytest.approx(
        75.0
    )  # C&W has no budget: not in the ball
    assert strongest_accuracy(RECORD, norm="l2", eps=None, label="C&W l2") == pytest.approx(
        50.0
    )  # clean-wrong point 3
    assert strongest_accuracy(RECORD, norm="l1", eps=15.0) is None


def test_write_summary_checks_rows_and_records_versions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks"):
        write_summary(
            tmp_path,
            paper="000",
            scale="smoke",
            seed=0,
            seconds=1.0,
            command="c",
            details="d.md",
            rows=[{"model": "m", "metric": "clean"}],
        )
    path = write_summary(
        tmp_path,
        paper="000",
        scale="smoke",
        seed=0,
        seconds=1.0,
        command="c",
        details="d.md",
        rows=[
            {
                "model": "m",
                "metric": "clean",
                "paper": 99.0,
                "ours": 98.0,
                "strongest": None,
                "flags": [],
                "n": 50,
            }
        ],
    )
    record = json.loads(path.read_text())
    assert (
        record["rows"][0]["ours"] == 98.0 and record["rows"][0]["n"] == 50 and "torch" in record["versions"]
    )
    assert record["baselines"] == {} and record["verdicts"] == []


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
row = {"model": "STN sigma=0.7", "metric": "certified l2 1.4", "paper": 51.0, "ours": 12.5, "strongest": None,
       "flags": ["one_step_beats_iterative"], "n": 200}
write_summary(folder, paper="004", scale=args.scale, seed=int(args.seed), seconds=12.0, command="fake",
              details="stn.md", rows=[row], notes=["a note"],
              verdicts=["STN sigma=0.7, certified l2 1.4: not reproduced (fake)"])
"""


def test_reproduce_runs_reuses_records_failures_and_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "reproduce_stn.py").write_text(FAKE_SCRIPT)
    (examples / "reproduce_verification.py").write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    monkeypatch.setenv("AMD_EXAMPLES_DIR", str(examples))
    out = tmp_path / "out"
    code = cli.main(
        ["reproduce", "stn", "verification", "--scale", "smoke", "--out", str(out), "--data-root", "x"]
    )
    assert code == 1  # one paper failed; the other still ran
    assert (out / "stn" / "calls.txt").read_text() == "run\n"
    report = (out / "REPRODUCTION.md").read_text()
    assert (
        "| STN sigma=0.7 | certified l2 1.4 | 200 | 51.0 | 12.5 [8.3, 17.9] | - | one_step_beats_iterative |"
        in report
    )
    assert "- a note" in report and "failed (exit 3)" in report
    assert (
        "- STN sigma=0.7, certified l2 1.4: not reproduced (fake)" in report and "Clopper-Pearson" in report
    )
    statuses = json.loads((out / "runs.json").read_text())
    assert statuses["stn"]["status"] == "ran" and statuses["verification"]["status"] == "failed"
    statuses["verification"] = {
        "status": "running",
        "started": "2026-01-01 00:00 UTC",
    }  # as a killed run leaves it
    (out / "runs.json").write_text(json.dumps(statuses))
    report = reproduce(["all"], scale="smoke", out=out, data_root="x", render_only=True).read_text()
    assert (
        "started 2026-01-01 00:00 UTC, not finished" in report
        and "No result at scale `smoke`: not run." in report
    )

    reproduce(["stn"], scale="smoke", out=out, data_root="x")  # same scale and seed: the summary is reused
    assert (out / "stn" / "calls.txt").read_text() == "run\n"
    reproduce(["stn"], scale="smoke", out=out, data_root="x", force=True)
    assert (out / "stn" / "calls.txt").read_text() == "run\nrun\n"


def test_reproduce_without_scripts_or_with_bad_arguments_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
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
    write_summary(
        tmp_path / "stn",
        paper="004",
        scale="smoke",
        seed=0,
        seconds=30.0,
        command="c",
        details="stn.md",
        rows=[
            {
                "model": "m",
                "metric": "clean",
                "paper": None,
                "ours": 50.0,
                "strongest": None,
                "flags": [],
                "n": 200,
            }
        ],
    )
    report = reproduce(["stn"], scale="quick", out=tmp_path, data_root="x", render_only=True).read_text()
    assert "is from scale `smoke`" in report and "| m | clean |" not in report
    report = reproduce(["stn"], scale="smoke", out=tmp_path, data_root="x", render_only=True).read_text()
    assert "| m | clean | 200 | - | 50.0 [42.9, 57.1] | - | - |" in report and "run time 30 s" in report


def test_publish_copies_tables_beside_the_report_with_working_links(tmp_path: Path) -> None:
    out, target = tmp_path / "out", tmp_path / "results"
    write_summary(
        out / "stn",
        paper="004",
        scale="quick",
        seed=0,
        seconds=300.0,
        command="c",
        details="stn.md",
        rows=[
            {
                "model": "m",
                "metric": "clean",
                "paper": None,
                "ours": 50.0,
                "strongest": None,
                "flags": [],
                "n": 2,
            }
        ],
    )
    (out / "stn" / "stn.md").write_text("# details\n")
    assert (
        "(stn/stn.md)"
        in reproduce(["all"], scale="quick", out=out, data_root="x", render_only=True).read_text()
    )
    assert (
        cli.main(
            [
                "reproduce",
                "all",
                "--scale",
                "quick",
                "--out",
                str(out),
                "--render-only",
                "--publish",
                str(target),
            ]
        )
        == 0
    )
    report = (target / "REPRODUCTION.md").read_text()
    assert (
        "[stn.md](stn.md)" in report
        and "run time 5 min" in report
        and "No result at scale `quick`: not run." in report
    )
    assert (target / "stn.md").read_text() == "# details\n"
    assert json.loads((target / "summaries" / "stn.json").read_text())["rows"][0]["ours"] == 50.0


def row(
    model: str,
    metric: str,
    ours: float | None,
    *,
    n: int = 200,
    paper: float | None = None,
    strongest: float | None = None,
) -> dict[str, object]:
    return {
        "model": model,
        "metric": metric,
        "paper": paper,
        "ours": ours,
        "strongest": strongest,
        "flags": [],
        "n": n,
    }


def test_accuracy_interval_is_the_two_sided_95_clopper_pearson_interval() -> None:
    assert accuracy_interval(0.0, 200) == pytest.approx(
        (0.0, 100 * (1 - 0.025 ** (1 / 200)))
    )  # 0 of 200: [0, 1.83]
    assert accuracy_interval(100.0, 200) == pytest.approx((100 * 0.025 ** (1 / 200), 100.0))
    assert accuracy_interval(50.0, 200) == pytest.approx(
        (42.8658, 57.1342), abs=1e-3
    )  # 100 of 200 (scipy, exact)
    assert accuracy_interval(12.0, 50) == pytest.approx((4.5335, 24.3101), abs=1e-3)
    lo, hi = accuracy_interval(50.0, 2000)
    assert 47.7 < lo < 47.8 and 52.2 < hi < 52.3  # narrower with more points
    with pytest.raises(ValueError, match="whole number"):
        accuracy_interval(12.3, 200)


def test_claim_verdict_judges_the_paper_number_against_our_interval() -> None:
    # 93.0 of 200 -> [88.5, 96.1]
    assert claim_verdict("c", 94.9, 93.0, 200).startswith(
        "c: reproduced (paper 94.9 inside ours 93.0 [88.5, 96.1], n = 200"
    )
    assert claim_verdict("c", 80.0, 93.0, 200).startswith(
        "c: reproduced (paper 80.0 below"
    )  # we beat the paper
    assert claim_verdict("c", 97.0, 93.0, 200).startswith("c: not reproduced (paper 97.0 above")
    # the same 97.0 lies inside the wider interval of 47 of 50 points: 94.0 [83.5, 98.7]
    assert claim_verdict("c", 97.0, 94.0, 50).startswith("c: reproduced (paper 97.0 inside")
    assert claim_verdict("c", 13.65, 22.5, 200, higher_is_better=False).startswith(
        "c: not reproduced (paper 13.7 below"
    )
    assert claim_verdict("c", 30.0, 22.5, 200, higher_is_better=False).startswith(
        "c: reproduced (paper 30.0 above"
    )
    assert claim_verdict("c", 80.0, 93.0, 200, higher_is_better=None).startswith(
        "c: not reproduced (paper 80.0 below"
    )
    assert claim_verdict("c", 94.9, None, 200) == "c: not testable here (not measured at this scale)"
    broken = claim_verdict("c", 94.9, 93.0, 200, strongest=12.0)
    assert broken.startswith("c: reproduced") and broken.endswith(
        "strongest attack 12.0 [7.8, 17.3]: paper above it"
    )
    assert not_testable("c", "CIFAR-10 only") == "c: not testable here (CIFAR-10 only)"


def test_training_failure_is_marked_and_not_presented_as_a_defence(tmp_path: Path) -> None:
    rows = [
        row("O", "clean", 97.5),
        row("O", "PGD linf 0.3", 0.0, paper=0.0, strongest=0.0),
        row("F", "clean", 96.5),
        row("F", "PGD linf 0.3", 40.0, paper=95.0, strongest=30.0),
        row("F_bad", "clean", 19.5, paper=99.0),
        row("F_bad", "PGD linf 0.3", 11.0, paper=95.0, strongest=10.0),
        row("F_bad", "PGD l2 1.5", 9.0, paper=90.0, strongest=9.0),
    ]
    baselines = {"F": "O", "F_bad": "O"}
    assert training_failures(rows, baselines) == {
        "F_bad": ("training failure (clean 19.5 vs 97.5 for its baseline O)")
    }
    assert (
        training_failures([row("O", "clean", 97.5), row("F", "clean", 92.5)], {"F": "O"}) == {}
    )  # exactly 5: kept
    assert list(training_failures([row("O", "clean", 97.5), row("F", "clean", 92.0)], {"F": "O"})) == ["F"]
    verdicts = row_verdicts(rows, baselines)
    assert verdicts == [
        "F, PGD linf 0.3 (paper 95.0): not reproduced (paper 95.0 above ours 40.0 [33.2, 47.1], n = 200); "
        "strongest attack 30.0 [23.7, 36.9]: paper above it",
        "F_bad, clean (paper 99.0): not reproduced (paper 99.0 above ours 19.5 [14.2, 25.7], n = 200)",
        (
            "F_bad, PGD linf 0.3 (paper 95.0): not testable here (training failure (clean 19.5 vs 97.5 for "
            "its "
            "baseline O))"
        ),
        (
            "F_bad, PGD l2 1.5 (paper 90.0): not testable here (training failure (clean 19.5 vs 97.5 for its "
            "baseline O))"
        ),
    ]
    write_summary(
        tmp_path / "fpd",
        paper="002",
        scale="quick",
        seed=0,
        seconds=1.0,
        command="c",
        details="fpd.md",
        rows=rows,
        baselines=baselines,
        verdicts=verdicts,
    )
    report = render(tmp_path, select(["fpd"]), "quick", {})
    assert "| F_bad | clean | 200 | 99.0 | 19.5 [14.2, 25.7] | - | - |" in report
    assert (
        "| F_bad | training failure (clean 19.5 vs 97.5 for its baseline O): robustness rows withheld"
        in report
    )
    assert (
        "11.0" not in report and "| F_bad | PGD" not in report
    )  # the collapsed model's robustness is not shown
    assert "its 2 robustness row(s) are in the detailed table only" in report
    assert "| F | PGD linf 0.3 | 200 | 95.0 | 40.0 [33.2, 47.1] | 30.0 [23.7, 36.9] | - |" in report
    assert "- F_bad, PGD l2 1.5 (paper 90.0): not testable here" in report


def test_write_summary_rejects_rows_baselines_and_verdicts_outside_the_schema(tmp_path: Path) -> None:
    def write(rows: list[dict[str, object]], **kwargs: object) -> Path:
        return write_summary(
            tmp_path,
            paper="0",
            scale="smoke",
            seed=0,
            seconds=1.0,
            command="c",
            details="d.md",
            rows=rows,
            **kwargs,
        )  # type: ignore[arg-type]

    no_n = row("m", "clean", 50.0)
    del no_n["n"]
    with pytest.raises(ValueError, match=r"lacks \['n'\]"):
        write([no_n])
    with pytest.raises(ValueError, match="non-negative integer"):
        write([row("m", "clean", 50.0, n=2.5)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strongest: 33.3 % of n = 200 points is not a whole number"):
        write([row("m", "PGD", 50.0, strongest=33.3)])
    with pytest.raises(ValueError, match="on n = 0 points"):
        write([row("m", "clean", 50.0, n=0)])
    write([row("m", "cert 1.0", None, n=0, paper=89.2)])  # nothing measured: n = 0 is allowed
    with pytest.raises(ValueError, match="'base' is not a model"):
        write([row("m", "clean", 50.0)], baselines={"m": "base"})
    with pytest.raises(ValueError, match="'m' has no clean row"):
        write([row("m", "PGD", 50.0), row("base", "clean", 99.0)], baselines={"m": "base"})
    with pytest.raises(ValueError, match="states none of"):
        write([row("m", "clean", 50.0)], verdicts=["looks fine"])


def test_old_summaries_without_n_baselines_or_verdicts_still_render(tmp_path: Path) -> None:
    (tmp_path / "fpd").mkdir()
    old = {
        "paper": "002",
        "scale": "quick",
        "seed": 0,
        "seconds": 60.0,
        "command": "c",
        "details": "fpd.md",
        "date": "2026-12-06 03:50 UTC",
        "notes": ["old"],
        "versions": {"torch": "2"},
        "rows": [
            {"model": "O", "metric": "clean", "paper": None, "ours": 97.5, "strongest": None, "flags": []},
            {"model": "O", "metric": "PGD l2 1.5", "paper": 82.0, "ours": 0.0, "strongest": 0.0, "flags": []},
        ],
    }
    (tmp_path / "fpd" / "summary.json").write_text(json.dumps(old))
    report = render(tmp_path, select(["fpd"]), "quick", {})
    assert (
        "| O | clean | ? | - | 97.5 | - | - |" in report
        and "| O | PGD l2 1.5 | ? | 82.0 | 0.0 | 0.0 | - |" in report
    )
    assert "none recorded (this summary predates the verdict schema)" in report and "- old" in report


def test_published_summaries_still_render(tmp_path: Path) -> None:
    published = Path(__file__).resolve().parent.parent / "examples" / "results" / "summaries"
    for item in REPRODUCTIONS.values():
        if (published / f"{item.key}.json").is_file():
            (tmp_path / item.key).mkdir()
            (tmp_path / item.key / "summary.json").write_text((published / f"{item.key}.json").read_text())
    report = render(tmp_path, select(["all"]), "quick", {}, flat_links=True)
    assert report.count("## Paper") == len(REPRODUCTIONS)


def load_script(name: str) -> Any:
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def harness_record(
    clean: list[int], attacks: dict[str, tuple[str, float | None, list[int]]]
) -> dict[str, Any]:
    return {
        "per_point": {"clean_correct": clean},
        "clean_accuracy": sum(clean) / len(clean),
        "attacks": [
            {
                "label": label,
                "norm": norm,
                "eps": eps,
                "correct": correct,
                "error": None,
                "accuracy": sum(correct) / len(correct),
            }
            for label, (norm, eps, correct) in attacks.items()
        ],
    }


def test_rbf_cnn_summary_has_n_baselines_and_verdicts_from_the_records(tmp_path: Path) -> None:
    rbf = load_script("reproduce_rbf_cnn")
    n = 200
    clean = [1] * 190 + [0] * 10
    half = [1] * 100 + [0] * 100
    results = {}
    for name in rbf.MODEL_NAMES:
        slug = name.replace("+", "plus")
        attacks = {
            "PGD linf 0.3": ("linf", 0.3, half),
            "PGD l1 15": ("l1", 15.0, clean),
            "PGD l2 2": ("l2", 2.0, half),
        }
        (tmp_path / "eval" / slug).mkdir(parents=True)
        (tmp_path / "eval" / slug / "results.json").write_text(json.dumps(harness_record(clean, attacks)))
        if name != "baseline":
            static = {"PGD linf 0.3 (static)": ("linf", 0.3, [0] * n)}  # the static attack breaks every point
            (tmp_path / "static" / slug).mkdir(parents=True)
            (tmp_path / "static" / slug / "results.json").write_text(
                json.dumps(harness_record(clean, static))
            )
        results[name] = {
            "clean": 95.0,
            "audit": [],
            "PGD linf 0.3": 50.0,
            "BPDA+EoT linf 0.3": 50.0,
            "cert 0.5": 85.0,
            "cert 0.7": None,
        }
    results["rCNN"]["clean"] = 80.0  # collapsed: more than 5 points below the baseline's 95.0
    rows = rbf.summary_rows(results, tmp_path, n_cert=20)
    by = {(r["model"], r["metric"]): r for r in rows}
    assert by[("baseline", "clean")]["n"] == n and by[("rCNN+", "PGD linf 0.3")]["n"] == n
    assert (
        by[("rCNN+", "PGD linf 0.3")]["strongest"] == 0.0
    )  # the static attack is in the per-point worst case
    assert by[("rCNN+", "cert 0.5")]["n"] == 20 and by[("rCNN+", "cert 0.7")]["ours"] is None
    verdicts = rbf.summary_verdicts(rows, rbf.SCALES["quick"], "quick")
    assert "not testable here (scale:" in verdicts[0]
    assert (
        "rCNN, PGD linf 0.3 (paper 78.3): not testable here (training failure (clean 80.0 vs 95.0 for its "
        "baseline baseline))" in verdicts
    )
    assert any(
        v.startswith("rCNN+, PGD linf 0.3 (paper 94.9): not reproduced (paper 94.9 above ours 50.0")
        for v in verdicts
    )
    assert any(v.startswith("rCNN+, cert 0.7 (paper 96.3): not testable here") for v in verdicts)
    write_summary(
        tmp_path / "out",
        paper="000",
        scale="quick",
        seed=0,
        seconds=1.0,
        command="c",
        details="rbf_cnn.md",
        rows=rows,
        baselines=rbf.BASELINES,
        verdicts=verdicts,
    )
    with pytest.raises(ValueError, match="static attacks ran on other points"):
        (tmp_path / "static" / "rCNNplus" / "results.json").write_text(
            json.dumps(harness_record(clean[:50], {}))
        )
        rbf.summary_rows(results, tmp_path, n_cert=20)


def test_rbf_cnn_quick_attacks_at_least_200_points_and_skips_only_suite_attacks() -> None:
    from art_manifold_defenses.rbf_reconstruction.suite import paper_suite

    quick = load_script("reproduce_rbf_cnn").SCALES["quick"]
    assert quick["n_eval"] >= 200
    suite = paper_suite(
        pgd_steps=quick["pgd_steps"],
        cw_steps=quick["cw_steps"],
        ead_search_steps=quick["ead_search_steps"],
        cw_linf=quick["cw_linf"],
        autoattack=quick["autoattack"],
    )
    labels = {spec.label for spec in suite}
    assert set(quick["skip"]) <= labels
    kept = labels - set(
        quick["skip"]
    )  # every paper budget keeps its PGD and a margin-loss or AutoAttack attack
    assert {
        "PGD linf 0.3",
        "AutoAttack linf 0.3",
        "PGD l1 15",
        "APGD-DLR l1 15",
        "PGD l2 2",
        ("AutoAttack l2 2"),
    } <= kept


def test_other_scripts_give_every_row_its_n_and_a_valid_summary(tmp_path: Path) -> None:
    fpd = load_script("reproduce_fpd")
    runs = {
        name: {
            "clean": clean,
            "per_attack": {c: 0.5 for c in fpd.PAPER_COLUMNS},
            "worst_linf": 0.25,
            "worst_l2": 0.25,
            "flags": [],
        }
        for name, clean in (("O", 0.975), ("F", 0.965), ("F_authors", 0.195))
    }
    rows = fpd.summary_rows(runs, 200)
    assert {r["n"] for r in rows} == {200}
    baselines = {m: b for m, b in fpd.BASELINES.items() if m in runs and b in runs}
    verdicts = fpd.summary_verdicts(rows, baselines, fpd.SCALES["quick"], "quick")
    assert (
        verdicts[0].startswith("Table 2 in the paper's setting")
        and "not testable here (scale: resnet18" in verdicts[0]
    )
    assert sum("F, " in v for v in verdicts) == len(fpd.PAPER_COLUMNS) and not any(
        "F_authors" in v for v in verdicts
    )
    write_summary(
        tmp_path / "fpd",
        paper="002",
        scale="quick",
        seed=0,
        seconds=1.0,
        command="c",
        details="fpd.md",
        rows=rows,
        baselines=baselines,
        verdicts=verdicts,
    )
    assert "F_authors | training failure (clean 19.5 vs 97.5 for its baseline O)" in render(
        tmp_path, select(["fpd"]), "quick", {}
    )

    radial = load_script("reproduce_radial_mapping")
    attacks = {label: (norm, eps, [1] * 100 + [0] * 100) for label, norm, eps in radial.TABLE1_ATTACKS}
    runs = {}
    for name in ("ORIG", "PROP (paper)"):
        slug = name.replace(" ", "_").replace("(", "").replace(")", "")
        (tmp_path / "radial" / slug / "eval").mkdir(parents=True)
        (tmp_path / "radial" / slug / "eval" / "results.json").write_text(
            json.dumps(harness_record([1] * 200, attacks))
        )
        runs[name] = {"clean_full_test": 0.9875, "attacks": {label: 0.5 for label in attacks}, "audit": []}
    rows = radial.summary_rows(runs, tmp_path / "radial", clean_n=10000)
    assert {(r["metric"].startswith("clean"), r["n"]) for r in rows} == {(True, 10000), (False, 200)}
    write_summary(
        tmp_path / "radial-out",
        paper="001",
        scale="quick",
        seed=0,
        seconds=1.0,
        command="c",
        details="d.md",
        rows=rows,
        baselines={"PROP (paper)": "ORIG"},
        verdicts=row_verdicts(rows, {"PROP (paper)": "ORIG"}),
    )

    verification = load_script("reproduce_verification")
    runs_v = [
        {
            "model": m,
            "n": 200,
            "clean_accuracy": 0.995,
            "pgd_accuracy": 0.925,
            "verified_accuracy": 0.8,
            "timeouts": 0.125,
        }
        for m in ("plain", "manifold-reg")
    ]
    rows = verification.summary_rows(runs_v)
    assert {r["n"] for r in rows} == {200}
    write_summary(
        tmp_path / "verification",
        paper="003",
        scale="quick",
        seed=0,
        seconds=1.0,
        command="c",
        details="d.md",
        rows=rows,
        baselines={"manifold-reg": "plain"},
    )

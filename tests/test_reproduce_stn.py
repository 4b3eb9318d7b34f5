"""``examples/reproduce_stn.py`` at the smoke scale: the smoothed classifier is attacked through the harness
(EoT PGD, AutoAttack rand, transfer from the base model) on the same points, the summary rows carry ``n`` and
a per-point worst case that is never above the row's own attack, and a rerun resumes from the work folder."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "reproduce_stn.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reproduce_stn_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_suite_runs_the_authors_eot_pgd_autoattack_rand_and_transfer_at_every_budget(
    script: ModuleType,
) -> None:
    budget = script.AttackBudget(20, 8, 20, 8, 40, 25, 1)
    specs = script.stn_suite((1.0, 2.0), (0.1, 0.3), budget)
    by_label = {s.label: s for s in specs}
    assert len(by_label) == len(specs) == 12
    for norm, eps in (("l2", 1.0), ("l2", 2.0), ("linf", 0.1), ("linf", 0.3)):
        pgd = by_label[f"EoT PGD {norm} {eps:g}"]
        assert (pgd.library, pgd.attack, pgd.norm, pgd.eps) == ("art", "pgd", norm, eps)
        assert pgd.params["num_random_init"] == 0 and pgd.params["max_iter"] == 20
        # the authors' steps: eps / 10 in l-inf, 2.5 eps / steps in l2
        assert math.isclose(pgd.params["eps_step"], eps / 10 if norm == "linf" else 2.5 * eps / 20)
        auto = by_label[f"AutoAttack rand {norm} {eps:g}"]
        assert (auto.library, auto.attack, auto.eps) == ("autoattack", "rand", eps)
        assert auto.params == {"steps": 20, "eot_iter": 8} and auto.margin_loss
        transfer = by_label[f"transfer from base {norm} {eps:g}"]
        assert transfer.library == "transfer" and transfer.eps == eps and transfer.black_box
        assert transfer.base_spec().params == {"max_iter": 40}
    # a budget limited to some norms attacks only those
    l2_only = script.stn_suite((1.0, 2.0), (0.1, 0.3), script.AttackBudget(10, 4, 10, 2, 20, 25, 1, ("l2",)))
    assert len(l2_only) == 6 and {s.norm for s in l2_only} == {"l2"}


def test_quick_scale_attacks_at_least_200_points_and_full_budget_for_the_headline_models(
    script: ModuleType,
) -> None:
    quick = script.SCALES["quick"]
    assert quick.attack_images >= 200
    assert script.headline_sigma(quick) == 0.7
    assert quick.headline.pgd_steps == 20  # the authors' EoT PGD steps on the paper's sigma


def _run(script: ModuleType, tmp_path: Path, data_root: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out"
    code = script.main(
        [
            "--scale",
            "smoke",
            "--dataset",
            "mnist-embedded",
            "--data-root",
            data_root,
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--quiet",
        ]
    )
    assert code == 0
    return json.loads((out / "summary.json").read_text()), (out / "stn.md").read_text()


@pytest.mark.slow
def test_smoke_run_evaluates_through_the_harness_and_rows_carry_n_and_worst_case(
    script: ModuleType, tmp_path: Path, data_root: str
) -> None:
    summary, details = _run(script, tmp_path, data_root)
    scale = script.SCALES["smoke"]
    rows = summary["rows"]
    detail = json.loads((tmp_path / "out" / "stn.json").read_text())
    # one verdict per paper number of an STN row, judged from the numbers
    claims = [r for r in rows if r["model"].startswith("STN") and r["paper"] is not None]
    assert len(summary["verdicts"]) == len(claims) > 0
    assert all(any(word in v for word in ("reproduced", "not testable here")) for v in summary["verdicts"])
    assert (
        {r["model"] for r in rows}
        == {run["name"] for run in detail["runs"]}
        == {
            "STN sigma=0.7",
            "Gaussian aug. (ablation) sigma=0.7",
        }
    )
    attacked = [r for r in rows if r["strongest"] is not None]
    assert {r["metric"] for r in attacked} == {
        f"{kind} {norm} {eps:g}"
        for kind in ("EoT PGD", "transfer from base")
        for norm, eps in (("l2", 2.0), ("linf", 0.3))
    }
    for row in rows:
        assert isinstance(row["n"], int) and isinstance(row["flags"], list)
        if row["metric"].startswith("certified"):  # n = the images certified at that n
            expected_n = (
                scale.cert_images_small_n if "n = 100," in row["metric"] else scale.cert_images_large_n
            )
            assert row["n"] == expected_n, row
        else:
            assert row["n"] == scale.attack_images, row
    for row in attacked:
        assert row["strongest"] <= row["ours"] + 1e-9, row  # the worst case includes the row's own attack
    # the transfer paper numbers stand beside the STN sigma = 0.7 transfer rows only
    assert next(
        r for r in attacked if r["metric"] == "transfer from base l2 2" and r["model"].startswith("STN")
    )["paper"] == pytest.approx(93.2)

    for run in detail["runs"]:
        record = json.loads(Path(run["evaluation"]).read_text())
        assert set(run["flags"]) == {f["code"] for f in record["audit"]["flags"]}
        model_rows = [r for r in attacked if r["model"] == run["name"]]
        assert all(r["flags"] == run["flags"] for r in model_rows)
        attacks = {a["label"]: a for a in record["attacks"]}
        assert not run["errors"] and len(attacks) == 6
        clean = np.asarray(record["per_point"]["clean_correct"], dtype=bool)
        assert len(clean) == scale.attack_images
        for label, attack in attacks.items():
            assert len(attack["correct"]) == scale.attack_images  # the same points for every attack
            if label.startswith("EoT PGD"):
                assert attack["eot_samples"] == scale.headline.eot_samples  # the harness wrapped it in EoT
            if label.startswith("AutoAttack"):
                assert attack["attack"] == "rand"
        # "strongest" is the per-point worst case over every attack of the norm at that budget or below
        for norm, eps in (("l2", 2.0), ("linf", 0.3)):
            robust = clean.copy()
            for attack in attacks.values():
                if attack["norm"] == norm and attack["eps"] <= eps:
                    robust &= np.asarray(attack["correct"], dtype=bool)
            expected = 100.0 * robust.mean()
            for row in model_rows:
                if row["metric"].endswith(f"{norm} {eps:g}"):
                    assert row["strongest"] == pytest.approx(expected)
                    assert row["ours"] == pytest.approx(100.0 * attacks[row["metric"]]["accuracy"])

    for name in ("EoT PGD", "AutoAttack rand", "transfer from base", "worst case (per point)"):
        assert details.count(f"| {name} |") == 2, name  # one line per model in the detailed table

    # a rerun reads the weights, certificates and attack results back: the same rows
    again, _ = _run(script, tmp_path, data_root)
    assert again["rows"] == rows

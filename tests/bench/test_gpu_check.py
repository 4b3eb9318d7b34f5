"""``bench/gpu_check.py``: the one-command GPU readiness check, run with ``--tiny`` on CPU (as CI runs it)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from art_manifold_defenses.demo import demo_entry_names

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"
SUITES = ("quick", "autoattack")


def _module() -> ModuleType:
    """``bench/gpu_check.py`` imported as a module (registered first: its dataclasses look their module
    up)."""
    name = "amd_bench_gpu_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _run(
    out: Path, *extra: str, timeout: float = 900
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    assert (out / "gpu_check.json").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def _fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and 0.0 <= value <= 1.0


@pytest.mark.slow
def test_tiny_run_on_cpu_writes_its_summary(tmp_path: Path) -> None:
    proc, data, md = _run(tmp_path)
    failures = [
        f"{row['name']}: {row['status']}: {row['error']}" for row in data["stages"] if row["status"] != "ok"
    ]
    assert proc.returncode == 0 and not failures, "\n".join(failures) or proc.stderr[-3000:]
    models = demo_entry_names()
    assert set(models) >= {"baseline", "rbf-cnn", "radial-mapping", "fpd", "manifold-reg", "stn"}
    expected = ["certify", *[f"{kind}:{m}" for m in models for kind in ("train", *SUITES)]]
    stages = {row["name"]: row for row in data["stages"]}
    assert [row["name"] for row in data["stages"]] == expected
    assert data["ok"] and data["complete"] and data["failed_stages"] == []
    for name, row in stages.items():
        assert row["status"] == "ok" and row["error"] is None, (name, row)
        assert _finite(row["seconds"]) and _finite(row["cpu_seconds"]) and row["budget_seconds"] > 0, (
            name,
            row,
        )
        assert f"| {name} | ok |" in md
    for m in models:
        train = stages[f"train:{m}"]
        assert (
            train["train_images"] == 256 and _fraction(train["test_accuracy"]) and train["test_images"] == 256
        )
        assert (tmp_path / "models" / m / "model.pt").is_file()
        for suite in SUITES:
            row = stages[f"{suite}:{m}"]
            assert row["images"] == 16
            assert _fraction(row["clean_accuracy"]) and _fraction(row["robust_accuracy"]), row
            assert row["robust_accuracy"] <= row["clean_accuracy"]
            assert row["attacks"] and all(_fraction(a) for a in row["attacks"].values())
            assert data["models"][m][suite] == {k: row[k] for k in ("clean_accuracy", "robust_accuracy")}
            assert (tmp_path / "models" / m / suite / "results.json").is_file()
        assert data["models"][m]["test_accuracy"] == train["test_accuracy"]
    assert any(label.startswith("autoattack") for label in stages["autoattack:baseline"]["attacks"])
    # bench/certify.py against ART, parsed from its output
    certify = data["certify"]["small_cnn"]
    assert {"forward", "fwd+noise", "ours", "art"} <= set(certify["seconds_per_image"])
    assert all(v > 0 for v in certify["seconds_per_image"].values())
    assert certify["ratio_to_forward"]["forward"] == pytest.approx(1.0)
    assert certify["art_over_ours"] > 0
    assert "--n 1000" in stages["certify"]["command"] and "bench/certify.py" in stages["certify"]["command"]
    assert (tmp_path / "certify.txt").read_text().count("speed-up of ours over ART") == 1
    # environment and command line
    env = data["environment"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["device_name"]
    assert data["command"].startswith("python ") and "--tiny" in data["command"]
    assert data["mode"] == "tiny" and _finite(data["wall_seconds"])
    for heading in ("## Stages", "## Accuracies", "## Certification against ART"):
        assert heading in md
    assert "every stage ok" in md and "ART / ours" in md


@pytest.mark.slow
def test_failed_and_overrun_stages_are_recorded_and_the_next_stage_runs(tmp_path: Path) -> None:
    """A stage past its budget is killed (with bench/certify.py under it), one that raises is recorded with
    its message, and the stage after them still runs in a fresh worker; the exit status says not every stage
    is ok."""
    proc, data, md = _run(
        tmp_path,
        "--stages",
        "certify,quick:baseline,train:radial-mapping",
        "--budget",
        "certify=0.5",
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {row["name"]: row for row in data["stages"]}
    assert list(rows) == ["certify", "quick:baseline", "train:radial-mapping"]
    assert rows["certify"]["status"] == "timeout" and "budget of 0.5 s" in rows["certify"]["error"]
    assert rows["certify"]["budget_seconds"] == 0.5 and _finite(rows["certify"]["seconds"])
    assert rows["quick:baseline"]["status"] == "error"
    assert "train:baseline failed or did not run" in rows["quick:baseline"]["error"]
    assert rows["train:radial-mapping"]["status"] == "ok" and rows["train:radial-mapping"]["error"] is None
    assert _fraction(rows["train:radial-mapping"]["test_accuracy"])
    assert data["failed_stages"] == ["certify", "quick:baseline"] and not data["ok"] and data["complete"]
    assert (
        "| certify | timeout |" in md and "| quick:baseline | error |" in md and "train:baseline failed" in md
    )
    assert len(list((tmp_path / "events").glob("worker-*.jsonl"))) == 2  # the killed worker, then a fresh one


def test_stages_not_started_within_the_time_limit_are_skipped(tmp_path: Path) -> None:
    proc, data, md = _run(tmp_path, "--stages", "certify,train:baseline", "--time-limit", "0.5", timeout=120)
    assert proc.returncode == 1
    assert [(r["name"], r["status"]) for r in data["stages"]] in (
        [("certify", "skipped"), ("train:baseline", "skipped")],
        [("certify", "timeout"), ("train:baseline", "skipped")],  # a worker that started within the limit
    )
    assert "--time-limit of 0.5 s" in data["stages"][-1]["error"]
    assert "| train:baseline | skipped |" in md and not (tmp_path / "models" / "baseline").exists()


def test_parse_certify_output_reads_bench_certify_table() -> None:
    text = """device=cuda n=100000 n0=100 images=2 batch=1000 threads=16 clock=wall time

tramer_a: seconds/image (best of 2), ratio to the forward-only limit and to the forward+noise limit; peak extra memory
  forward      0.0500 s/image   x 1.00 fwd   x 0.80 fwd+noise        n/a MiB
  fwd+noise    0.0625 s/image   x 1.25 fwd   x 1.00 fwd+noise        n/a MiB
  ours         0.0700 s/image   x 1.40 fwd   x 1.12 fwd+noise        n/a MiB
  art          0.7000 s/image   x14.00 fwd   x11.20 fwd+noise        n/a MiB
  speed-up of ours over ART: x10.00

small_cnn: seconds/image (best of 2), ratio to the forward-only limit and to the forward+noise limit; peak extra memory
  forward   1.2e-03 s/image   x 1.00 fwd   x 0.50 fwd+noise        n/a MiB
"""
    parsed = _module().parse_certify_output(text)
    assert set(parsed) == {"tramer_a", "small_cnn"}
    assert parsed["tramer_a"]["seconds_per_image"] == {
        "forward": 0.05,
        "fwd+noise": 0.0625,
        "ours": 0.07,
        "art": 0.7,
    }
    assert parsed["tramer_a"]["ratio_to_forward"]["art"] == 14.0
    assert parsed["tramer_a"]["ratio_to_fwd_noise"]["ours"] == 1.12
    assert parsed["tramer_a"]["art_over_ours"] == 10.0
    assert parsed["small_cnn"]["seconds_per_image"] == {"forward": 0.0012}
    assert parsed["small_cnn"]["art_over_ours"] is None  # the script's run with --skip-art: no ratio to ART


def test_full_plan_and_bad_options() -> None:
    gpu_check = _module()
    stages = gpu_check.build_stages(gpu_check.FULL_PLAN)
    assert [s.name for s in stages] == gpu_check.stage_names() and len(stages) == 1 + 3 * len(
        demo_entry_names()
    )
    assert sum(s.budget for s in stages) <= 8 * 60  # the per-stage budgets fit the 8 minutes
    assert gpu_check.FULL_PLAN.time_limit < 8 * 60
    assert gpu_check.FULL_PLAN.dataset == "mnist" and gpu_check.FULL_PLAN.train_limit is None
    assert gpu_check.FULL_PLAN.eval_images == 1000 and gpu_check.FULL_PLAN.certify_n == 100_000
    command = gpu_check.certify_command(gpu_check.FULL_PLAN, "cuda")
    assert command[1].endswith("bench/certify.py") and command[command.index("--n") + 1] == "100000"
    assert "--skip-art" not in command and command[command.index("--device") + 1] == "cuda"
    scaled = gpu_check.build_stages(gpu_check.FULL_PLAN, 2.0, ["train:fpd", "certify"], {"certify": 7.0})
    assert [(s.name, s.budget) for s in scaled] == [
        ("certify", 7.0),
        ("train:fpd", 2 * gpu_check.FULL_PLAN.budget("train:fpd")),
    ]
    with pytest.raises(ValueError, match="unknown stage"):
        gpu_check.build_stages(gpu_check.FULL_PLAN, only=["train:nope"])
    for bad in (
        ["--stages", "quick:nope"],
        ["--budget", "certify"],
        ["--budget", "certify=-1"],
        ["--budget-scale", "0"],
    ):
        with pytest.raises(SystemExit) as excinfo:
            gpu_check.parse_args(["--device", "cpu", *bad])
        assert excinfo.value.code == 2

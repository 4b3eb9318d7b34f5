"""The `amd` command: train writes model.pt + model.json and prints accuracy; info prints versions; errors are
clear."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from art_manifold_defenses.checkpoint import load_checkpoint
from art_manifold_defenses.cli import main


def test_train_writes_checkpoint_and_prints_accuracy(
    tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--dataset",
            "mnist-embedded",
            "--data-root",
            data_root,
            "--model",
            "wong_small",
            "--epochs",
            "2",
            "--lr",
            "0.003",
            "--train-limit",
            "500",
            "--batch-size",
            "50",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed
    meta = json.loads((out / "model.json").read_text())
    assert meta["architecture"]["name"] == "wong_small" and meta["dataset"] == "mnist-embedded"
    accuracy = float(printed.split("test accuracy:")[1].split()[0])
    assert meta["extra"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert accuracy > 0.5
    model, _ = load_checkpoint(out / "model.pt")
    assert model is not None


def test_train_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "--dataset",
            "mnist",
            "--data-root",
            str(tmp_path),
            "--model",
            "wong_small",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "MNIST/raw" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model", "alexnet", "--out", str(tmp_path)])


def test_info_runs_as_a_console_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "art_manifold_defenses", "info"], capture_output=True, text=True, check=True
    )
    info = json.loads(result.stdout)
    assert info["torch"].startswith("2.13.0")
    assert "cpu" in info["devices"]


def test_every_wired_defence_and_paper_suite_is_reachable() -> None:
    import importlib

    from art_manifold_defenses import cli
    from art_manifold_defenses.evaluation import get_suite, suite_names

    for name, module_path in cli.DEFENCE_TRAINERS.items():
        module = importlib.import_module(module_path)
        assert callable(module.add_train_arguments) and callable(module.train_from_args), name
    for name in cli.PAPER_SUITES:
        cli.register_paper_suite(name)
        assert name in suite_names()
        assert len(get_suite(name)) > 0
    parser = cli._build_parser()  # builds every subparser: no conflicting options between defences
    for command in ("fit-rbf", "certify", "verify", "feature-analysis", "evaluate", "demo"):
        assert command in cli.COMMANDS
    args = parser.parse_args(["train", "--defense", "stn", "--sigma", "0.5", "--out", "x"])
    assert args.defense == "stn" and args.sigma == 0.5

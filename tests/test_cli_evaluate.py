"""``amd evaluate`` and ``amd demo`` end to end on a tiny checkpoint with a tiny suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from art_manifold_defenses import cli
from art_manifold_defenses.checkpoint import save_checkpoint
from art_manifold_defenses.evaluation import (
    AttackSpec,
    load_results,
    recompute_robust_accuracy,
    register_suite,
)
from art_manifold_defenses.models import build_model
from art_manifold_defenses.training import train

ARCH = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}


def _tiny_suite(*, norm: str, eps: float) -> list[AttackSpec]:
    return [AttackSpec("art", "fgsm", norm, eps), AttackSpec("cleverhans", "pgd", norm, eps, {"nb_iter": 3})]


register_suite("test-cli-tiny", _tiny_suite, norms=("linf",), overwrite=True)


def _train_tiny(x: np.ndarray, y: np.ndarray, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    arch = dict(ARCH)
    model = build_model(arch.pop("name"), **arch)
    train(model, x[:500], y[:500], epochs=1, batch_size=64, verbose=False, seed=seed)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(mnist_small, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    x_train, y_train, _, _ = mnist_small
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(_train_tiny(x_train, y_train), path, architecture=ARCH, dataset="mnist-embedded")
    return path


def test_evaluate_end_to_end(
    checkpoint: Path, data_root: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--data-root",
        data_root,
        "--n",
        "24",
        "--suite",
        "test-cli-tiny",
        "--eps",
        "0.2",
        "--seed",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(argv) == 0
    assert "robust accuracy" in capsys.readouterr().out
    for name in ("results.json", "results.md", "curves.png"):
        assert (out / name).is_file(), name
    record = load_results(out / "results.json")
    assert record["n"] == 24 and record["dataset"] == "mnist-embedded" and record["seed"] == 3
    assert record["model"] == "wong_small"
    assert [(a["library"], a["attack"], a["eps"]) for a in record["attacks"]] == [
        ("art", "fgsm", 0.2),
        ("cleverhans", "pgd", 0.2),
    ]
    assert record["robust_accuracy"] == pytest.approx(recompute_robust_accuracy(record))
    assert record["robust_accuracy"] < record["clean_accuracy"]
    # a second run resumes: the per-attack files are reused, the numbers are identical
    files = {p.name: p.stat().st_mtime_ns for p in (out / "attacks").glob("*.json")}
    assert len(files) == 2
    assert cli.main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "attacks").glob("*.json")} == files
    assert load_results(out / "results.json")["robust_accuracy"] == record["robust_accuracy"]


def test_evaluate_with_surrogate_adds_a_transfer_attack(
    checkpoint: Path, data_root: str, tmp_path: Path
) -> None:
    torch.manual_seed(1)
    arch = dict(ARCH)
    source = (
        tmp_path / "source" / "model.pt"
    )  # an untrained source model is still a valid (weak) transfer source
    save_checkpoint(
        build_model(arch.pop("name"), **arch), source, architecture=ARCH, dataset="mnist-embedded"
    )
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--data-root",
        data_root,
        "--n",
        "12",
        "--suite",
        "test-cli-tiny",
        "--surrogate",
        str(source),
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(argv) == 0
    record = json.loads((out / "results.json").read_text())
    transfer = record["attacks"][-1]
    assert transfer["library"] == "transfer" and transfer["error"] is None
    assert transfer["params"]["base"] == {"library": "cleverhans", "attack": "pgd", "params": {"nb_iter": 3}}


def test_evaluate_reports_bad_arguments(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "not found" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "evaluate",
                "--checkpoint",
                str(checkpoint),
                "--suite",
                "no-such-suite",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "unknown suite" in capsys.readouterr().err

"""``amd verify`` through ``add_subcommands`` (called directly, as the maintainer wires it into ``amd``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from art_manifold_defenses.checkpoint import save_checkpoint
from art_manifold_defenses.models import build_model
from art_manifold_defenses.training import train
from art_manifold_defenses.verification.cli import (
    TSV_COLUMNS,
    add_subcommands,
    read_verification_tsv,
    summarize_rows,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, mnist_small: tuple[np.ndarray, ...]) -> Path:
    x_train, y_train, _, _ = mnist_small
    torch.manual_seed(0)
    model = build_model("wong_small")
    train(model, x_train[:256], y_train[:256], epochs=1, batch_size=64, verbose=False, seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    arch = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
    save_checkpoint(model.eval(), path, architecture=arch, dataset="mnist-embedded")
    return path


def _parse(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(prog="amd")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = add_subcommands(sub)
    return parser.parse_args(argv), commands


def test_verify_command_writes_tsv_and_summary_and_resumes(
    checkpoint: Path, tmp_path: Path, data_root: str
) -> None:
    out = tmp_path / "out"
    base = [
        "verify",
        "--checkpoint",
        str(checkpoint),
        "--eps",
        "0.005",
        "--out",
        str(out),
        "--data-root",
        data_root,
        "--time-limit",
        "20",
        "--bounds",
        "crown",
        "--pgd-restarts",
        "2",
        "--quiet",
    ]
    args, commands = _parse([*base, "--n", "2"])
    assert set(commands) == {"verify"}
    assert commands["verify"](args) == 0
    rows = read_verification_tsv(out / "verification.tsv")
    assert [int(r["idx"]) for r in rows] == [0, 1]
    assert list(rows[0]) == TSV_COLUMNS
    # resume: a longer run only adds the missing rows
    args, commands = _parse([*base, "--n", "3"])
    assert commands["verify"](args) == 0
    rows = read_verification_tsv(out / "verification.tsv")
    assert [int(r["idx"]) for r in rows] == [0, 1, 2]
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["n"] == 3
    assert summary["verified_accuracy"] <= summary["pgd_accuracy"] <= summary["clean_accuracy"]
    assert summary["verified_but_pgd_broken"] == 0
    assert summary["relus"] == 16 * 14 * 14 + 32 * 7 * 7 + 128
    text = (out / "summary.md").read_text()
    assert "| verified | PGD-20x2 | clean |" in text


def test_verify_command_rejects_bad_arguments(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:  # checked when parsed
        _parse(["verify", "--checkpoint", str(checkpoint), "--eps", "2", "--out", str(tmp_path)])
    assert (
        exit_info.value.code == 2
        and "argument --eps: expected a number in [0, 1], got '2'" in capsys.readouterr().err
    )
    args, commands = _parse(
        ["verify", "--checkpoint", str(tmp_path / "missing.pt"), "--eps", "0.1", "--out", str(tmp_path)]
    )
    with pytest.raises(FileNotFoundError):
        commands["verify"](args)


def test_summarize_rows_counts_statuses() -> None:
    def row(idx: int, status: str, method: str, pgd: int, predict: int = 1) -> dict:
        return {
            "idx": idx,
            "label": 1,
            "prediction": predict,
            "status": status,
            "method": method,
            "pgd_correct": pgd,
            "seconds": 1.0 + idx,
            "relus": 10,
            "unstable": 3,
        }

    rows = [
        row(0, "verified", "bounds", 1),
        row(1, "timeout", "milp", 1),
        row(2, "falsified", "pgd", 0),
        row(3, "falsified", "clean", 0, predict=2),
    ]
    summary = summarize_rows(rows)
    assert summary["verified_accuracy"] == 0.25
    assert summary["pgd_accuracy"] == 0.5
    assert summary["clean_accuracy"] == 0.75
    assert summary["timeouts"] == 0.25
    assert summary["decided_by"]["pgd"] == 0.25
    assert summary["median_seconds"] == 2.5
    assert summary["mean_unstable_relus"] == 3.0
    assert summary["verified_but_pgd_broken"] == 0


def test_scale_presets_fill_what_is_not_given(tmp_path: Path) -> None:
    """Issue 22 item 2: the default ``--scale quick`` finishes in minutes (20 images x 10 s at most),
    ``--scale paper`` is paper 003's 10,000 images x 120 s, and an explicit ``--n`` / ``--time-limit`` wins
    over the preset."""
    from art_manifold_defenses.verification.cli import SCALES, resolve_scale

    base = ["verify", "--checkpoint", "m.pt", "--eps", "0.1", "--out", str(tmp_path)]
    args = resolve_scale(_parse(base)[0])
    assert (args.scale, args.n, args.time_limit) == ("quick", 20, 10.0) and args.n * args.time_limit <= 300
    args = resolve_scale(_parse([*base, "--scale", "paper"])[0])
    assert (args.n, args.time_limit) == (10_000, 120.0) == tuple(SCALES["paper"].values())
    args = resolve_scale(_parse([*base, "--scale", "paper", "--n", "3"])[0])
    assert (args.n, args.time_limit) == (3, 120.0)
    args = resolve_scale(argparse.Namespace(n=5, time_limit=2.0))  # a script's namespace without --scale
    assert (args.n, args.time_limit) == (5, 2.0)


def test_the_verification_and_certification_tsvs_name_the_prediction_column_alike() -> None:
    from art_manifold_defenses.smoothing.outputs import _columns
    from art_manifold_defenses.verification.cli import TSV_COLUMNS

    assert "prediction" in TSV_COLUMNS and "predict" not in TSV_COLUMNS
    assert "prediction" in _columns(("renyi",))

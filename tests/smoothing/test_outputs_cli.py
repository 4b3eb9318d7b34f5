"""TSV output (resumable), summaries, plots, checkpoint builder and the CLI functions."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.smoothing import (
    RenyiSmoothingPyTorch,
    SmoothedClassifier,
    certified_accuracy,
    certify_to_tsv,
    plot_bound_comparison,
    read_certify_tsv,
    summarize_certification,
)
from art_manifold_defenses.smoothing.cli import add_subcommands, add_train_arguments, train_from_args


def estimator(net: nn.Module) -> RenyiSmoothingPyTorch:
    return RenyiSmoothingPyTorch(
        net.eval(),
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        scale=0.25,
    )


def test_tsv_rows_resume_and_summary(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    _, _, x_test, y_test = mnist_small
    x, y = x_test[:12], y_test[:12]
    est = estimator(trained_tiny)
    full = certify_to_tsv(
        est,
        x,
        y,
        tmp_path / "a" / "certify.tsv",
        n=100,
        n0=20,
        alpha=0.05,
        batch_size=240,
        seed=7,
        verbose=False,
    )
    rows = read_certify_tsv(full)
    assert [int(r["idx"]) for r in rows] == list(range(12))
    assert {"radius_renyi", "radius_cohen", "radius_pixeldp", "correct", "seconds"} <= set(rows[0])
    # kill after 4 rows (plus half a line), then resume: the same rows as the uninterrupted run
    part = tmp_path / "b" / "certify.tsv"
    certify_to_tsv(est, x[:4], y[:4], part, n=100, n0=20, alpha=0.05, batch_size=240, seed=7, verbose=False)
    with part.open("a") as handle:
        handle.write("4\t3\t3\t0.1")
    certify_to_tsv(est, x, y, part, n=100, n0=20, alpha=0.05, batch_size=240, seed=7, verbose=False)
    resumed = read_certify_tsv(part)
    key = lambda r: (r["idx"], r["prediction"], r["radius_renyi"], r["radius_cohen"], r["radius_pixeldp"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, rows))
    with pytest.raises(ValueError, match=r"another run; what differs .*n: 100 -> 200"):
        certify_to_tsv(est, x, y, part, n=200, n0=20, alpha=0.05, batch_size=240, seed=7, verbose=False)

    summary = summarize_certification(full, radii=[0.0, 0.25, 10.0])
    correct = np.array([int(r["correct"]) for r in rows], dtype=bool)
    renyi = np.array([float(r["radius_renyi"]) for r in rows])
    assert summary["images"] == 12
    assert summary["certified_accuracy"]["renyi"]["0"] == pytest.approx(np.mean(correct & (renyi > 0)))
    assert summary["certified_accuracy"]["renyi"]["10"] == 0.0
    assert summary["settings"]["n"] == 100


def test_certified_accuracy_counts_abstentions_as_wrong() -> None:
    acc = certified_accuracy([0.0, 0.5, 1.0, 2.0], [True, True, False, True], radii=[0.0, 0.5, 1.5])
    assert acc == {0.0: 0.5, 0.5: 0.5, 1.5: 0.25}


def test_bound_comparison_plot(tmp_path: Path) -> None:
    out = plot_bound_comparison(tmp_path / "cmp.png", sigma=0.5)
    assert out.stat().st_size > 1000


def test_train_from_args_checkpoint_roundtrip_and_certify_cli(
    mnist_small: tuple[np.ndarray, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x_train, y_train, x_test, y_test = mnist_small
    parser = argparse.ArgumentParser()
    add_train_arguments(parser.add_argument_group("stn"))
    args = parser.parse_args(["--sigma", "0.3", "--stability-weight", "0.5", "--stn-target", "logits"])
    args.epochs, args.batch_size, args.lr, args.seed, args.quiet, args.out = (
        1,
        64,
        1e-3,
        0,
        True,
        str(tmp_path / "run"),
    )
    data = {"x_train": x_train[:300], "y_train": y_train[:300], "x_test": x_test[:50], "y_test": y_test[:50]}
    architecture = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
    model, defence = train_from_args(args, data, torch.device("cpu"), architecture)
    assert isinstance(model, SmoothedClassifier) and model.sigma == 0.3
    assert defence == {
        "name": "stn",
        "params": {"sigma": 0.3, "stability_weight": 0.5, "stn_target": "logits"},
    }
    path = save_checkpoint(
        model,
        tmp_path / "run" / "model.pt",
        architecture=architecture,
        defence=defence,
        dataset="mnist-embedded",
    )
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, SmoothedClassifier) and loaded.sigma == 0.3 and loaded.stochastic
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    top = argparse.ArgumentParser()
    commands = add_subcommands(top.add_subparsers(dest="command"))
    assert set(commands) == {"certify"}
    cli = top.parse_args(
        [
            "certify",
            "--checkpoint",
            str(path),
            "--dataset",
            "mnist-embedded",
            "--data-root",
            str(tmp_path / "data"),
            "--n",
            "6",
            "--samples",
            "50",
            "--n0",
            "10",
            "--out",
            str(tmp_path / "cert"),
            "--quiet",
        ]
    )
    assert commands["certify"](cli) == 0
    printed = (
        capsys.readouterr().out
    )  # the settings used are printed, the defaults included (alpha 0.001, n0 10)
    assert "settings: mode=fixed, n=50, n0=10, alpha=0.001, sigma=0.3" in printed
    summary = json.loads((tmp_path / "cert" / "summary.json").read_text())
    assert summary["images"] == 6 and set(summary["certified_accuracy"]) == {"renyi", "cohen", "pixeldp"}
    assert summary["settings"]["sigma"] == 0.3
    assert (tmp_path / "cert" / "certified_accuracy.png").is_file() and (
        tmp_path / "cert" / "bound_comparison.png"
    ).is_file()
    assert len(read_certify_tsv(tmp_path / "cert" / "certify.tsv")) == 6
    _check_cohen_format(tmp_path / "cert", summary)


def _analyze_like_cohen(path: Path, radius: float) -> float:
    """Cohen et al.'s ``analyze.py`` (``ApproximateAccuracy``): ``pd.read_csv(path, delimiter="\\t")`` and
    ``(df["correct"] & (df["radius"] >= radius)).mean()``, re-implemented on the csv module."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert list(rows[0]) == ["idx", "label", "predict", "radius", "correct", "time"]
    return sum(int(r["correct"]) == 1 and float(r["radius"]) >= radius for r in rows) / len(rows)


def _check_cohen_format(folder: Path, summary: dict) -> None:
    """``amd certify`` also writes ``certify_cohen.tsv``, which Cohen's analysis reads to the same certified
    accuracy (at radii > 0, where an abstention's radius 0.0 cannot count) as the package's own summary."""
    cohen = folder / "certify_cohen.tsv"
    rows = read_certify_tsv(folder / "certify.tsv")
    with open(cohen, newline="") as handle:
        theirs = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["idx"] for r in theirs] == [r["idx"] for r in rows]
    for ours, row in zip(rows, theirs, strict=True):
        assert int(row["predict"]) == int(ours["prediction"]) and row["correct"] == ours["correct"]
        assert float(row["radius"]) == pytest.approx(
            float(ours["radius_cohen"]) if int(ours["prediction"]) >= 0 else 0.0, rel=1e-5, abs=1e-9
        )
        hours, minutes, seconds = row["time"].split(":")
        assert int(hours) * 3600 + int(minutes) * 60 + float(seconds) == pytest.approx(
            float(ours["seconds"]), abs=1e-5
        )
    for radius, accuracy in summary["certified_accuracy"]["cohen"].items():
        if float(radius) > 0:
            assert _analyze_like_cohen(cohen, float(radius)) == pytest.approx(accuracy, abs=1e-9)


def test_cli_and_api_certification_defaults_agree_and_are_printed(
    mnist_small: tuple[np.ndarray, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 item 7: ``amd certify``'s defaults are read from its parser and the API's from the signatures
    of ``RenyiSmoothingPyTorch`` (``alpha``), ``certify``, ``certify_decision`` (``n_max``),
    ``certify_to_tsv`` and ``certify_sharded``: they are the same values, and a run with every default prints
    them. A run started with other settings (the old CLI defaults, n=100 and alpha=0.05) is refused on resume,
    naming the setting."""
    import inspect

    from art_manifold_defenses.fingerprint import FingerprintMismatchError
    from art_manifold_defenses.smoothing.outputs import certify_sharded

    top = argparse.ArgumentParser()
    commands = add_subcommands(top.add_subparsers(dest="command"))
    x_train, y_train, x_test, y_test = mnist_small
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    architecture = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
    from art_manifold_defenses.models import build_model

    save_checkpoint(
        SmoothedClassifier(build_model("wong_small").eval(), sigma=0.25),
        path,
        architecture=architecture,
        defence={"name": "stn", "params": {"sigma": 0.25}},
        dataset="mnist-embedded",
    )
    cli = top.parse_args(
        [
            "certify",
            "--checkpoint",
            str(path),
            "--data-root",
            str(tmp_path / "data"),
            "--n",
            "2",
            "--out",
            str(tmp_path / "cert"),
            "--quiet",
        ]
    )
    cli_defaults = {"n": cli.samples, "n0": cli.n0, "alpha": cli.alpha, "batch_size": cli.batch_size}

    def defaults(function: object, *names: str) -> dict[str, object]:
        parameters = inspect.signature(function).parameters  # type: ignore[arg-type]
        return {name: parameters[name].default for name in names}

    alpha = defaults(RenyiSmoothingPyTorch.__init__, "alpha")["alpha"]
    api = [
        {**defaults(RenyiSmoothingPyTorch.certify, "n", "n0", "batch_size"), "alpha": alpha},
        {
            **defaults(RenyiSmoothingPyTorch.certify_decision, "n0", "batch_size"),
            "alpha": alpha,
            "n": defaults(RenyiSmoothingPyTorch.certify_decision, "n_max")["n_max"],
        },
        {**defaults(certify_to_tsv, "n", "n0", "batch_size"), "alpha": alpha},
        {**defaults(certify_sharded, "n", "n0", "batch_size"), "alpha": alpha},
    ]
    for entry in api:
        assert entry == cli_defaults
    assert cli_defaults["alpha"] == 0.001  # Cohen et al.'s and ART's
    assert defaults(RenyiSmoothingPyTorch.certify, "alpha")["alpha"] is None  # None: the estimator's alpha
    assert defaults(certify_to_tsv, "alpha")["alpha"] is None
    assert commands["certify"](cli) == 0
    printed = capsys.readouterr().out
    n, n0, alpha = cli_defaults["n"], cli_defaults["n0"], cli_defaults["alpha"]
    assert f"settings: mode=fixed, n={n}, n0={n0}, alpha={alpha}, sigma=0.25" in printed
    # an old run's settings are refused by name
    est = estimator(SmoothedClassifier(build_model("wong_small").eval(), sigma=0.25).base)
    old = tmp_path / "old.tsv"
    certify_to_tsv(est, x_test[:2], y_test[:2], old, n=100, alpha=0.05, verbose=False)
    with pytest.raises(FingerprintMismatchError, match="alpha"):
        certify_to_tsv(est, x_test[:2], y_test[:2], old, n=100, verbose=False)
    with pytest.raises(FingerprintMismatchError, match=r"\bn\b"):
        certify_to_tsv(est, x_test[:2], y_test[:2], old, alpha=0.05, verbose=False)


def test_certify_prints_an_estimate_from_the_second_chunk(
    mnist_small: tuple[np.ndarray, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 item 2: after its second chunk (the first is a warm-up) ``certify_to_tsv`` prints the seconds
    per image of that chunk (its rows' ``seconds`` column) times the images left."""
    from art_manifold_defenses.costs import format_seconds
    from art_manifold_defenses.models import build_model

    _, _, x_test, y_test = mnist_small
    torch.manual_seed(0)
    est = estimator(build_model("wong_small"))
    path = certify_to_tsv(est, x_test[:4], y_test[:4], tmp_path / "c.tsv", n=200, n0=10, batch_size=210)
    second = float(read_certify_tsv(path)[1]["seconds"])  # one image per chunk: 210 // (10 + 200)
    printed = capsys.readouterr()
    assert (
        f"estimate: certifying 2 more images (fixed, n=200, n0=10): about {format_seconds(2 * second)} on "
        "this "
        f"machine (the second chunk of 1 took {second:.2f} s per image"
    ) in printed.out + printed.err

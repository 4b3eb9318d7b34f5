"""``amd train --defense manifold-reg`` flags and entry point, called directly."""

from __future__ import annotations

import argparse

import pytest
import torch

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.manifold_regularization.cli import (
    add_train_arguments,
    resolve_preset,
    train_from_args,
)


def parse(argv: list[str], tmp_path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mnist-embedded")
    parser.add_argument("--model", default="wong_small")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    add_train_arguments(parser.add_argument_group("--defense manifold-reg"))
    args = parser.parse_args([*argv, "--quiet"])
    args.out, args.data_root, args.device, args.activation, args.train_limit = (
        str(tmp_path),
        None,
        "cpu",
        None,
        None,
    )
    return args


def test_flags_parse_with_paper_defaults(tmp_path) -> None:
    args = parse([], tmp_path)
    assert (args.mr_ablation, args.mr_alpha, args.mr_norm, args.mr_schedule) == ("both", 8.0, "linf", "auto")
    assert args.mr_eps is None and args.mr_gamma_i is None and args.mr_gamma_h is None
    assert (args.mr_hamming_form, args.mr_intrinsic_scale) == ("squared", 0.5)  # eqs. 13 and 11
    old = parse(["--mr-hamming-form", "unsquared", "--mr-intrinsic-scale", "1"], tmp_path)
    assert (old.mr_hamming_form, old.mr_intrinsic_scale) == ("unsquared", 1.0)
    args = parse(
        [
            "--mr-ablation",
            "hamming",
            "--mr-eps",
            "0.2",
            "--mr-gamma-i",
            "0.3",
            "--mr-gamma-h",
            "90",
            "--mr-alpha",
            "4",
        ],
        tmp_path,
    )
    assert (args.mr_ablation, args.mr_eps, args.mr_gamma_i, args.mr_gamma_h, args.mr_alpha) == (
        "hamming",
        0.2,
        0.3,
        90.0,
        4.0,
    )
    with pytest.raises(SystemExit):
        parse(["--mr-ablation", "nothing"], tmp_path)


def test_preset_resolution() -> None:
    assert resolve_preset("auto", "mnist-embedded", "cw_mnist") == "mnist"
    assert resolve_preset("auto", "cifar10", "preact_resnet18") == "cifar10"
    assert resolve_preset("auto", "cifar10", "wong_small") == "verification"
    assert resolve_preset("auto", "mnist", "wong_small") == "mnist"
    assert resolve_preset("cifar10", "mnist", "cw_mnist") == "cifar10"


def test_train_from_args_trains_and_records_the_metadata(mnist_small: tuple, tmp_path) -> None:
    x, y, x_test, y_test = mnist_small
    data = {"x_train": x[:96], "y_train": y[:96], "x_test": x_test[:32], "y_test": y_test[:32]}
    args = parse(
        ["--mr-eps", "0.1", "--mr-gamma-h", "100", "--mr-constant", "--mr-lr-peak", "0.05"], tmp_path
    )
    architecture = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
    model, meta = train_from_args(args, data, torch.device("cpu"), architecture)
    assert meta["name"] == "manifold-reg"
    params = meta["params"]
    assert params["preset"] == "mnist" and params["constant"] is True and params["alpha"] == 8.0
    assert (params["hamming_form"], params["intrinsic_scale"]) == ("squared", 0.5)
    assert params["schedule"]["epsilon"] == [(0.0, 0.1)] and params["schedule"]["gamma_hamming"] == [
        (0.0, 100.0)
    ]
    assert params["final_epoch"]["hamming"] > 0.0
    assert not model.training
    path = save_checkpoint(model, tmp_path / "model.pt", architecture=architecture, defence=meta)
    loaded, metadata = load_checkpoint(path)
    probe = torch.from_numpy(x_test[:4])
    with torch.no_grad():
        assert torch.allclose(loaded(probe), model(probe))
    assert metadata["defence"]["params"]["preset"] == "mnist"


def test_amd_train_wiring_end_to_end(monkeypatch: pytest.MonkeyPatch, data_root: str, tmp_path) -> None:
    """What the maintainer's one-line registration gives: ``amd train --defense manifold-reg``."""
    import json

    from art_manifold_defenses import cli

    monkeypatch.setitem(
        cli.DEFENCE_TRAINERS, "manifold-reg", "art_manifold_defenses.manifold_regularization.cli"
    )
    rc = cli.main(
        [
            "train",
            "--defense",
            "manifold-reg",
            "--model",
            "wong_small",
            "--epochs",
            "1",
            "--train-limit",
            "64",
            "--batch-size",
            "32",
            "--data-root",
            data_root,
            "--out",
            str(tmp_path),
            "--quiet",
            "--mr-ablation",
            "hamming",
            "--mr-gamma-h",
            "500",
        ]
    )
    assert rc == 0
    sidecar = json.loads((tmp_path / "model.json").read_text())
    assert sidecar["defence"]["name"] == "manifold-reg"
    assert sidecar["defence"]["params"]["ablation"] == "hamming"
    assert sidecar["defence"]["params"]["preset"] == "mnist"

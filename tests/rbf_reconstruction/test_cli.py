"""CLI hooks: `amd fit-rbf` and `amd train --defense rbf-cnn|rbf-cnn-plus`, called directly."""

from __future__ import annotations

import argparse
import json

import numpy as np

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.rbf_reconstruction import RBFCNN, RBFFilterBank
from art_manifold_defenses.rbf_reconstruction.cli import add_subcommands, add_train_arguments, train_from_args


def parse_train(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser.add_argument_group("rbf"))
    args = parser.parse_args(argv)
    base = {
        "dataset": "mnist-embedded",
        "data_root": None,
        "device": "cpu",
        "seed": 0,
        "model": "wong_small",
        "epochs": 1,
        "batch_size": 64,
        "lr": 1e-3,
        "activation": None,
        "train_limit": 200,
        "quiet": True,
        "defense": "rbf-cnn",
    }
    for key, value in base.items():
        setattr(args, key, value)
    return args


def test_fit_rbf_subcommand_writes_a_bank(tmp_path, data_root: str) -> None:
    parser = argparse.ArgumentParser()
    handlers = add_subcommands(parser.add_subparsers(dest="command"))
    out = tmp_path / "filters"
    args = parser.parse_args(
        [
            "fit-rbf",
            "--dataset",
            "mnist-embedded",
            "--data-root",
            data_root,
            "--out",
            str(out),
            "--train-limit",
            "300",
            "--max-steps",
            "6",
            "--nonparametric-steps",
            "4",
            "--quiet",
        ]
    )
    assert handlers[args.command](args) == 0
    bank = RBFFilterBank.load(out / "filters.npz")
    summary = json.loads((out / "filters.json").read_text())
    assert (
        summary["num_filters"] == bank.num_filters
        and len(summary["history"]) == 6
        and summary["images"] == 300
    )


def test_train_rbf_cnn_from_args_with_given_filters(tmp_path, mnist_small, mnist_bank: RBFFilterBank) -> None:
    bank_path = mnist_bank.save(tmp_path / "bank.npz")
    args = parse_train(["--rbf-filters", str(bank_path), "--rbf-votes", "2", "--rbf-beta2", "1.0"])
    args.out = str(tmp_path / "run")
    x, y, xt, yt = mnist_small
    data = {"x_train": x[:200], "y_train": y[:200], "x_test": xt, "y_test": yt}
    architecture = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
    model, meta = train_from_args(args, data, "cpu", architecture)
    assert isinstance(model, RBFCNN) and not model.training
    assert meta["name"] == "rbf-cnn" and meta["params"]["variant"] == "rcnn" and meta["params"]["votes"] == 2
    assert (tmp_path / "run" / "train_state" / "train_state.pt").is_file()
    path = save_checkpoint(model, tmp_path / "run" / "model.pt", architecture=architecture, defence=meta)
    loaded, _ = load_checkpoint(path)
    assert isinstance(loaded, RBFCNN) and loaded.beta2 == 1.0
    assert np.array_equal(loaded.filter_bank.means.numpy(), mnist_bank.means.numpy())


def test_train_rbf_cnn_plus_fits_filters_when_none_given(tmp_path, mnist_small) -> None:
    args = parse_train(["--rbf-em-steps", "4", "--rbf-noise-bank-epoch", "0", "--rbf-noise-bank-size", "32"])
    args.defense = "rbf-cnn-plus"
    args.out = str(tmp_path / "run")
    x, y, xt, yt = mnist_small
    data = {"x_train": x[:128], "y_train": y[:128], "x_test": xt, "y_test": yt}
    model, meta = train_from_args(
        args, data, "cpu", {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
    )
    assert meta["params"]["variant"] == "rcnn_plus" and meta["params"]["filters_source"] == "em"
    assert model.filter_bank.num_filters >= 1


def test_demo_entry_builds_a_trained_checkpointable_rcnn(tmp_path, mnist_small) -> None:
    from types import SimpleNamespace

    from art_manifold_defenses.rbf_reconstruction.cli import build_demo_rcnn, defence_metadata

    x, y, xt, yt = mnist_small
    ctx = SimpleNamespace(
        data={"x_train": x[:128], "y_train": y[:128]},
        device="cpu",
        seed=0,
        epochs=1,
        verbose=False,
        work_dir=tmp_path,
    )
    model = build_demo_rcnn(ctx, em_steps=3)
    assert isinstance(model, RBFCNN) and model.votes == 1 and model.stochastic
    meta = defence_metadata(model)
    path = save_checkpoint(model, tmp_path / "model.pt", architecture={"name": "cw_mnist"}, defence=meta)
    loaded, _ = load_checkpoint(path)
    assert loaded.filter_bank.num_filters == model.filter_bank.num_filters

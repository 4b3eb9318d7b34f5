"""``amd train --defense fpd`` glue: the --fpd-* flags and train_from_args (called directly)."""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.fpd import FeaturePyramidDecoder
from art_manifold_defenses.fpd.cli import add_train_arguments, train_from_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser.add_argument_group("--defense fpd"))
    return parser


def test_flags_default_to_the_paper_settings() -> None:
    args = _parser().parse_args([])
    assert (args.fpd_epsilon, args.fpd_threshold, args.fpd_alpha1, args.fpd_alpha2) == (0.01, 3.0, 1.0, 1.0)
    assert args.fpd_grad_clip == 10.0 and args.fpd_weight_decay == 1e-5 and args.fpd_middle == "paper"
    assert args.fpd_adversarial == "none" and args.fpd_adv_iter == 100 and args.fpd_adv_delay == 10
    parsed = _parser().parse_args(
        ["--fpd-bottleneck", "--fpd-middle", "authors_code", "--fpd-adversarial", "pgd"]
    )
    assert parsed.fpd_bottleneck and parsed.fpd_middle == "authors_code" and parsed.fpd_adversarial == "pgd"


def test_train_from_args_returns_a_reloadable_fpd(mnist_small: tuple[np.ndarray, ...], tmp_path) -> None:
    x_train, y_train, x_test, y_test = mnist_small

    def resize(x: np.ndarray) -> np.ndarray:
        return (
            F.interpolate(torch.from_numpy(x), size=16, mode="bilinear", align_corners=False)
            .clamp(0, 1)
            .numpy()
        )

    data = {
        "x_train": resize(x_train[:64]),
        "y_train": y_train[:64],
        "x_test": resize(x_test[:16]),
        "y_test": y_test[:16],
    }
    architecture = {
        "name": "resnet18",
        "in_channels": 1,
        "num_classes": 10,
        "input_size": 16,
        "stem": "imagenet",
    }
    args = _parser().parse_args(["--fpd-fpn-channels", "32", "--fpd-threshold", "1e9"])
    for key, value in {
        "dataset": "mnist-embedded",
        "data_root": None,
        "device": "cpu",
        "seed": 0,
        "model": "resnet18",
        "epochs": 1,
        "batch_size": 32,
        "lr": 1e-3,
        "activation": None,
        "train_limit": None,
        "out": str(tmp_path),
        "quiet": True,
    }.items():
        setattr(args, key, value)
    model, defence = train_from_args(args, data, torch.device("cpu"), architecture)
    assert isinstance(model, FeaturePyramidDecoder)
    assert (
        defence["name"] == "fpd"
        and defence["params"] == model.config
        and defence["params"]["fpn_channels"] == 32
    )
    assert defence["training"]["threshold"] == 1e9 and defence["training"]["final_phase_one_share"] == 0.0
    assert (tmp_path / "train_state" / "train_state.pt").is_file()
    path = save_checkpoint(model, tmp_path / "model.pt", architecture=architecture, defence=defence)
    loaded, _ = load_checkpoint(path)
    x = torch.from_numpy(data["x_test"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))

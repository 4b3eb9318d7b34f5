"""``amd train --defense manifold-reg``: flags (prefixed ``--mr-``) and the training entry point."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..estimator import to_art_classifier
from ..models import build_model
from . import DEFENCE_NAME
from .regularizers import BATCHING_MODES, HAMMING_FORMS
from .schedules import PRESETS, ManifoldRegularizationSchedule, constant_schedule, paper_schedule
from .trainer import ABLATIONS, ManifoldRegularizationTrainer

__all__ = ["add_train_arguments", "resolve_preset", "train_from_args"]


def add_train_arguments(group: Any) -> None:
    """Add the ``--mr-*`` flags to an argparse parser or argument group."""
    group.add_argument(
        "--mr-schedule",
        default="auto",
        choices=["auto", *sorted(PRESETS)],
        help="paper recipe (appendix B): mnist, cifar10 or verification; auto picks from dataset/model",
    )
    group.add_argument(
        "--mr-ablation",
        default="both",
        choices=sorted(ABLATIONS),
        help="both (the method), intrinsic only, hamming only, or dense Laplacian (default: both)",
    )
    group.add_argument(
        "--mr-eps",
        type=float,
        default=None,
        help="final resampling radius (default: preset, 0.3 MNIST, 8/255 CIFAR)",
    )
    group.add_argument(
        "--mr-gamma-i",
        type=float,
        default=None,
        help="start weight gamma_I of the intrinsic term (default: preset)",
    )
    group.add_argument(
        "--mr-gamma-h",
        type=float,
        default=None,
        help="start weight gamma_H of the Hamming term (default: preset)",
    )
    group.add_argument(
        "--mr-ramp-factor",
        type=float,
        default=10.0,
        help="gamma_I/gamma_H grow by this factor over epochs 20-80%% (default: 10)",
    )
    group.add_argument(
        "--mr-alpha", type=float, default=8.0, help="tanh sharpness of the Hamming relaxation (default: 8)"
    )
    group.add_argument(
        "--mr-hamming-form",
        default="squared",
        choices=list(HAMMING_FORMS),
        help="squared per-sample Hamming distance (eq. 13, default) or unsquared (earlier versions)",
    )
    group.add_argument(
        "--mr-intrinsic-scale",
        type=float,
        default=0.5,
        help="factor of the intrinsic term (eq. 11's 1/(c^2 N), c = 2: 0.5, default; earlier versions: 1)",
    )
    group.add_argument(
        "--mr-norm", default="linf", choices=["linf", "l2"], help="resampling norm (default: linf)"
    )
    group.add_argument(
        "--mr-dense-scale",
        type=float,
        default=2.0,
        help="heat-kernel scale s of the dense ablation (default: 2)",
    )
    group.add_argument(
        "--mr-optimizer",
        default="sgd",
        choices=["sgd", "adam"],
        help="sgd: the paper's piecewise-linear learning rate peaking at --mr-lr-peak; adam: constant --lr",
    )
    group.add_argument("--mr-lr-peak", type=float, default=0.1, help="peak SGD learning rate (default: 0.1)")
    group.add_argument(
        "--mr-momentum",
        type=float,
        default=None,
        help="SGD momentum (default: the preset's: 0 for mnist, where 0.9 diverged on C&W's net; 0.9 otherwise)",
    )
    group.add_argument(
        "--mr-weight-decay", type=float, default=5e-4, help="weight decay gamma_K (default: 5e-4)"
    )
    group.add_argument(
        "--mr-constant", action="store_true", help="no ramps: final eps and start gammas throughout"
    )
    group.add_argument("--mr-batching", default="auto", choices=list(BATCHING_MODES),
                       help="x, x+, x- in one concatenated forward pass or three passes in one graph (same values without "
                            "BatchNorm); auto: separate on CPU unless the model uses batch statistics (default: auto)")  # fmt: skip


def resolve_preset(schedule: str, dataset: str, model: str) -> str:
    """``auto`` -> ``mnist`` for MNIST-like data (eps 0.3), else ``verification`` for ``wong_small`` (the paper's
    CIFAR-10 verification CNN), else ``cifar10``."""
    if schedule != "auto":
        return schedule
    if "mnist" in dataset:
        return "mnist"
    if model == "wong_small":
        return "verification"
    return "cifar10"


def _schedule_from_args(args: argparse.Namespace, preset: str) -> ManifoldRegularizationSchedule:
    eps_max, g_i, g_h = PRESETS[preset]
    eps = eps_max if args.mr_eps is None else args.mr_eps
    gamma_i = g_i if args.mr_gamma_i is None else args.mr_gamma_i
    gamma_h = g_h if args.mr_gamma_h is None else args.mr_gamma_h
    lr = args.mr_lr_peak if args.mr_optimizer == "sgd" else None
    if args.mr_constant:
        return constant_schedule(
            epsilon=eps, gamma_intrinsic=gamma_i, gamma_hamming=gamma_h, learning_rate=lr
        )
    schedule = paper_schedule(preset, epochs=args.epochs, lr_peak=args.mr_lr_peak, epsilon=eps, gamma_intrinsic=gamma_i,
                              gamma_hamming=gamma_h, ramp_factor=args.mr_ramp_factor)  # fmt: skip
    if lr is None:
        schedule.learning_rate = None
    return schedule


def train_from_args(
    args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``architecture`` with manifold regularization as the flags say; return ``(model, defence metadata)``."""
    arch = dict(architecture)
    model = build_model(arch.pop("name"), **arch)
    preset = resolve_preset(args.mr_schedule, args.dataset, args.model)
    schedule = _schedule_from_args(args, preset)
    num_classes = int(architecture.get("num_classes", 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr) if args.mr_optimizer == "adam" else None
    classifier = to_art_classifier(
        model, input_shape=data["x_train"].shape[1:], nb_classes=num_classes, device=device
    )
    trainer = ManifoldRegularizationTrainer(
        classifier, schedule=schedule, ablation=args.mr_ablation, alpha=args.mr_alpha,
        hamming_form=getattr(args, "mr_hamming_form", "squared"), intrinsic_scale=getattr(args, "mr_intrinsic_scale", 0.5),
        norm=args.mr_norm,
        dense_scale=args.mr_dense_scale, lr_peak=args.mr_lr_peak, weight_decay=args.mr_weight_decay,
        momentum=args.mr_momentum, optimizer=optimizer, batching=getattr(args, "mr_batching", "auto"), device=device,
        seed=args.seed, verbose=not args.quiet,
    )  # fmt: skip
    trainer.fit(
        data["x_train"], data["y_train"], validation_data=(data["x_test"], data["y_test"]), batch_size=args.batch_size,
        nb_epochs=args.epochs, checkpoint_dir=str(Path(args.out) / "train_state"),
    )  # fmt: skip
    params = trainer.regularizer_params()
    params.update({"preset": preset, "optimizer": args.mr_optimizer, "constant": bool(args.mr_constant),
                   "final_epoch": trainer.history[-1] if trainer.history else {}})  # fmt: skip
    model.eval()
    return model, {"name": DEFENCE_NAME, "params": params}

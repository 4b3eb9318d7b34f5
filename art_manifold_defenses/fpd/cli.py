"""``amd train --defense fpd``: flags (prefixed ``--fpd-``) and the training entry point."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ..models import build_model
from .denoising import DENOISING_FORMS
from .network import MIDDLE_CHOICES, FeaturePyramidDecoder
from .trainer import SECOND_PASS_MODES, FPDTrainer

__all__ = ["add_train_arguments", "train_from_args"]


def add_train_arguments(group: argparse._ActionsContainer) -> None:
    """Add the ``--fpd-*`` flags of ``amd train --defense fpd`` (defaults: the paper's MNIST settings)."""
    group.add_argument(
        "--fpd-epsilon", type=float, default=0.01, help="uniform training-noise half-width (default: 0.01)"
    )
    group.add_argument(
        "--fpd-threshold",
        type=float,
        default=3.0,
        help="reconstruction-loss threshold T of phase 1 (default: 3)",
    )
    group.add_argument("--fpd-alpha1", type=float, default=1.0, help="cross-entropy weight (default: 1)")
    group.add_argument(
        "--fpd-alpha2", type=float, default=1.0, help="reconstruction-loss weight (default: 1)"
    )
    group.add_argument(
        "--fpd-second-pass",
        default="detach",
        choices=SECOND_PASS_MODES,
        help="second pass on x' (default: detach)",
    )
    group.add_argument(
        "--fpd-grad-clip", type=float, default=10.0, help="gradient-norm clipping, 0 = off (default: 10)"
    )
    group.add_argument(
        "--fpd-weight-decay", type=float, default=1e-5, help="Adamax weight decay (default: 1e-5)"
    )
    group.add_argument(
        "--fpd-bottleneck", action="store_true", help="bottleneck inner denoising layers (paper Fig. 2a)"
    )
    group.add_argument(
        "--fpd-middle",
        default="paper",
        choices=MIDDLE_CHOICES,
        help="middle denoising layer (default: paper)",
    )
    group.add_argument("--fpd-denoise-after", default="0,1",
                       help="inner denoising positions, comma-separated (0 = after the stem, i = after stage i); 'none' "
                            "= no inner layers, the paper's Table 1 'Mid' ablation (default: 0,1)")  # fmt: skip
    group.add_argument("--fpd-no-bn-recalibration", action="store_true",
                       help="keep the batch-norm statistics of training (authors' code) instead of re-estimating them "
                            "from the inference path after every epoch")  # fmt: skip
    group.add_argument(
        "--fpd-fpn-channels", type=int, default=256, help="restoration pyramid width (default: 256)"
    )
    group.add_argument(
        "--fpd-keep-relu", action="store_true", help="do not swap the backbone's ReLUs for ELUs"
    )
    group.add_argument(
        "--fpd-dropout", type=float, default=0.0, help="dropout before the tanh classifier (default: 0)"
    )
    group.add_argument(
        "--fpd-adversarial",
        default="none",
        choices=["none", "fgsm", "pgd"],
        help="adversarial training (default: none)",
    )
    group.add_argument(
        "--fpd-adv-eps", type=float, default=0.3, help="training-attack L-inf radius (default: 0.3)"
    )
    group.add_argument("--fpd-adv-step", type=float, default=0.01, help="training PGD step (default: 0.01)")
    group.add_argument(
        "--fpd-denoising-form",
        choices=DENOISING_FORMS,
        default="gated",
        help="how the non-local terms join their residual: gated (default, identity at initialisation), "
        "bn_zero (Xie et al.) or authors_code (x + NL(x), trains at chance on resnet18)",
    )
    group.add_argument("--fpd-adv-iter", type=int, default=100, help="training PGD iterations (default: 100)")
    group.add_argument(
        "--fpd-adv-delay", type=int, default=10, help="first epoch with adversarial examples (default: 10)"
    )


def parse_positions(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> ``(0, 1)``; ``"none"`` or ``""`` -> ``()`` (the value of ``--fpd-denoise-after``)."""
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise ValueError(
            f"--fpd-denoise-after must be 'none' or comma-separated integers, got {text!r}"
        ) from exc


def train_from_args(
    args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]
) -> tuple[FeaturePyramidDecoder, dict[str, Any]]:
    """Build the zoo backbone, wrap it with FPD, train it with :class:`FPDTrainer` (Adamax, ``args.lr``); return
    ``(model, {"name": "fpd", "params": model.config, "training": {...}})``."""
    arch = dict(architecture)
    backbone = build_model(arch.pop("name"), **arch)
    model = FeaturePyramidDecoder(
        backbone,
        in_channels=int(architecture["in_channels"]),
        input_size=int(architecture["input_size"]),
        num_classes=int(architecture["num_classes"]),
        denoise_after=parse_positions(args.fpd_denoise_after),
        bottleneck=bool(args.fpd_bottleneck),
        middle_denoising=args.fpd_middle,
        denoising_form=args.fpd_denoising_form,
        fpn_channels=args.fpd_fpn_channels,
        swap_activation=not args.fpd_keep_relu,
        dropout=args.fpd_dropout,
        device=device,
    )
    trainer = FPDTrainer(
        model,
        epsilon=args.fpd_epsilon,
        threshold=args.fpd_threshold,
        alpha1=args.fpd_alpha1,
        alpha2=args.fpd_alpha2,
        second_pass=args.fpd_second_pass,
        grad_clip=args.fpd_grad_clip if args.fpd_grad_clip > 0 else None,
        lr=args.lr,
        weight_decay=args.fpd_weight_decay,
        adversarial=None if args.fpd_adversarial == "none" else args.fpd_adversarial,
        adversarial_eps=args.fpd_adv_eps,
        adversarial_eps_step=args.fpd_adv_step,
        adversarial_max_iter=args.fpd_adv_iter,
        adversarial_delay=args.fpd_adv_delay,
        bn_recalibration=not args.fpd_no_bn_recalibration,
        device=device,
        seed=args.seed,
        verbose=not args.quiet,
    )
    checkpoint_dir = None if getattr(args, "out", None) is None else f"{args.out}/train_state"
    trainer.fit(
        data["x_train"], data["y_train"], validation_data=(data["x_test"], data["y_test"]), batch_size=args.batch_size,
        nb_epochs=args.epochs, checkpoint_dir=checkpoint_dir,
    )  # fmt: skip
    training = {name: getattr(trainer, name) for name in FPDTrainer.params if name not in ("verbose",)}
    training["final_phase_one_share"] = trainer.history[-1].get("phase_one") if trainer.history else None
    return model, {"name": "fpd", "params": model.config, "training": training}

"""Manifold regularization as a :class:`~art_manifold_defenses.defence_record.Defence`:
:class:`ManifoldRegularizationConfig`, :func:`build_defended_model`, :func:`train_manifold_regularization` and
:data:`DEFENCE` (listed in :mod:`art_manifold_defenses.defences`). No torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..defence_record import Defence, TrainingConfig, num_classes, validation_data

if TYPE_CHECKING:
    from torch import nn

    from .schedules import ManifoldRegularizationSchedule

__all__ = [
    "DEFENCE",
    "DEFENCE_NAME",
    "ManifoldRegularizationConfig",
    "build_defended_model",
    "resolve_preset",
    "train_manifold_regularization",
]

DEFENCE_NAME = "manifold-reg"


@dataclass
class ManifoldRegularizationConfig(TrainingConfig):
    """The regularizers, their schedule and the optimizer (flags ``--mr-*``); defaults: Jin & Rinard 2020
    (paper 003), Appendix B. ``dataset`` and ``model`` are ``amd train``'s ``--dataset`` and ``--model``, read
    by ``schedule="auto"`` (:func:`resolve_preset`)."""

    dataset: str = field(default="mnist-embedded", metadata={"shared": True, "help": "data set name"})
    model: str = field(default="cw_mnist", metadata={"shared": True, "help": "zoo architecture name"})
    schedule: Literal["auto", "cifar10", "mnist", "verification"] = field(
        default="auto",
        metadata={
            "help": "paper recipe (appendix B): mnist, cifar10 or verification; auto picks from dataset/model"
        },
    )
    ablation: Literal["both", "dense", "hamming", "intrinsic"] = field(
        default="both",
        metadata={
            "help": "both (the method), intrinsic only, hamming only, or dense Laplacian (default: both)"
        },
    )
    eps: float | None = field(
        default=None, metadata={"help": "final resampling radius (default: preset, 0.3 MNIST, 8/255 CIFAR)"}
    )
    gamma_i: float | None = field(
        default=None, metadata={"help": "start weight gamma_I of the intrinsic term (default: preset)"}
    )
    gamma_h: float | None = field(
        default=None, metadata={"help": "start weight gamma_H of the Hamming term (default: preset)"}
    )
    ramp_factor: float = field(
        default=10.0,
        metadata={"help": "gamma_I/gamma_H grow by this factor over epochs 20-80%% (default: 10)"},
    )
    alpha: float = field(
        default=8.0, metadata={"help": "tanh sharpness of the Hamming relaxation (default: 8)"}
    )
    hamming_form: Literal["squared", "unsquared"] = field(
        default="squared",
        metadata={
            "help": "squared per-sample Hamming distance (eq. 13, default) or unsquared (earlier versions)"
        },
    )
    intrinsic_scale: float = field(
        default=0.5,
        metadata={
            "help": (
                "factor of the intrinsic term (eq. 11's 1/(c^2 N), c = 2: 0.5, default; earlier versions: 1)"
            )
        },
    )
    norm: Literal["linf", "l2"] = field(default="linf", metadata={"help": "resampling norm (default: linf)"})
    dense_scale: float = field(
        default=2.0, metadata={"help": "heat-kernel scale s of the dense ablation (default: 2)"}
    )
    optimizer: Literal["sgd", "adam"] = field(
        default="sgd",
        metadata={
            "help": (
                "sgd: the paper's piecewise-linear learning rate peaking at --mr-lr-peak; adam: constant --lr"
            )
        },
    )
    lr_peak: float = field(default=0.1, metadata={"help": "peak SGD learning rate (default: 0.1)"})
    momentum: float | None = field(
        default=None,
        metadata={
            "help": (
                "SGD momentum (default: the preset's: 0 for mnist, where 0.9 diverged on C&W's net; 0.9 "
                "otherwise)"
            )
        },
    )
    weight_decay: float = field(default=5e-4, metadata={"help": "weight decay gamma_K (default: 5e-4)"})
    constant: bool = field(
        default=False, metadata={"help": "no ramps: final eps and start gammas throughout"}
    )
    batching: Literal["auto", "concatenated", "separate"] = field(
        default="auto",
        metadata={
            "help": "x, x+, x- in one concatenated forward pass or three passes in one graph (same values "
            "without "
            "BatchNorm); auto: separate on CPU unless the model uses batch statistics (default: auto)"
        },
    )


def resolve_preset(schedule: str, dataset: str, model: str) -> str:
    """``auto`` -> ``mnist`` for MNIST-like data (eps 0.3), else ``verification`` for ``wong_small`` (the
    paper's CIFAR-10 verification CNN), else ``cifar10``.

    Paper: Jin & Rinard 2020 (paper 003), Appendix B (the per-data-set recipes)."""
    if schedule != "auto":
        return schedule
    if "mnist" in dataset:
        return "mnist"
    if model == "wong_small":
        return "verification"
    return "cifar10"


def _schedule(config: ManifoldRegularizationConfig, preset: str) -> ManifoldRegularizationSchedule:
    from .schedules import PRESETS, constant_schedule, paper_schedule

    eps_max, g_i, g_h = PRESETS[preset]
    eps = eps_max if config.eps is None else config.eps
    gamma_i = g_i if config.gamma_i is None else config.gamma_i
    gamma_h = g_h if config.gamma_h is None else config.gamma_h
    lr = config.lr_peak if config.optimizer == "sgd" else None
    if config.constant:
        return constant_schedule(
            epsilon=eps, gamma_intrinsic=gamma_i, gamma_hamming=gamma_h, learning_rate=lr
        )
    schedule = paper_schedule(
        preset,
        epochs=config.epochs,
        lr_peak=config.lr_peak,
        epsilon=eps,
        gamma_intrinsic=gamma_i,
        gamma_hamming=gamma_h,
        ramp_factor=config.ramp_factor,
    )
    if lr is None:
        schedule.learning_rate = None
    return schedule


def build_defended_model(base_model: nn.Module, params: dict[str, Any]) -> nn.Module:
    """Registry builder: manifold regularization changes only the training, so the model is the base model.

    Paper: Jin & Rinard 2020 (paper 003); the checkpoint builder."""
    return base_model


def train_manifold_regularization(
    base_model: nn.Module,
    data: dict[str, Any],
    config: ManifoldRegularizationConfig,
    *,
    device: Any = "cpu",
    seed: int = 0,
    verbose: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``base_model`` with manifold regularization as ``config`` says
    (:class:`ManifoldRegularizationTrainer`); return ``(model in eval mode, checkpoint defence entry)``.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 11-13 and Appendix B."""
    import torch

    from ..estimator import to_art_classifier
    from .trainer import ManifoldRegularizationTrainer

    model = base_model
    preset = resolve_preset(config.schedule, config.dataset, config.model)
    schedule = _schedule(config, preset)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr) if config.optimizer == "adam" else None
    classifier = to_art_classifier(
        model, input_shape=data["x_train"].shape[1:], nb_classes=num_classes(model, data), device=device
    )
    trainer = ManifoldRegularizationTrainer(
        classifier,
        schedule=schedule,
        ablation=config.ablation,
        alpha=config.alpha,
        hamming_form=config.hamming_form,
        intrinsic_scale=config.intrinsic_scale,
        norm=config.norm,
        dense_scale=config.dense_scale,
        lr_peak=config.lr_peak,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
        optimizer=optimizer,
        batching=config.batching,
        device=device,
        seed=seed,
        verbose=verbose,
    )
    trainer.fit(
        data["x_train"],
        data["y_train"],
        validation_data=validation_data(data),
        batch_size=config.batch_size,
        nb_epochs=config.epochs,
        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
    )
    params = trainer.regularizer_params()
    params.update(
        {
            "preset": preset,
            "optimizer": config.optimizer,
            "constant": bool(config.constant),
            "final_epoch": trainer.history[-1] if trainer.history else {},
        }
    )
    model.eval()
    return model, {"name": DEFENCE_NAME, "params": params}


DEFENCE = Defence(
    name=DEFENCE_NAME,
    paper="Manifold regularization (Jin & Rinard 2020)",
    paper_id="003",
    package="art_manifold_defenses.manifold_regularization",
    config=ManifoldRegularizationConfig,
    build=build_defended_model,
    train=train_manifold_regularization,
    flag_prefix="mr",
)

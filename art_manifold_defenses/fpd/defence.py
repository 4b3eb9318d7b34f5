"""The Feature Pyramid Decoder as a :class:`~art_manifold_defenses.defence_record.Defence`:
:class:`FPDConfig`, :func:`build_fpd`, :func:`train_fpd` and :data:`DEFENCE` (listed in
:mod:`art_manifold_defenses.defences`). No torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..defence_record import Defence, TrainingConfig, num_classes, validation_data

if TYPE_CHECKING:
    from torch import nn

    from .network import FeaturePyramidDecoder

__all__ = ["DEFENCE", "DEFENCE_NAME", "FPDConfig", "build_fpd", "parse_positions", "train_fpd"]

DEFENCE_NAME = "fpd"


@dataclass
class FPDConfig(TrainingConfig):
    """FPD and Algorithm 1 (flags ``--fpd-*``); defaults: the paper's MNIST settings (Li et al. 2020,
    paper 002, Section 4.1), ``lr`` being Adamax's."""

    epsilon: float = field(
        default=0.01, metadata={"help": "uniform training-noise half-width (default: 0.01)"}
    )
    threshold: float = field(
        default=3.0, metadata={"help": "reconstruction-loss threshold T of phase 1 (default: 3)"}
    )
    alpha1: float = field(default=1.0, metadata={"help": "cross-entropy weight (default: 1)"})
    alpha2: float = field(default=1.0, metadata={"help": "reconstruction-loss weight (default: 1)"})
    second_pass: Literal["detach", "recompute", "none"] = field(
        default="detach", metadata={"help": "second pass on x' (default: detach)"}
    )
    grad_clip: float = field(default=10.0, metadata={"help": "gradient-norm clipping, 0 = off (default: 10)"})
    weight_decay: float = field(default=1e-5, metadata={"help": "Adamax weight decay (default: 1e-5)"})
    bottleneck: bool = field(
        default=False, metadata={"help": "bottleneck inner denoising layers (paper Fig. 2a)"}
    )
    middle: Literal["paper", "authors_code", "none"] = field(
        default="paper", metadata={"help": "middle denoising layer (default: paper)"}
    )
    denoise_after: str = field(
        default="0,1",
        metadata={
            "help": "inner denoising positions, comma-separated (0 = after the stem, i = after stage i); "
            "'none' "
            "= no inner layers, the paper's Table 1 'Mid' ablation (default: 0,1)"
        },
    )
    no_bn_recalibration: bool = field(
        default=False,
        metadata={
            "help": "keep the batch-norm statistics of training (authors' code) instead of re-estimating "
            "them "
            "from the inference path after every epoch"
        },
    )
    fpn_channels: int = field(default=256, metadata={"help": "restoration pyramid width (default: 256)"})
    keep_relu: bool = field(default=False, metadata={"help": "do not swap the backbone's ReLUs for ELUs"})
    dropout: float = field(default=0.0, metadata={"help": "dropout before the tanh classifier (default: 0)"})
    adversarial: Literal["none", "fgsm", "pgd"] = field(
        default="none", metadata={"help": "adversarial training (default: none)"}
    )
    adv_eps: float = field(default=0.3, metadata={"help": "training-attack L-inf radius (default: 0.3)"})
    adv_step: float = field(default=0.01, metadata={"help": "training PGD step (default: 0.01)"})
    denoising_form: Literal["gated", "bn_zero", "authors_code"] = field(
        default="gated",
        metadata={
            "help": "how the non-local terms join their residual: gated (default, identity at "
            "initialisation), "
            "bn_zero (Xie et al.) or authors_code (x + NL(x), trains at chance on resnet18)"
        },
    )
    adv_iter: int = field(default=100, metadata={"help": "training PGD iterations (default: 100)"})
    adv_delay: int = field(
        default=10, metadata={"help": "first epoch with adversarial examples (default: 10)"}
    )


def parse_positions(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> ``(0, 1)``; ``"none"`` or ``""`` -> ``()`` (the value of ``--fpd-denoise-after``).

    Paper: Li et al. 2020 (paper 002), Table 1 (where the inner denoising layers go); parsing."""
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise ValueError(
            f"--fpd-denoise-after must be 'none' or comma-separated integers, got {text!r}"
        ) from exc


def build_fpd(base_model: nn.Module, params: dict[str, Any]) -> FeaturePyramidDecoder:
    """Checkpoint builder for defence ``"fpd"``: ``FeaturePyramidDecoder(base_model, **params)``.

    Paper: Li et al. 2020 (paper 002), Section 3 / Fig. 1 (the FPD-enhanced CNN); the checkpoint builder that
    re-creates it. A sidecar written before ``denoising_form`` existed describes the authors' form
    (``x + NL(x)``), so such checkpoints load as ``denoising_form="authors_code"``.
    """
    from .network import FeaturePyramidDecoder

    return FeaturePyramidDecoder(base_model, **{"denoising_form": "authors_code", **params})


def train_fpd(
    base_model: nn.Module,
    data: dict[str, Any],
    config: FPDConfig,
    *,
    device: Any = "cpu",
    seed: int = 0,
    verbose: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Wrap ``base_model`` (the backbone) with FPD and train it with :class:`FPDTrainer` (Algorithm 1, Adamax
    ``config.lr``); return ``(model, {"name": "fpd", "params": model.config, "training": {...}})``.

    Paper: Li et al. 2020 (paper 002), Algorithm 1."""
    from .network import FeaturePyramidDecoder
    from .trainer import FPDTrainer

    x_train = data["x_train"]
    model = FeaturePyramidDecoder(
        base_model,
        in_channels=int(x_train.shape[1]),
        input_size=int(x_train.shape[2]),
        num_classes=num_classes(base_model, data),
        denoise_after=parse_positions(config.denoise_after),
        bottleneck=bool(config.bottleneck),
        middle_denoising=config.middle,
        denoising_form=config.denoising_form,
        fpn_channels=config.fpn_channels,
        swap_activation=not config.keep_relu,
        dropout=config.dropout,
        device=device,
    )
    trainer = FPDTrainer(
        model,
        epsilon=config.epsilon,
        threshold=config.threshold,
        alpha1=config.alpha1,
        alpha2=config.alpha2,
        second_pass=config.second_pass,
        grad_clip=config.grad_clip if config.grad_clip > 0 else None,
        lr=config.lr,
        weight_decay=config.weight_decay,
        adversarial=None if config.adversarial == "none" else config.adversarial,
        adversarial_eps=config.adv_eps,
        adversarial_eps_step=config.adv_step,
        adversarial_max_iter=config.adv_iter,
        adversarial_delay=config.adv_delay,
        bn_recalibration=not config.no_bn_recalibration,
        device=device,
        seed=seed,
        verbose=verbose,
    )
    trainer.fit(
        x_train,
        data["y_train"],
        validation_data=validation_data(data),
        batch_size=config.batch_size,
        nb_epochs=config.epochs,
        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
    )
    training = {name: getattr(trainer, name) for name in FPDTrainer.params if name not in ("verbose",)}
    training["final_phase_one_share"] = trainer.history[-1].get("phase_one") if trainer.history else None
    return model, {"name": DEFENCE_NAME, "params": model.config, "training": training}


DEFENCE = Defence(
    name=DEFENCE_NAME,
    paper="Feature Pyramid Decoder (Li et al., CVPR 2020)",
    paper_id="002",
    package="art_manifold_defenses.fpd",
    config=FPDConfig,
    build=build_fpd,
    train=train_fpd,
    flag_prefix="fpd",
)

"""Gaussian smoothing with stability training (STN) as a
:class:`~art_manifold_defenses.defence_record.Defence`: :class:`STNConfig`, :func:`build_smoothed_classifier`,
:func:`train_stn_defence` and :data:`DEFENCE` (listed in :mod:`art_manifold_defenses.defences`, where
``"smoothing"`` -- the name of earlier checkpoints -- is an alias of ``"stn"``). No torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..defence_record import Defence, TrainingConfig, validation_data

if TYPE_CHECKING:
    from torch import nn

    from .module import SmoothedClassifier

__all__ = ["DEFENCE", "DEFENCE_NAME", "STNConfig", "build_smoothed_classifier", "train_stn_defence"]

DEFENCE_NAME = "stn"


@dataclass
class STNConfig(TrainingConfig):
    """Noise level and stability loss (flags ``--sigma``, ``--stability-weight``, ``--stn-target``); defaults:
    Li et al. 2019 (paper 004), Section 5 (MNIST)."""

    sigma: float = field(
        default=0.7,
        metadata={
            "type": "positive_float_arg",
            "help": "Gaussian noise std in [0,1] pixel units (default: 0.7, the paper's MNIST value)",
        },
    )
    stability_weight: float = field(
        default=1.0,
        metadata={
            "type": "non_negative_float_arg",
            "help": "gamma of the stability loss (default: 1, the paper); 0 = plain Gaussian augmentation",
        },
    )
    stn_target: Literal["softmax", "logits"] = field(
        default="softmax",
        metadata={
            "help": "stability target: softmax of the clean prediction (paper) or raw logits (authors' code)"
        },
    )


def build_smoothed_classifier(base_model: nn.Module, params: dict[str, Any]) -> SmoothedClassifier:
    """Checkpoint builder: ``params`` needs ``sigma`` (other training hyper-parameters are kept only as
    metadata).

    Paper: Li et al. 2019 (paper 004), Algorithm 1 (Gaussian noise added to the input of the base classifier);
    the checkpoint builder.
    """
    from .module import SmoothedClassifier

    if "sigma" not in params:
        raise ValueError("a smoothing/stn checkpoint needs the defence parameter 'sigma'")
    return SmoothedClassifier(base_model, float(params["sigma"]), samples=int(params.get("samples", 1)))


def train_stn_defence(
    base_model: nn.Module,
    data: dict[str, Any],
    config: STNConfig,
    *,
    device: Any = "cpu",
    seed: int = 0,
    verbose: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``base_model`` with STN (:func:`train_stn`); return the smoothed model
    (:class:`SmoothedClassifier`) and its checkpoint defence entry.

    Paper: Li et al. 2019 (paper 004), Section 4 (stability training with noise)."""
    from .module import SmoothedClassifier
    from .stability import train_stn

    sigma, weight, target = float(config.sigma), float(config.stability_weight), str(config.stn_target)
    train_stn(
        base_model,
        data["x_train"],
        data["y_train"],
        sigma=sigma,
        stability_weight=weight,
        target=target,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        device=device,
        seed=seed,
        verbose=verbose,
        validation_data=validation_data(data),
        checkpoint_dir=checkpoint_dir,
    )
    model = SmoothedClassifier(base_model, sigma)
    return model, {
        "name": DEFENCE_NAME,
        "params": {"sigma": sigma, "stability_weight": weight, "stn_target": target},
    }


DEFENCE = Defence(
    name=DEFENCE_NAME,
    paper="Rényi randomized smoothing / STN (Li et al., NeurIPS 2019)",
    paper_id="004",
    package="art_manifold_defenses.smoothing",
    config=STNConfig,
    build=build_smoothed_classifier,
    train=train_stn_defence,
    flag_prefix="",
)

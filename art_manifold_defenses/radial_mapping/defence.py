"""Radial-basis feature mapping as a :class:`~art_manifold_defenses.defence_record.Defence`:
:class:`RadialMappingConfig`, :func:`build_radial_mapping`, :func:`train_radial_mapping_defence` and
:data:`DEFENCE` (listed in :mod:`art_manifold_defenses.defences`). No torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..defence_record import Defence, TrainingConfig, validation_data

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DEFENCE",
    "DEFENCE_NAME",
    "RadialMappingConfig",
    "build_radial_mapping",
    "mapping_params",
    "train_radial_mapping_defence",
]

DEFENCE_NAME = "radial-mapping"


@dataclass
class RadialMappingConfig(TrainingConfig):
    """Where and how mapping blocks go into the network (flags ``--rbm-*``); defaults as in Taghanaki
    et al. 2019 (paper 001), Section 2.2 / Fig. 2."""

    variant: Literal["paper", "authors_code"] = field(
        default="paper", metadata={"help": "block variant (default: paper)"}
    )
    centers: int | None = field(
        default=None,
        metadata={
            "type": "positive_int_arg",
            "help": "centres per block (default: the block's input channels)",
        },
    )
    out_channels: int | None = field(
        default=None,
        metadata={
            "type": "positive_int_arg",
            "help": "mapped channels per block (default: the number of centres)",
        },
    )
    after: str = field(
        default="all_conv",
        metadata={
            "help": (
                "where to insert blocks: all_conv, blocks, or comma-separated module names (default: "
                "all_conv)"
            )
        },
    )
    mode: Literal["auto", "concat", "project"] = field(
        default="auto", metadata={"help": "concat (nn.Sequential), project, or auto (default)"}
    )
    init: Literal["uniform", "kmeans"] = field(
        default="uniform", metadata={"help": "centre initialisation (default: uniform)"}
    )
    epsilon: float = field(
        default=1e-6,
        metadata={"type": "positive_float_arg", "help": "epsilon of M = A A^T + epsilon I (default: 1e-6)"},
    )
    beta_init: float = field(
        default=2.0, metadata={"type": "positive_float_arg", "help": "initial width beta (default: 2.0)"}
    )


def mapping_params(config: RadialMappingConfig) -> dict[str, Any]:
    """The JSON-serialisable mapping options stored in the checkpoint's ``defence.params``.

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.2; checkpoint metadata."""
    after: str | list[str] = (
        config.after
        if config.after in ("all_conv", "blocks")
        else [a.strip() for a in config.after.split(",") if a.strip()]
    )
    return {
        "after": after,
        "n_centers": config.centers,
        "variant": config.variant,
        "out_channels": config.out_channels,
        "mode": config.mode,
        "epsilon": float(config.epsilon),
        "beta_init": float(config.beta_init),
    }


def build_radial_mapping(base_model: nn.Module, params: dict[str, Any]) -> nn.Module:
    """Checkpoint builder: the base model with the stored mapping options (weights are loaded afterwards).

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.2 / Fig. 2 (mapping blocks placed in a CNN); no
    equation: the checkpoint builder that re-inserts the blocks.
    """
    from .transform import add_radial_mapping

    options = {k: v for k, v in params.items() if k not in ("init", "init_data", "seed", "inplace")}
    return add_radial_mapping(base_model, **options, init="uniform", inplace=True)


def train_radial_mapping_defence(
    base_model: nn.Module,
    data: dict[str, Any],
    config: RadialMappingConfig,
    *,
    device: Any = "cpu",
    seed: int = 0,
    verbose: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Insert the mapping blocks into ``base_model`` and train everything end to end with the shared loop;
    return ``(model, checkpoint defence entry)``.

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.2 (end-to-end training with the mapping blocks)."""
    from .training import train_radial_mapping
    from .transform import add_radial_mapping

    params = mapping_params(config)
    init_data = data["x_train"][:512] if config.init == "kmeans" else None
    model = add_radial_mapping(
        base_model, **params, init=config.init, init_data=init_data, seed=int(seed)
    ).to(device)
    train_radial_mapping(
        model,
        data["x_train"],
        data["y_train"],
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.lr,
        device=device,
        validation_data=validation_data(data),
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        verbose=verbose,
    )
    return model, {"name": DEFENCE_NAME, "params": params}


DEFENCE = Defence(
    name=DEFENCE_NAME,
    paper="Radial-basis feature mapping (Taghanaki et al., CVPR 2019)",
    paper_id="001",
    package="art_manifold_defenses.radial_mapping",
    config=RadialMappingConfig,
    build=build_radial_mapping,
    train=train_radial_mapping_defence,
    flag_prefix="rbm",
)

"""RBF-CNN as a :class:`~art_manifold_defenses.defence_record.Defence`: :class:`RBFCNNConfig`,
:func:`build_rbf_cnn`, :func:`train_rbf_cnn` and :data:`DEFENCE` (listed in
:mod:`art_manifold_defenses.defences`).

No torch at module level (``amd train --help`` lists the flags without it). rCNN+ is the variant field
``plus``; the ``amd train --defense rbf-cnn-plus`` name is an alias in
:data:`art_manifold_defenses.defences.ALIASES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..defence_record import Defence, TrainingConfig

if TYPE_CHECKING:
    from torch import nn

    from .classifier import RBFCNN

__all__ = ["DEFENCE", "DEFENCE_NAME", "RBFCNNConfig", "build_rbf_cnn", "defence_metadata", "train_rbf_cnn"]

#: Name of the defence in checkpoints (rCNN and rCNN+ are both "rbf-cnn"; ``params["variant"]`` tells them
#: apart).
DEFENCE_NAME = "rbf-cnn"
#: Name of the filter-bank file of ``amd fit-rbf`` (``--rbf-filters DIR`` reads ``DIR/filters.npz``).
FILTERS_FILE = "filters.npz"


@dataclass
class RBFCNNConfig(TrainingConfig):
    """rCNN / rCNN+ training (flags ``--rbf-*``); defaults as in Nandy, Hsu and Lee 2020 (paper 000),
    Section IV and the authors' code where the paper is silent."""

    plus: bool = field(
        default=False, metadata={"help": "train rCNN+ (Gaussian + PGD-noise images) instead of rCNN"}
    )
    filters: str | None = field(
        default=None,
        metadata={"help": "filter bank .npz from `amd fit-rbf` (default: fit one by EM on the training set)"},
    )
    desired_filters: int = field(
        default=10, metadata={"help": "EM desired filter count (MNIST 10, CIFAR-10 175)"}
    )
    em_steps: int = field(
        default=500, metadata={"help": "EM M-steps when fitting the bank here (default 500)"}
    )
    beta1: float = field(default=25.0, metadata={"help": "test-time weight sharpness beta1 (default 25)"})
    train_beta1: float = field(default=125.0, metadata={"help": "training beta1 (authors' code: 125)"})
    beta2: float = field(default=1.75, metadata={"help": "test-time noise level beta2 (default 1.75)"})
    votes: int = field(
        default=10, metadata={"help": "reconstructions averaged per prediction, m (default 10)"}
    )
    noise_draw: Literal["per_image", "fixed"] = field(
        default="per_image", metadata={"help": "fresh noise per image, or fixed per copy (authors)"}
    )
    noise_std: Literal["authors_code", "paper"] = field(
        default="authors_code", metadata={"help": "noise std beta2*sigma^2 (code) or beta2*sigma"}
    )
    weighting: Literal["base2", "exp"] = field(
        default="base2", metadata={"help": "2^(beta1 v) (code) or exp(beta1 v) (paper)"}
    )
    gaussian_std: float = field(default=0.35, metadata={"help": "rCNN+ Gaussian noise std (MNIST 0.35)"})
    linf_window: float = field(
        default=0.3, metadata={"help": "rCNN+ l-inf clip window of the noise images (MNIST 0.3)"}
    )
    noise_bank_epoch: int = field(
        default=25, metadata={"help": "rCNN+: epoch at which the PGD noise bank is computed (default 25)"}
    )
    noise_bank_eps: float = field(
        default=0.3, metadata={"help": "rCNN+: l-inf eps of the PGD noise bank (default 0.3)"}
    )
    noise_bank_size: int | None = field(
        default=None, metadata={"help": "rCNN+: attack only this many training images for the bank"}
    )


def build_rbf_cnn(base_model: nn.Module, params: dict[str, Any]) -> RBFCNN:
    """Checkpoint builder: an :class:`RBFCNN` around ``base_model`` with an empty filter bank of the stored
    shape (``num_filters``, ``patch_size``, ``in_channels``); the state dict then restores the filter
    means/variances.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section III / Fig. 1 (RBF layer, reconstruction layer, CNN);
    the checkpoint builder that re-creates that pipeline.
    """
    from .classifier import RBFCNN
    from .filter_bank import RBFFilterBank

    missing = {"num_filters", "patch_size", "in_channels"} - set(params)
    if missing:
        raise ValueError(f"rbf-cnn checkpoint params lack {sorted(missing)}")
    bank = RBFFilterBank(
        num_filters=int(params["num_filters"]),
        patch_size=int(params["patch_size"]),
        in_channels=int(params["in_channels"]),
    )
    return RBFCNN(base_model, bank, **{k: params[k] for k in RBFCNN.params if k in params})


def _load_or_fit_bank(config: RBFCNNConfig, x_train: Any, device: Any, seed: int, verbose: bool) -> Any:
    from .em import fit_rbf_filters
    from .filter_bank import RBFFilterBank

    if config.filters:
        path = Path(config.filters)
        if path.is_dir():
            path = path / FILTERS_FILE
        return RBFFilterBank.load(path, device=device)
    return fit_rbf_filters(
        x_train,
        desired_filters=config.desired_filters,
        max_steps=config.em_steps,
        nonparametric_steps=config.em_steps // 2,
        seed=seed,
        device=device,
        verbose=verbose,
    )


def train_rbf_cnn(
    base_model: nn.Module,
    data: dict[str, Any],
    config: RBFCNNConfig,
    *,
    device: Any = "cpu",
    seed: int = 0,
    verbose: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Fit (or load) the filter bank, put the reconstruction in front of ``base_model`` and train it as rCNN
    or rCNN+ (``config.plus``) with :class:`RBFCNNTrainer`; return ``(model in eval mode, checkpoint defence
    entry)``.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section III (eqs. 3-5) and Section IV (rCNN+ training)."""
    from .classifier import RBFCNN
    from .trainer import RBFCNNTrainer

    variant: Literal["rcnn", "rcnn_plus"] = "rcnn_plus" if config.plus else "rcnn"
    bank = _load_or_fit_bank(config, data["x_train"], device, seed, verbose)
    model = RBFCNN(
        base_model,
        bank,
        beta1=config.beta1,
        beta2=config.beta2,
        train_beta1=config.train_beta1,
        votes=config.votes,
        weighting=config.weighting,
        noise_std=config.noise_std,
        noise_draw=config.noise_draw,
        seed=seed,
        device=device,
    )
    shape = (int(data["x_train"].shape[1]), int(data["x_train"].shape[2]), int(data["x_train"].shape[3]))
    trainer = RBFCNNTrainer(
        model,
        variant=variant,
        gaussian_std=config.gaussian_std,
        linf_window=config.linf_window,
        noise_bank_epoch=config.noise_bank_epoch,
        noise_bank_eps=config.noise_bank_eps,
        noise_bank_size=config.noise_bank_size,
        lr=config.lr,
        input_shape=shape,
        device=device,
    )
    trainer.fit(
        data["x_train"],
        data["y_train"],
        validation_data=None,
        batch_size=config.batch_size,
        nb_epochs=config.epochs,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        verbose=verbose,
    )
    return model.eval(), defence_metadata(model, variant=variant, filters_source=config.filters or "em")


def defence_metadata(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The checkpoint ``defence`` entry of an RBFCNN: ``{"name": "rbf-cnn", "params": model.config() +
    extra}``.

    Paper: Nandy, Hsu and Lee 2020 (paper 000); checkpoint metadata."""
    from .classifier import RBFCNN

    if not isinstance(model, RBFCNN):
        raise TypeError(f"model must be an RBFCNN, got {type(model).__name__}")
    return {"name": DEFENCE_NAME, "params": {**model.config(), **extra}}


DEFENCE = Defence(
    name=DEFENCE_NAME,
    paper="RBF-CNN (Nandy, Hsu & Lee 2020)",
    paper_id="000",
    package="art_manifold_defenses.rbf_reconstruction",
    config=RBFCNNConfig,
    build=build_rbf_cnn,
    train=train_rbf_cnn,
    flag_prefix="rbf",
)

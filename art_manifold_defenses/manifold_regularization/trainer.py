"""ART trainer for manifold regularization (Jin & Rinard, eq. 15) on the package's shared training loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.defences.trainer import Trainer
from torch import Tensor, nn

from ..estimator import ClassifierModule
from ..training import StepFunction, TrainContext, train
from ..utils import check_images, check_labels, resolve_device
from ._params import _check_non_negative, _SettableParams
from .manifold_regularizer import ManifoldRegularizer
from .schedules import PRESETS, ManifoldRegularizationSchedule, paper_schedule, preset_momentum

__all__ = [
    "ABLATIONS",
    "LEGACY_READINGS",
    "ManifoldRegularizationTrainer",
    "manifold_regularization_step",
    "stored_regularizer_params",
]

#: The settings that older checkpoints and sidecars do not record, with the reading those versions used: the
#: unsquared Hamming distance and no factor 1/2 on the intrinsic term.
LEGACY_READINGS: dict[str, Any] = {"hamming_form": "unsquared", "intrinsic_scale": 1.0}


def stored_regularizer_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The trainer settings recorded in a checkpoint's sidecar (``metadata["defence"]["params"]``, as written
    from :meth:`ManifoldRegularizationTrainer.regularizer_params`), with what older sidecars leave out filled
    in by the reading those versions trained with (:data:`LEGACY_READINGS`: ``hamming_form="unsquared"``,
    ``intrinsic_scale=1.0``). Returns a new dict.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 11 and 13 (which reading of them a stored model was trained
    with).
    """
    if params is not None and not isinstance(params, dict):
        raise TypeError(
            f"params must be a dict of stored trainer settings or None, got {type(params).__name__}"
        )
    return {**LEGACY_READINGS, **(params or {})}


#: ablation name -> (intrinsic term, Hamming term)
ABLATIONS: dict[str, tuple[str | None, bool]] = {
    "both": ("sparse", True),
    "intrinsic": ("sparse", False),
    "hamming": (None, True),
    "dense": ("dense", True),
}


def manifold_regularization_step(
    regularizer: ManifoldRegularizer, schedule: ManifoldRegularizationSchedule
) -> StepFunction:
    """A step function for :func:`art_manifold_defenses.training.train` implementing eq. 15: ``CE(f(x), y) +
    gamma_I * intrinsic + gamma_H * Hamming`` (weight decay, the ambient term, is the optimizer's). Besides
    the terms it logs ``hamming_distance``, the batch mean of the per-sample distance ``d_H(x+, x-)`` that
    eq. 13 squares.

    Paper: Jin & Rinard 2020 (paper 003), eq. 15 (Section 5.4).

    Before each step the schedule is read at ``ctx.progress`` (fractional epoch): its eps is used for the
    resampling, its gammas weight the terms, and its learning rate (if any) is written into every parameter
    group. The step back-propagates and updates the model itself and returns the logged values. With separate
    passes (see :class:`ManifoldRegularizer`) the cross-entropy is back-propagated right after the clean pass
    and the regularizers after the x+/x- passes (the same gradient, a third less peak memory).
    """

    def step(ctx: TrainContext, x: Tensor, y: Tensor) -> dict[str, float]:
        values = schedule.at(ctx.progress)
        if "lr" in values:
            for group in ctx.optimizer.param_groups:
                group["lr"] = values["lr"]
        gamma_i = values["gamma_intrinsic"] if regularizer.intrinsic is not None else 0.0
        gamma_h = values["gamma_hamming"] if regularizer.hamming else 0.0
        if regularizer.resolve_batching(ctx.model, x.device) == "separate":
            # back-propagate the clean cross-entropy before the x+/x- passes run (one graph alive at a time);
            # the gradients add up to those of the whole loss
            ctx.optimizer.zero_grad(set_to_none=True)
            out = regularizer(
                ctx.model,
                x,
                eps=values["epsilon"],
                clean_backward=lambda logits: F.cross_entropy(logits, y),
                outputs_in_loss=regularizer.intrinsic
                is not None,  # the penalty below depends on f(x+), f(x-)
            )
            assert out.logits is not None and out.clean_loss is not None
            cross_entropy = out.clean_loss
            penalty = gamma_i * out.intrinsic + gamma_h * out.hamming
            loss = cross_entropy + penalty.detach()
        else:
            out = regularizer(ctx.model, x, eps=values["epsilon"])
            assert out.logits is not None  # include_clean=True
            cross_entropy = F.cross_entropy(out.logits, y)
            penalty = None
            loss = cross_entropy + gamma_i * out.intrinsic + gamma_h * out.hamming
        with torch.no_grad():  # one device-to-host transfer for every logged value
            accuracy = (out.logits.argmax(1) == y).float().mean()
            distance = out.layer_hamming.mean() if out.layer_hamming.numel() else out.hamming.new_zeros(())
            values_on_host = torch.stack(
                [loss, cross_entropy, out.intrinsic, out.hamming, accuracy, distance]
            ).tolist()
            total, ce, intrinsic, hamming, acc, hamming_distance = values_on_host
        if not math.isfinite(total):
            raise FloatingPointError(
                f"non-finite loss at epoch {ctx.epoch + 1}, batch {ctx.batch_index}: cross-entropy {ce}, "
                "intrinsic "
                f"{intrinsic}, Hamming {hamming}"
            )
        if penalty is None:
            ctx.backward_and_step(loss)
        else:
            if penalty.requires_grad:
                penalty.backward()
            if ctx.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(
                    [p for g in ctx.optimizer.param_groups for p in g["params"]], ctx.grad_clip
                )
            ctx.optimizer.step()
        logs = {
            "loss": total,
            "cross_entropy": ce,
            "intrinsic": intrinsic,
            "hamming": hamming,
            "hamming_distance": hamming_distance,
            "epsilon": values["epsilon"],
            "gamma_intrinsic": gamma_i,
            "gamma_hamming": gamma_h,
            "train_accuracy": acc,
        }
        if out.pattern_agreement:
            sizes = np.asarray(out.layer_sizes, dtype=np.float64)
            logs["relu_agreement"] = float(np.dot(out.pattern_agreement, sizes) / sizes.sum())
        return logs

    return step


class ManifoldRegularizationTrainer(_SettableParams, Trainer):
    """Train a classifier with sparse manifold regularization (Jin & Rinard, "Manifold Regularization for
    Locally Stable Deep Neural Networks", ICLR 2021 submission, https://openreview.net/forum?id=bhKQ7P7gyLA;
    arXiv:2003.04286).

    Objective (eq. 15): cross-entropy on clean inputs + weight decay (gamma_K = 5e-4, via SGD) + gamma_I times
    the sparse intrinsic term (eq. 11, with its constant 1/2) + gamma_H times the Hamming term (eq. 13: the
    squared per-sample distance of section 5.4, relaxed by eq. 14), all computed from the forward passes of
    ``x``, ``x+`` and ``x-`` (one concatenated pass, or three passes in one graph: ``batching``, see
    :class:`ManifoldRegularizer`) and one backward. Schedules (appendix B) are functions of the epoch: SGD
    with a piecewise-linear learning rate (0 -> 0.1 -> 0.005 -> 0), eps ramped from eps/4 to eps over epochs
    10-35, gamma_I and gamma_H ramped x10 over epochs 20-80 (breakpoints stretched to ``nb_epochs``). No
    adversary is used. Training goes through :func:`art_manifold_defenses.training.train`, which warns
    (:class:`~art_manifold_defenses.training.TrainingCollapseWarning`) when an epoch ends with the network at
    chance or predicting one class (``fit(..., collapse_check=False)`` turns the check off).

    Ablations (Table 2): ``"both"`` (the method), ``"intrinsic"`` (gamma_H = 0), ``"hamming"`` (gamma_I = 0),
    ``"dense"`` (the intrinsic term over the dense heat-kernel Laplacian of the batch, scale ``dense_scale``;
    the paper trains it with batch 40; the Hamming term stays on the x+/x- pairs, a reading of this package).

    Known limitations: the authors' training code is not public, so the normalisation of the Hamming term and
    the choice of pre-activations follow the best reading recorded in the project notes; the arXiv v1 model of
    this paper was independently evaluated at 1.35% robust accuracy under AutoAttack (CIFAR-10, 8/255), so
    robustness measured with weak attacks should not be trusted. Only ``nn.ReLU`` modules are seen by the
    Hamming term.

    Args:
        classifier: an ART ``PyTorchClassifier`` (its ``model`` is trained in place; PyTorch preprocessing
            that applies when fitting is applied before the model).
        schedule: a :class:`ManifoldRegularizationSchedule`, or a preset name of :func:`paper_schedule`
            (``"cifar10"``, ``"mnist"``, ``"verification"``) stretched to ``nb_epochs`` at ``fit`` time.
        ablation: ``"both"`` | ``"intrinsic"`` | ``"hamming"`` | ``"dense"``.
        alpha: Hamming relaxation sharpness (paper: 8).
        hamming_form: ``"squared"`` (eq. 13, default) or ``"unsquared"`` (the reading of earlier versions:
            about 3,500x stronger at initialisation on C&W's MNIST net, where it made training collapse).
        intrinsic_scale: factor of the sparse intrinsic term (eq. 11's ``1 / (c^2 N)`` with ``c = 2``: 0.5,
            the default; earlier versions: 1.0).
        norm: ``"linf"`` (paper) or ``"l2"`` resampling.
        dense_scale: heat-kernel scale of the dense ablation (paper: 2).
        lr_peak: peak learning rate of a preset schedule (paper: 0.1).
        weight_decay: gamma_K (paper: 5e-4) for the default SGD optimizer.
        momentum: SGD momentum of the default optimizer; ``None`` (default): the preset's
            (:data:`~art_manifold_defenses.manifold_regularization.schedules.PRESET_MOMENTUM`: 0.9 for
            ``"cifar10"`` and ``"verification"`` as Maini et al.; 0 for ``"mnist"``, where 0.9 diverged at the
            learning-rate peak on C&W's net), 0.9 for a hand-built schedule. The paper names SGD and Maini
            et al.'s schedule but no momentum.
        optimizer: a torch optimizer over the model's parameters to use instead of SGD (the schedule's
            learning rate, if any, is still written into it).
        shared_dropout: one dropout mask for x, x+, x- (see :class:`ManifoldRegularizer`).
        functional_relus: ``"raise"`` | ``"warn"`` | ``"ignore"`` for ReLUs the hooks cannot see.
        activation_types: modules whose inputs the Hamming term regularizes.
        batching: ``"auto"`` (default: separate passes on CPU for models without batch statistics, else one
            concatenated pass), ``"concatenated"`` or ``"separate"``; the same values either way where the
            model has no batch-statistics layer (see :class:`ManifoldRegularizer`).
        device: training device (default: the classifier's).
        seed: seed of the data order and of every random draw (per epoch, so resumed runs match).
        verbose: tqdm progress bars.
    """

    params = [
        "schedule",
        "ablation",
        "alpha",
        "hamming_form",
        "intrinsic_scale",
        "norm",
        "dense_scale",
        "lr_peak",
        "weight_decay",
        "momentum",
        "optimizer",
        "shared_dropout",
        "functional_relus",
        "activation_types",
        "batching",
        "device",
        "seed",
        "verbose",
    ]

    def __init__(
        self,
        classifier: Any,
        *,
        schedule: ManifoldRegularizationSchedule | str = "cifar10",
        ablation: str = "both",
        alpha: float = 8.0,
        hamming_form: str = "squared",
        intrinsic_scale: float = 0.5,
        norm: str = "linf",
        dense_scale: float = 2.0,
        lr_peak: float = 0.1,
        weight_decay: float = 5e-4,
        momentum: float | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        shared_dropout: bool = True,
        functional_relus: str = "raise",
        activation_types: Sequence[type[nn.Module]] = (nn.ReLU,),
        batching: str = "auto",
        device: str | torch.device | None = None,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        model = getattr(classifier, "model", None)
        if not isinstance(model, nn.Module):
            raise TypeError(
                "classifier must be an ART PyTorchClassifier (with a torch model), got "
                f"{type(classifier).__name__}"
            )
        super().__init__(classifier)
        self.schedule = schedule
        self.ablation = ablation
        self.alpha = alpha
        self.hamming_form = hamming_form
        self.intrinsic_scale = intrinsic_scale
        self.norm = norm
        self.dense_scale = dense_scale
        self.lr_peak = lr_peak
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.optimizer = optimizer
        self.shared_dropout = shared_dropout
        self.functional_relus = functional_relus
        self.activation_types = tuple(activation_types)
        self.batching = batching
        self.device = device if device is not None else getattr(classifier, "device", "cpu")
        self.seed = seed
        self.verbose = verbose
        self.history: list[dict[str, float]] = []
        self._check_params()

    def _check_params(self) -> None:
        if isinstance(self.schedule, str):
            if self.schedule not in PRESETS:
                raise ValueError(
                    f"schedule must be a ManifoldRegularizationSchedule or one of {sorted(PRESETS)}, got "
                    f"{self.schedule!r}"
                )
        elif not isinstance(self.schedule, ManifoldRegularizationSchedule):
            raise TypeError(
                "schedule must be a ManifoldRegularizationSchedule or a preset name, got "
                f"{type(self.schedule).__name__}"
            )
        if self.ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {sorted(ABLATIONS)}, got {self.ablation!r}")
        for name in ("lr_peak", "weight_decay"):
            _check_non_negative(getattr(self, name), name)
        if self.momentum is not None and (
            isinstance(self.momentum, bool)
            or not isinstance(self.momentum, (int, float))
            or not 0 <= self.momentum < 1
        ):
            raise ValueError(
                f"momentum must be a number in [0, 1) or None (the preset's), got {self.momentum!r}"
            )
        if self.optimizer is not None and not isinstance(self.optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or None, got {type(self.optimizer).__name__}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        if not isinstance(self.verbose, bool):
            raise TypeError(f"verbose must be a bool, got {type(self.verbose).__name__}")
        resolve_device(self.device)
        # validates alpha, hamming_form, intrinsic_scale, norm, dense_scale, functional_relus, shared_dropout,
        # activation_types, batching
        self._make_regularizer()

    def _make_regularizer(self) -> ManifoldRegularizer:
        intrinsic, hamming = ABLATIONS[self.ablation]
        clip = getattr(self._classifier, "clip_values", None)
        return ManifoldRegularizer(
            norm=self.norm,
            alpha=self.alpha,
            intrinsic=intrinsic,
            hamming=hamming,
            hamming_form=self.hamming_form,
            intrinsic_scale=self.intrinsic_scale,
            dense_scale=self.dense_scale,
            clip_values=None if clip is None else (float(np.min(clip[0])), float(np.max(clip[1]))),
            functional_relus=self.functional_relus,
            shared_dropout=self.shared_dropout,
            activation_types=self.activation_types,
            batching=self.batching,
        )

    def regularizer_params(self) -> dict[str, Any]:
        """The hyper-parameters as JSON-friendly values (for checkpoint metadata; read them back with
        :func:`stored_regularizer_params`, which fills in the reading of sidecars written before a field
        existed)."""
        schedule = self.schedule if isinstance(self.schedule, str) else self.schedule.describe()
        return {
            "schedule": schedule,
            "ablation": self.ablation,
            "alpha": self.alpha,
            "hamming_form": self.hamming_form,
            "intrinsic_scale": self.intrinsic_scale,
            "norm": self.norm,
            "dense_scale": self.dense_scale,
            "lr_peak": self.lr_peak,
            "weight_decay": self.weight_decay,
            "momentum": self.resolved_momentum(),
            "shared_dropout": self.shared_dropout,
            "batching": self.batching,
            "seed": self.seed,
        }

    def resolved_momentum(self) -> float:
        """The SGD momentum the default optimizer uses: ``momentum``, or the preset's when it is ``None``."""
        return float(preset_momentum(self.schedule) if self.momentum is None else self.momentum)

    def _training_model(self) -> nn.Module:
        """The classifier's model behind the preprocessing that applies when fitting (see
        :class:`ClassifierModule`)."""
        if not getattr(self._classifier, "preprocessing_operations", None):
            return self._classifier.model  # type: ignore[no-any-return]
        try:
            module = ClassifierModule(self._classifier, fit=True, name="classifier")
        except TypeError as exc:
            raise ValueError(
                f"manifold regularization needs differentiable torch preprocessing: {exc}"
            ) from exc
        return module if module.operations else module.net

    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        batch_size: int = 128,
        nb_epochs: int = 100,
        checkpoint_dir: str | None = None,
        resume: bool = True,
        **kwargs: Any,
    ) -> None:
        """Train the classifier's model in place on ``(x, y)`` (labels as indices or one-hot).

        Args:
            x: training images (N, C, H, W) within the classifier's clip values.
            y: labels.
            validation_data: ``(x_val, y_val)``; accuracy after every epoch is stored in :attr:`history`.
            batch_size: paper: 128 (40 for the dense ablation).
            nb_epochs: paper: 100.
            checkpoint_dir: write the training state every epoch and resume from it.
            kwargs: passed to :func:`art_manifold_defenses.training.train` (e.g. ``grad_clip``,
                ``on_epoch_end``, ``collapse_check=False``).
        """
        nb_classes = int(self._classifier.nb_classes)
        clip = getattr(self._classifier, "clip_values", None)
        x_np = check_images(
            x,
            "x",
            clip_values=None if clip is None else (float(np.min(clip[0])), float(np.max(clip[1]))),
            ndim=max(np.ndim(x), 2),
        )
        y_np = check_labels(y, len(x_np), nb_classes, "y")
        val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            x_val = check_images(validation_data[0], "validation_data[0]", clip_values=None, ndim=x_np.ndim)
            val = (x_val, check_labels(validation_data[1], len(x_val), nb_classes, "validation_data[1]"))
        if isinstance(nb_epochs, bool) or not isinstance(nb_epochs, int) or nb_epochs < 1:
            raise ValueError(f"nb_epochs must be a positive integer, got {nb_epochs!r}")
        schedule = (
            paper_schedule(self.schedule, epochs=nb_epochs, lr_peak=self.lr_peak)
            if isinstance(self.schedule, str)
            else self.schedule
        )
        device = resolve_device(self.device)
        model = self._training_model().to(device)
        optimizer = self.optimizer
        if optimizer is None:
            optimizer = torch.optim.SGD(
                model.parameters(),
                lr=self.lr_peak,
                momentum=self.resolved_momentum(),
                weight_decay=self.weight_decay,
            )
        step = manifold_regularization_step(self._make_regularizer(), schedule)
        self.history = train(
            model,
            x_np,
            y_np,
            epochs=nb_epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            step_fn=step,
            device=device,
            validation_data=val,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            seed=self.seed,
            verbose=self.verbose,
            desc=f"manifold-reg ({self.ablation})",
            **kwargs,
        )

    def predict(self, x: np.ndarray, **kwargs: Any) -> np.ndarray:
        """The classifier's predictions."""
        return self._classifier.predict(x, **kwargs)

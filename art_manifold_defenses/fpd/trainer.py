"""Two-phase training of a Feature Pyramid Decoder (paper 002, Algorithm 1), as an ART ``Trainer``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.defences.trainer import Trainer
from torch import Tensor, nn

from .. import distributed as dist_helpers
from ..estimator import to_art_classifier
from ..training import TrainContext, evaluate_accuracy, train
from ..utils import check_images, check_labels, resolve_device
from .adversarial import fgsm_linf, pgd_linf
from .batchnorm import recalibrate_batchnorm
from .network import FeaturePyramidDecoder

__all__ = ["FPDTrainer", "SECOND_PASS_MODES", "ADVERSARIAL_MODES"]

SECOND_PASS_MODES = ("detach", "recompute", "none")
ADVERSARIAL_MODES = (None, "fgsm", "pgd")


def find_fpd(model: Any) -> FeaturePyramidDecoder:
    """The :class:`FeaturePyramidDecoder` inside an ART classifier or module wrapper (or the model itself).

    Paper: Li et al. 2020 (paper 002), Fig. 1; a lookup helper for the Algorithm 1 trainer.
    """
    module = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    if isinstance(module, nn.Module):
        for sub in module.modules():
            if isinstance(sub, FeaturePyramidDecoder):
                return sub
    raise TypeError(
        f"expected a FeaturePyramidDecoder or an ART classifier wrapping one, got {type(model).__name__}"
    )


class FPDTrainer(Trainer):
    """Algorithm 1 of Li et al., "Enhancing Intrinsic Adversarial Robustness via Feature Pyramid Decoder"
    (CVPR 2020, https://arxiv.org/abs/2005.02552), with optional adversarial training on top (``F_FGSM`` /
    ``F_PGD``, Sec. 4.2).

    Paper: Li et al. 2020 (paper 002), Algorithm 1 and Section 3.4 (two-phase training).

    Per batch (lines 3-18):

    1. ``x_noisy = x + U(-epsilon, epsilon)`` (not clipped to [0, 1], as in the authors' code);
       ``x' = FPD_R(FPD_FD(x_noisy))`` and ``l2 = MSE(x', x)`` (mean squared error against the *clean* image);
    2. **phase 1**, ``l2 > threshold``: one update of ``alpha2 * l2`` restricted to the front-denoising and
       restoration parameters (:meth:`FeaturePyramidDecoder.front_denoising_parameters`,
       ``restoration_parameters``). The other parameters (the tanh classifier) get no gradient and are skipped
       by the optimizer, so neither momentum nor weight decay moves them. The back pass is computed (one
       forward call for both passes, which ``torchrun`` needs) but does not enter the loss;
    3. **phase 2**, ``l2 <= threshold``: one update of ``alpha1 * CE(tanh logits, y) + alpha2 * l2`` on all
       parameters, then a **second pass** on the restored image ``x'`` (lines 14-17):
       ``(x'', logits'') = FPD(x')`` and another update of ``alpha1 * CE + alpha2' * MSE(x'', x)``.

    The second pass of the authors' code back-propagates through the graph of the first pass after the
    optimizer already changed its weights (PyTorch >= 1.5 refuses this). ``second_pass`` chooses what to do
    instead: ``"detach"`` (default: ``x'`` of the first pass as a fixed input), ``"recompute"`` (recompute
    ``x'`` with the updated weights and back-propagate through both passes; one more front pass) or ``"none"``
    (skip lines 14-17). Two other quirks of the authors' code are not replicated: their phase-1 optimizer only
    held the transposed convolutions (a consumed ``filter`` iterator), and the MNIST script added 3-channel
    noise before replicating channels.

    Adversarial training (``adversarial="fgsm"|"pgd"``): from epoch ``adversarial_delay`` on, L-infinity
    adversarial examples of the current model (eval mode, labels = its predictions as in the authors' code, or
    the true labels) are appended to the batch with the clean image as restoration target, so every loss is
    the mean of the clean-noisy and the adversarial loss (the authors'
    ``(clean loss + adversarial loss) / 2``).

    Defaults are the paper's MNIST settings: epsilon 0.01, T = 3, alpha1 = alpha2 = 1, Adamax(lr 1e-3, weight
    decay 1e-5), batch 300, gradient-norm clipping 10, PGD training attack eps 0.3 with 100 steps of 0.01 and
    a 10-epoch delay. Not implemented: the authors' ReduceLROnPlateau / early stopping on *test* data (pass
    any scheduler with ``.step()``).

    Under ``torchrun`` the shared loop wraps the network in ``DistributedDataParallel`` and every pass of a
    step goes through that wrapper, so the processes' gradients are averaged and their parameters stay
    identical; the phase switch reads the reconstruction loss averaged over the processes, so all of them take
    the same phase.

    Batch-norm statistics (``bn_recalibration``): the front and back modules share their batch-norm layers,
    and the running statistics collected during Algorithm 1 mix every pass the trainer runs, including the
    second pass on ``x'`` whose restored image ``x''`` is far from an image early in training (the cubic
    middle layer then drives the shared stem's running variance to ~1e5 on MNIST). In eval mode such a network
    predicts one class for every input. With ``bn_recalibration=True`` (default) the running statistics are
    re-estimated after every epoch from the *inference* path only (``model(x)`` on up to
    ``bn_recalibration_samples`` training images, see
    :func:`~art_manifold_defenses.fpd.batchnorm.recalibrate_batchnorm`); weights are untouched. ``False``
    keeps the statistics of training as the authors' code does. Known limitation: one set of statistics still
    serves both the front pass (on ``x``) and the back pass (on the denoised ``x'``), which the cubic
    non-local layers make differ; eval-mode accuracy of a briefly trained network stays below its train-mode
    (batch-statistics) accuracy.

    Logged per epoch (:attr:`history`): ``loss`` and ``l2`` (means over all batches), ``phase_one`` (share of
    phase-1 batches) and, as means over the *phase-2* batches only, ``ce``, ``train_accuracy`` (of the first
    pass's logits), ``l2_second`` and ``ce_second``; ``phase_two_batches``; ``val_accuracy`` when validation
    data is given.

    Args:
        classifier: an ART ``PyTorchClassifier`` wrapping a :class:`FeaturePyramidDecoder` (or the network
            itself, which is then wrapped with :func:`art_manifold_defenses.to_art_classifier`).
        epsilon: half-width of the uniform noise.
        threshold: reconstruction-loss threshold ``T`` of the phase switch.
        alpha1, alpha2: weights of the cross-entropy and of the reconstruction loss.
        alpha2_second_pass: reconstruction weight of the second pass (default ``alpha2``; 0.1 in the CALTECH
            code).
        second_pass: ``"detach"``, ``"recompute"`` or ``"none"`` (see above).
        grad_clip: global gradient-norm clipping (``None`` to disable).
        optimizer: default the classifier's optimizer if it has one, else Adamax(lr, weight_decay).
        lr, weight_decay: for the default Adamax.
        adversarial: ``None``, ``"fgsm"`` or ``"pgd"``.
        adversarial_eps, adversarial_eps_step, adversarial_max_iter: the training attack (L-infinity).
        adversarial_delay: first epoch (0-based) with adversarial examples.
        adversarial_labels: ``"predicted"`` or ``"true"`` labels for crafting the training attack.
        device: training device (default: the classifier's).
        bn_recalibration: re-estimate batch-norm running statistics from the inference path after every epoch.
        bn_recalibration_samples: training images used for that (a seeded random subset when there are more).
        seed: seed of the data order and noise (overridable in :meth:`fit`).
        verbose: tqdm progress bars.
    """

    params = [
        "epsilon",
        "threshold",
        "alpha1",
        "alpha2",
        "alpha2_second_pass",
        "second_pass",
        "grad_clip",
        "lr",
        "weight_decay",
        "adversarial",
        "adversarial_eps",
        "adversarial_eps_step",
        "adversarial_max_iter",
        "adversarial_delay",
        "adversarial_labels",
        "bn_recalibration",
        "bn_recalibration_samples",
        "seed",
        "verbose",
    ]

    def __init__(
        self,
        classifier: Any,
        *,
        epsilon: float = 0.01,
        threshold: float = 3.0,
        alpha1: float = 1.0,
        alpha2: float = 1.0,
        alpha2_second_pass: float | None = None,
        second_pass: str = "detach",
        grad_clip: float | None = 10.0,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        adversarial: str | None = None,
        adversarial_eps: float = 0.3,
        adversarial_eps_step: float = 0.01,
        adversarial_max_iter: int = 100,
        adversarial_delay: int = 10,
        adversarial_labels: str = "predicted",
        bn_recalibration: bool = True,
        bn_recalibration_samples: int = 2048,
        device: str | torch.device | None = None,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        model = find_fpd(classifier)
        if isinstance(classifier, nn.Module):
            classifier = to_art_classifier(
                classifier,
                input_shape=(model.in_channels, model.input_size, model.input_size),
                nb_classes=model.num_classes,
                device=device if device is not None else next(model.parameters()).device,
            )
        super().__init__(classifier)
        self.epsilon = epsilon
        self.threshold = threshold
        self.alpha1 = alpha1
        self.alpha2 = alpha2
        self.alpha2_second_pass = alpha2 if alpha2_second_pass is None else alpha2_second_pass
        self.second_pass = second_pass
        self.grad_clip = grad_clip
        self.lr = lr
        self.weight_decay = weight_decay
        self.adversarial = adversarial
        self.adversarial_eps = adversarial_eps
        self.adversarial_eps_step = adversarial_eps_step
        self.adversarial_max_iter = adversarial_max_iter
        self.adversarial_delay = adversarial_delay
        self.adversarial_labels = adversarial_labels
        self.bn_recalibration = bn_recalibration
        self.bn_recalibration_samples = bn_recalibration_samples
        self.seed = seed
        self.verbose = verbose
        self._check_params()
        self._model = model
        self.device = (
            resolve_device(device)
            if device is not None
            else torch.device(getattr(classifier, "device", "cpu"))
        )
        if optimizer is None:
            optimizer = getattr(classifier, "optimizer", None)
        if optimizer is None:
            optimizer = torch.optim.Adamax(model.parameters(), lr=lr, weight_decay=weight_decay)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.history: list[dict[str, float]] = []

    def _check_params(self) -> None:
        def number(name: str, *, positive: bool = False, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise TypeError(f"{name} must be a finite number, got {value!r}")
            if positive and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
            if not positive and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")

        for name in (
            "epsilon",
            "alpha1",
            "alpha2",
            "alpha2_second_pass",
            "weight_decay",
            "adversarial_eps",
            "adversarial_eps_step",
        ):
            number(name)
        if (
            not isinstance(self.threshold, (int, float))
            or isinstance(self.threshold, bool)
            or np.isnan(self.threshold)
        ):
            raise TypeError(f"threshold must be a number (any sign, inf allowed), got {self.threshold!r}")
        number("lr", positive=True)
        number("grad_clip", positive=True, allow_none=True)
        if self.second_pass not in SECOND_PASS_MODES:
            raise ValueError(f"second_pass must be one of {SECOND_PASS_MODES}, got {self.second_pass!r}")
        if self.adversarial not in ADVERSARIAL_MODES:
            raise ValueError(f"adversarial must be one of {ADVERSARIAL_MODES}, got {self.adversarial!r}")
        if not isinstance(self.bn_recalibration, bool):
            raise TypeError(f"bn_recalibration must be a bool, got {type(self.bn_recalibration).__name__}")
        value = self.bn_recalibration_samples
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ValueError(f"bn_recalibration_samples must be an integer >= 2, got {value!r}")
        for name in ("adversarial_max_iter", "adversarial_delay", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.adversarial_labels not in ("predicted", "true"):
            raise ValueError(
                f"adversarial_labels must be 'predicted' or 'true', got {self.adversarial_labels!r}"
            )
        if not isinstance(self.verbose, bool):
            raise TypeError(f"verbose must be a bool, got {type(self.verbose).__name__}")

    @property
    def model(self) -> FeaturePyramidDecoder:
        """The network being trained."""
        return self._model

    def phase_one_parameters(self) -> list[nn.Parameter]:
        """Parameters phase 1 may update: front denoising module (shared with the back one) and restoration
        module."""
        return [*self._model.front_denoising_parameters(), *self._model.restoration_parameters()]

    # ----- one Algorithm-1 iteration -----
    def _update(self, loss: Tensor, parameters: Iterable[nn.Parameter] | None = None) -> None:
        """zero_grad, backward, drop gradients outside ``parameters``, clip, step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if parameters is not None:
            allowed = {id(p) for p in parameters}
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    if id(p) not in allowed:
                        p.grad = None
        if self.grad_clip is not None:
            with_grad = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(with_grad, self.grad_clip)
        self.optimizer.step()

    def add_uniform_noise(self, x: Tensor) -> Tensor:
        """``x + U(-epsilon, epsilon)`` (Algorithm 1, lines 3-6), not clipped."""
        return x + (torch.rand_like(x) * 2.0 - 1.0) * self.epsilon

    def adversarial_examples(self, x: Tensor, y: Tensor) -> Tensor:
        """Training-attack examples of the current model (eval mode), or ``x`` itself when adversarial
        training is off."""
        if self.adversarial is None:
            return x
        model = self._model
        was_training = model.training
        model.eval()
        try:
            if self.adversarial_labels == "predicted":
                with torch.no_grad():
                    y = model(x).argmax(1)
            if self.adversarial == "fgsm":
                return fgsm_linf(model, x, y, eps=self.adversarial_eps)
            return pgd_linf(
                model,
                x,
                y,
                eps=self.adversarial_eps,
                eps_step=self.adversarial_eps_step,
                max_iter=self.adversarial_max_iter,
            )
        finally:
            model.train(was_training)

    def _mean_over_processes(self, value: float, device: torch.device) -> float:
        """``value`` averaged over the processes of a ``torchrun`` job (itself in one process): every rank
        must take the same phase of Algorithm 1, so the phase switch reads the reconstruction loss of the
        whole global batch."""
        if not dist_helpers.is_distributed():
            return value
        return (
            dist_helpers.all_reduce_sum([value], device=device if device.type == "cuda" else "cpu")[0]
            / dist_helpers.world_size()
        )

    def training_step(self, ctx: TrainContext, x: Tensor, y: Tensor) -> Mapping[str, float]:
        """One iteration of Algorithm 1 (plus adversarial examples after the delay); returns the logged
        values.

        Every pass goes through ``ctx.model``, which is the ``DistributedDataParallel`` wrapper of the network
        under ``torchrun`` (so gradients are averaged over the processes) and the network itself otherwise.
        """
        net = ctx.model
        inputs, targets, labels = self.add_uniform_noise(x), x, y
        adversarial_now = self.adversarial is not None and ctx.epoch >= self.adversarial_delay
        if adversarial_now:
            x_adv = self.adversarial_examples(x, y)
            inputs, targets, labels = torch.cat([inputs, x_adv]), torch.cat([x, x]), torch.cat([y, y])
        restored, logits = net(inputs, return_restored=True)
        l2 = F.mse_loss(restored, targets)
        l2_value = self._mean_over_processes(float(l2.detach()), ctx.device)
        logs: dict[str, float] = {"l2": l2_value, "adversarial": float(adversarial_now)}
        if (
            l2_value > self.threshold
        ):  # phase 1 (lines 9-10); 0 * logits keeps every parameter in the graph (no
            # gradient flows from it), which DistributedDataParallel needs to finish its gradient reduction
            self._update(self.alpha2 * l2 + 0.0 * logits.sum(), self.phase_one_parameters())
            logs.update(loss=self.alpha2 * l2_value, phase_one=1.0)
            return logs
        ce = F.cross_entropy(logits, labels)  # phase 2 (lines 12-13)
        loss = self.alpha1 * ce + self.alpha2 * l2
        accuracy = float((logits.detach().argmax(1) == labels).float().mean())
        self._update(loss)
        logs.update(loss=float(loss.detach()), ce=float(ce.detach()), train_accuracy=accuracy, phase_one=0.0)
        if self.second_pass == "none":
            return logs
        if self.second_pass == "detach":  # lines 14-17
            second_input = restored.detach()
        else:
            second_input = self._model.restore(inputs)
        restored_2, logits_2 = net(second_input, return_restored=True)
        l2_2 = F.mse_loss(restored_2, targets)
        ce_2 = F.cross_entropy(logits_2, labels)
        self._update(self.alpha1 * ce_2 + self.alpha2_second_pass * l2_2)
        logs.update(l2_second=float(l2_2.detach()), ce_second=float(ce_2.detach()))
        return logs

    # ----- ART Trainer API -----
    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        batch_size: int = 300,
        nb_epochs: int = 100,
        scheduler: Any = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Train with Algorithm 1 on images ``x`` (N, C, H, W) in [0, 1] and labels ``y`` (indices or
        one-hot).

        The per-epoch records (mean ``loss``, ``l2``, ``ce``, the share of phase-1 batches ``phase_one``,
        validation accuracy, seconds) are appended to :attr:`history`. ``checkpoint_dir`` enables per-epoch
        checkpoints and resume.
        """
        if kwargs:
            raise TypeError(f"fit got unexpected arguments {sorted(kwargs)}")
        model = self._model
        x_np = check_images(x, "x")
        if x_np.shape[1] != model.in_channels:
            raise ValueError(f"x must have {model.in_channels} channels, got shape {x_np.shape}")
        y_np = check_labels(y, len(x_np), model.num_classes, "y")
        if validation_data is not None:
            x_val = check_images(validation_data[0], "validation_data[0]")
            validation_data = (
                x_val,
                check_labels(validation_data[1], len(x_val), model.num_classes, "validation_data[1]"),
            )
        run_seed = self.seed if seed is None else seed
        calibration = x_np
        if len(x_np) > self.bn_recalibration_samples:
            pick = np.random.default_rng(run_seed).choice(
                len(x_np), self.bn_recalibration_samples, replace=False
            )
            calibration = x_np[np.sort(pick)]

        def on_epoch_end(ctx: TrainContext, record: dict[str, float]) -> None:
            # training.train averages each logged value over the batches that logged it: phase-2 values are
            # means over the phase-2 batches
            record["phase_two_batches"] = float(
                round(ctx.batches_per_epoch * (1.0 - record.get("phase_one", 1.0)))
            )
            if self.bn_recalibration:
                recalibrate_batchnorm(model, calibration, batch_size=batch_size, device=self.device)
            if validation_data is not None and "val_accuracy" not in record:
                record["val_accuracy"] = evaluate_accuracy(
                    model, validation_data[0], validation_data[1], device=self.device
                )

        history = train(
            model,
            x_np,
            y_np,
            epochs=nb_epochs,
            batch_size=batch_size,
            optimizer=self.optimizer,
            scheduler=scheduler,
            step_fn=self.training_step,
            device=self.device,
            checkpoint_dir=checkpoint_dir,
            seed=run_seed,
            validation_data=None
            if self.bn_recalibration
            else validation_data,  # else measured after recalibration
            verbose=self.verbose,
            desc="fpd",
            on_epoch_end=on_epoch_end,
        )
        self.history = history

    def predict(self, x: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Tanh logits of the classifier on ``x``."""
        return self.get_classifier().predict(check_images(x, "x"), **kwargs)

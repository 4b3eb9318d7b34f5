"""rCNN / rCNN+ training of the CNN behind the RBF reconstruction (paper section IV, notes section 000)."""

from __future__ import annotations

import math
import os
from typing import Any, Literal

import numpy as np
import torch
from art.defences.trainer import Trainer
from art.estimators.classification import PyTorchClassifier
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..pgd import linf_pgd
from ..training import TrainContext, train
from ..utils import check_images, check_labels, resolve_device
from .classifier import RBFCNN

__all__ = ["RBFCNNTrainer", "clip_to_window", "pgd_noise_bank", "smoothed_targets"]


def smoothed_targets(y: Tensor, num_classes: int, smoothing: float = 0.9) -> Tensor:
    """Label smoothing of the authors' code: ``onehot.clip((1 - s) / (K - 1), s)`` -- true class ``s`` (0.9),
    every other class ``(1 - s) / (K - 1)``.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section IV, "Experimental Setup" ("trained using label
    smoothing"); the smoothing value 0.9 comes from the authors' code (reference notes, section
    000).
    """
    off = (1.0 - smoothing) / (num_classes - 1)
    targets = torch.full((y.shape[0], num_classes), off, device=y.device)
    targets.scatter_(1, y.view(-1, 1), smoothing)
    return targets


def clip_to_window(x: Tensor, noisy: Tensor, window: float | Tensor) -> Tensor:
    """Clip ``noisy`` to the l-inf window ``[x - E, x + E]`` intersected with ``[0, 1]`` (rCNN+ noise
    images)."""
    return torch.minimum(torch.maximum(noisy, x - window), x + window).clamp(0.0, 1.0)


def pgd_noise_bank(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float = 0.3,
    steps: int = 10,
    step_size: float | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    verbose: bool = True,
) -> np.ndarray:
    """Adversarial noises ``x_adv - x`` of l-inf PGD (random start, ``steps`` signed-gradient steps of
    ``step_size = 2.5 eps / steps``) against ``model`` (cross-entropy on logits), computed once for rCNN+.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section IV, "Experimental Setup" (rCNN+ training).

    The paper (section IV) generates "one set of PGD-adversarial examples of the training images at 25 epochs"
    and adds the noises to random clean images for the rest of training."""
    dev = resolve_device(device)
    alpha = 2.5 * eps / steps if step_size is None else step_size
    gen = torch.Generator(device=dev).manual_seed(seed)
    was_training = model.training
    model.eval()
    out = np.empty_like(x)
    try:
        for start in tqdm(
            range(0, len(x), batch_size), desc="PGD noise bank", disable=not verbose, leave=False
        ):
            xb = torch.from_numpy(x[start : start + batch_size]).to(dev)
            yb = torch.from_numpy(y[start : start + batch_size]).to(dev)
            begin = (xb + (torch.rand(xb.shape, generator=gen, device=dev) * 2 - 1) * eps).clamp(0, 1)
            adv = linf_pgd(model, xb, yb, eps=eps, step_size=alpha, steps=steps, start=begin)
            out[start : start + batch_size] = (adv - xb).cpu().numpy()
    finally:
        model.train(was_training)
    return out


class RBFCNNTrainer(Trainer):
    """Trains the CNN of an :class:`~art_manifold_defenses.rbf_reconstruction.RBFCNN` behind its
    reconstruction layer: rCNN (``variant="rcnn"``) or rCNN+ (``variant="rcnn_plus"``).

    Paper: Nandy, Hsu and Lee, arXiv:2004.02183, section IV ("Experimental Setup"); details from the authors'
    code (notes section 000):

    - every batch goes through the deterministic reconstruction with ``beta1 = 125``, ``beta2 = 0``, no clip
      (:class:`RBFCNN` in train mode); targets are smoothed to 0.9 (:func:`smoothed_targets`);
    - rCNN+ adds ``gaussian_images = 30`` copies with Gaussian noise (std 0.35 on MNIST) and, once the PGD
      noise bank exists, ``adversarial_images = 30`` copies with adversarial noises drawn at random from the
      bank (:func:`pgd_noise_bank`, computed once at epoch ``noise_bank_epoch = 25`` against the current
      model, l-inf ``noise_bank_eps``), both clipped to the l-inf window ``[x - E, x + E]`` and to [0, 1].
      ``linf_window = 0.3`` is the paper's E; a pair ``(low, high)`` draws E once per run from U(low, high)
      (authors' code: (0.15, 0.4));
    - Adam(lr 1e-3), learning rate halved every ``lr_halving_epochs`` (20 for rCNN, 25 for rCNN+), batch 128.

    Limitations: the authors' rotation/shift/flip augmentation of the noise bank is not applied (the noises
    are re-paired with random images only); the noise bank is not checkpointed (a resumed run recomputes it).
    """

    def __init__(
        self,
        classifier: PyTorchClassifier | RBFCNN,
        *,
        variant: Literal["rcnn", "rcnn_plus"] = "rcnn",
        label_smoothing: float = 0.9,
        gaussian_std: float = 0.35,
        gaussian_images: int = 30,
        adversarial_images: int = 30,
        linf_window: float | tuple[float, float] = 0.3,
        noise_bank: np.ndarray | None = None,
        noise_bank_epoch: int = 25,
        noise_bank_eps: float = 0.3,
        noise_bank_steps: int = 10,
        noise_bank_size: int | None = None,
        lr: float = 1e-3,
        lr_halving_epochs: int | None = None,
        input_shape: tuple[int, int, int] | None = None,
        device: str | torch.device | None = "cpu",
    ) -> None:
        """``classifier``: a ``PyTorchClassifier`` wrapping an :class:`RBFCNN` (e.g. from
        ``to_art_classifier``), or the ``RBFCNN`` itself together with ``input_shape`` ``(C, H, W)`` (it is
        then wrapped here)."""
        if isinstance(classifier, RBFCNN):
            from ..estimator import to_art_classifier

            if input_shape is None:
                raise ValueError(
                    "input_shape (C, H, W) is required when classifier is an RBFCNN rather than a "
                    "PyTorchClassifier"
                )
            classifier = to_art_classifier(
                classifier, input_shape=input_shape, nb_classes=_num_classes(classifier), device=device
            )
        if not isinstance(classifier, PyTorchClassifier):
            raise TypeError(
                "classifier must be a PyTorchClassifier around an RBFCNN (or an RBFCNN), got "
                f"{type(classifier).__name__}"
            )
        super().__init__(classifier)
        found = [m for m in classifier.model.modules() if isinstance(m, RBFCNN)]
        if len(found) != 1:
            raise ValueError(f"classifier must wrap exactly one RBFCNN model, found {len(found)}")
        self.model: RBFCNN = found[0]
        self.variant = variant
        self.label_smoothing = label_smoothing
        self.gaussian_std = gaussian_std
        self.gaussian_images = gaussian_images
        self.adversarial_images = adversarial_images
        self.linf_window = linf_window
        self.noise_bank = noise_bank
        self.noise_bank_epoch = noise_bank_epoch
        self.noise_bank_eps = noise_bank_eps
        self.noise_bank_steps = noise_bank_steps
        self.noise_bank_size = noise_bank_size
        self.lr = lr
        self.lr_halving_epochs = (
            lr_halving_epochs if lr_halving_epochs is not None else (20 if variant == "rcnn" else 25)
        )
        self.device = resolve_device(device)
        self.history: list[dict[str, float]] = []
        self._check_params()

    def _check_params(self) -> None:
        if self.variant not in ("rcnn", "rcnn_plus"):
            raise ValueError(f"variant must be 'rcnn' or 'rcnn_plus', got {self.variant!r}")
        if not (isinstance(self.label_smoothing, (int, float)) and 0 < self.label_smoothing <= 1):
            raise ValueError(f"label_smoothing must lie in (0, 1] (paper: 0.9), got {self.label_smoothing!r}")
        for name in ("gaussian_std", "noise_bank_eps", "lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
        for name in ("gaussian_images", "adversarial_images", "noise_bank_epoch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("noise_bank_steps", "lr_halving_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.noise_bank_size is not None and (
            not isinstance(self.noise_bank_size, int) or self.noise_bank_size < 1
        ):
            raise ValueError(
                f"noise_bank_size must be a positive integer or None, got {self.noise_bank_size!r}"
            )
        window = self.linf_window
        if isinstance(window, tuple):
            if len(window) != 2 or not 0 < window[0] <= window[1] <= 1:
                raise ValueError(
                    f"linf_window as a range must be (low, high) with 0 < low <= high <= 1, got {window!r}"
                )
        elif isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 < window <= 1:
            raise ValueError(f"linf_window must be a number in (0, 1] or a (low, high) pair, got {window!r}")
        if self.noise_bank is not None:
            check_images(self.noise_bank, "noise_bank", clip_values=(-1.0, 1.0))

    # --------------------------------------------------------------------------------------------------------
    def _window(self, seed: int) -> float:
        if isinstance(self.linf_window, tuple):
            low, high = self.linf_window
            return float(np.random.default_rng(seed).uniform(low, high))
        return float(self.linf_window)

    def _step(self, ctx: TrainContext, xb: Tensor, yb: Tensor) -> Tensor:
        model = self.model
        num_classes = ctx.state["num_classes"]
        xs, ys = [xb], [yb]
        if self.variant == "rcnn_plus":
            window = ctx.state["window"]
            if self.gaussian_images:
                xg, yg = xb[: self.gaussian_images], yb[: self.gaussian_images]
                xs.append(clip_to_window(xg, xg + self.gaussian_std * torch.randn_like(xg), window))
                ys.append(yg)
            bank = self._bank_for_epoch(ctx)
            if bank is not None and self.adversarial_images:
                xa, ya = xb[: self.adversarial_images], yb[: self.adversarial_images]
                pick = torch.randint(len(bank), (xa.shape[0],), device=bank.device)
                xs.append(clip_to_window(xa, xa + bank[pick], window))
                ys.append(ya)
        x_all, y_all = torch.cat(xs), torch.cat(ys)
        logits = model(x_all)
        targets = smoothed_targets(y_all, num_classes, self.label_smoothing)
        return -(targets * torch.log_softmax(logits, dim=1)).sum(1).mean()

    def _bank_for_epoch(self, ctx: TrainContext) -> Tensor | None:
        if "bank" in ctx.state:
            return ctx.state["bank"]
        if self.noise_bank is not None:
            ctx.state["bank"] = torch.from_numpy(np.asarray(self.noise_bank, dtype=np.float32)).to(ctx.device)
            return ctx.state["bank"]
        if ctx.epoch < self.noise_bank_epoch:
            return None
        x, y = ctx.state["x"], ctx.state["y"]
        if self.noise_bank_size is not None:
            pick = np.random.default_rng(ctx.state["seed"]).permutation(len(x))[: self.noise_bank_size]
            x, y = x[pick], y[pick]
        was_training = self.model.training
        self.model.eval()  # the static (beta2 = 0) model with dropout off is the attack target
        bank = pgd_noise_bank(
            self.model.static_model(),
            x,
            y,
            eps=self.noise_bank_eps,
            steps=self.noise_bank_steps,
            seed=ctx.state["seed"],
            device=ctx.device,
            verbose=ctx.state["verbose"],
        )
        self.model.train(was_training)
        self.noise_bank = bank
        ctx.state["bank"] = torch.from_numpy(bank).to(ctx.device)
        return ctx.state["bank"]

    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        batch_size: int = 128,
        nb_epochs: int = 150,
        *,
        scheduler: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        verbose: bool = True,
        **kwargs: Any,
    ) -> None:
        """Train for ``nb_epochs`` (authors: 150) on ``(x, y)`` (labels as indices or one-hot) with the shared
        loop.

        ``optimizer`` defaults to the classifier's optimizer if it has one, else Adam(``lr``); ``scheduler``
        to halving the learning rate every ``lr_halving_epochs`` epochs. The per-epoch history is kept in
        ``self.history``."""
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        x_np = check_images(x, "x")
        num_classes = self._classifier.nb_classes
        y_np = check_labels(y, len(x_np), num_classes, "y")
        model = self.model
        if optimizer is None:
            optimizer = getattr(self._classifier, "optimizer", None) or torch.optim.Adam(
                model.classifier.parameters(), lr=self.lr
            )
        if scheduler is None:
            scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=self.lr_halving_epochs, gamma=0.5
            )
        state = {
            "num_classes": num_classes,
            "window": self._window(seed),
            "x": x_np,
            "y": y_np,
            "seed": seed,
            "verbose": verbose,
        }

        def step(ctx: TrainContext, xb: Tensor, yb: Tensor) -> Tensor:
            if not ctx.state:
                ctx.state.update(state)
            return self._step(ctx, xb, yb)

        val = None
        if validation_data is not None:
            val = (
                check_images(validation_data[0], "validation_data[0]"),
                check_labels(validation_data[1], len(validation_data[0]), num_classes, "validation_data[1]"),
            )
        self.history = train(
            model,
            x_np,
            y_np,
            epochs=nb_epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            scheduler=scheduler,
            step_fn=step,
            device=self.device,
            validation_data=val,
            checkpoint_dir=checkpoint_dir,
            seed=seed,
            verbose=verbose,
            desc=self.variant,
        )

    def predict(self, x: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Predictions of the trained classifier."""
        return self._classifier.predict(x, **kwargs)


def _num_classes(model: RBFCNN) -> int:
    last = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError(
            "cannot infer the number of classes of the RBFCNN's classifier; wrap it with to_art_classifier "
            "yourself"
        )
    return int(last[-1].out_features)

"""``RenyiSmoothingPyTorch``: a drop-in for ART's ``PyTorchRandomizedSmoothing`` that certifies with the Rényi
(Li et al. 2019), Cohen et al. (2019) and PixelDP bounds from the same streamed samples, trains with fresh
noise per batch and stability training, and attacks the smoothed classifier (EoT) by default."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing
from art.estimators.certification.randomized_smoothing.randomized_smoothing import RandomizedSmoothingMixin
from scipy.stats import binomtest
from torch import Tensor, nn

from ..estimator import is_identity_standardisation
from ..utils import check_images, check_labels, check_nb_classes, check_positive_int
from ._certify_modes import SAMPLING_MODES, _CertifyModes
from .certification import BOUNDS
from .choices import DEFAULT_ALPHA
from .module import SmoothedClassifier
from .sampling import make_generator
from .stability import STABILITY_TARGETS, stn_step

__all__ = ["SAMPLING_MODES", "RenyiSmoothingPyTorch"]

logger = logging.getLogger(__name__)


class _PreprocessedBase(nn.Module):
    """The estimator's base classifier as a module: ART preprocessing chain, then the wrapped model
    (logits)."""

    def __init__(self, estimator: RenyiSmoothingPyTorch, *, fit: bool) -> None:
        super().__init__()
        self.net = estimator.model_wrapper
        self._estimator = [estimator]  # a list, so the estimator is not registered as a submodule
        self.fit_mode = fit

    def forward(self, x: Tensor) -> Tensor:
        return self._estimator[0].base_logits(x, fit=self.fit_mode)


class RenyiSmoothingPyTorch(_CertifyModes, PyTorchRandomizedSmoothing):
    """Gaussian randomized smoothing certified with the Rényi-divergence bound of Li et al. (2019), side by
    side with Cohen et al. (2019) and PixelDP (Lecuyer et al. 2019); trains with stability training (STN).

    | Paper link: https://arxiv.org/abs/1809.03113 (Li, Chen, Wang, Carin, "Certified Adversarial Robustness
    | with Additive Noise", NeurIPS 2019). Algorithm 1 (sampling), Lemma 1 / Theorem 2 (the radius), section 4
    | "Confidence Interval and Sample Size", section 5.1 (stability training).

    Same constructor as ART's ``PyTorchRandomizedSmoothing`` (``scale`` is sigma), plus keyword-only
    ``eot_samples`` and ``seed``. Differences from the ART class, all deliberate:

    - ``certify(x, n, batch_size, n0=100, alpha=None, bound="renyi"|"cohen"|"pixeldp"|"all", interval=...)``
      streams the noise in batches on the model's device (memory does not grow with ``n``; ART holds all ``n``
      copies, drawn in float64), needs only scipy (ART's needs statsmodels), and computes every bound from the
      same counts.
    - ``certify(x, n, radius=r)`` decides "certified at ``r``" per image with as few samples as it needs (a
      confidence sequence over rounds, Voráček & Hein 2024; :meth:`certify_decision`), and
      ``certify(x, n, samples="adaptive")`` picks each image's sample size from its selection samples (Chen
      et al. 2022; :meth:`certify_adaptive_counts`); both report the forward passes spent per image.
    - ``certify`` and ``predict`` give every image its own noise stream, seeded with ``image_seed(seed,
      indices[i]) = (seed * 0x9E3779B97F4A7C15 + indices[i]) mod 2**63`` (``indices``: the images' global
      indices, default ``range(N)``), so results do not depend on the other images, the batch size or how a
      data set is split across calls or processes.
    - ART's default identity standardisation (``preprocessing=(0, 1)``) is skipped (two passes over every
      noisy batch for nothing); any other preprocessing runs as in ART.
    - Noise is added in raw input space *before* ``preprocessing_defences`` and the standardisation in
      ``fit``, ``predict``, ``certify`` and ``loss_gradient`` alike (ART adds it after preprocessing in
      ``fit``).
    - ``fit`` draws fresh noise per batch and optionally adds the stability loss (``stability_weight``).
    - ``loss_gradient`` averages the loss gradient over ``eot_samples`` noise draws by default (EoT, section
      6.2 of the paper), so ART attacks, which call it without extra arguments, attack the smoothed
      classifier, not the base one. Cost: ``eot_samples`` (default: ``sample_size``) noisy passes per
      gradient; ``eot_samples=1`` attacks one noisy copy (cheaper, weaker).
    - ``class_gradient`` is EoT-averaged too.

    Known limitations: the certificate holds for the smoothed classifier, i.e. for the majority vote of the
    base classifier under noise, not for one noisy forward pass. The noise is not clipped to ``clip_values``
    (as in the papers). With ``n0 = 0`` the class is selected from the same counts (the authors' code); the
    Clopper–Pearson Bonferroni correction is then a heuristic, while with ``n0 > 0`` it is exact (see
    :func:`~art_manifold_defenses.smoothing.confidence.top_two_bounds`).
    """

    estimator_params = PyTorchRandomizedSmoothing.estimator_params + ["eot_samples"]

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        input_shape: tuple[int, ...],
        nb_classes: int,
        optimizer: torch.optim.Optimizer | None = None,
        channels_first: bool = True,
        clip_values: Any = None,
        preprocessing_defences: Any = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = (0.0, 1.0),
        device_type: str = "gpu",
        sample_size: int = 32,
        scale: float = 0.1,
        alpha: float = DEFAULT_ALPHA,
        *,
        eot_samples: int | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not channels_first:
            raise ValueError("channels_first must be True: the package works with NCHW tensors")
        # Skip PyTorchRandomizedSmoothing.__init__ only for its warning about noise after preprocessing, which
        # does not apply here (noise always comes first).
        RandomizedSmoothingMixin.__init__(  # type: ignore[misc]
            self,
            sample_size=sample_size,
            scale=scale,
            alpha=alpha,
            model=model,
            loss=loss,
            input_shape=input_shape,
            nb_classes=nb_classes,
            optimizer=optimizer,
            channels_first=channels_first,
            clip_values=clip_values,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=device_type,
        )
        self.eot_samples = eot_samples
        self.seed = seed
        self._check_params()
        # votes are counted per class: a model with more outputs than nb_classes would count its other classes
        # in the next image's slots, one with fewer would never vote for the last ones. Checked here by one
        # forward pass of the model (not run through preprocessing defences, which may keep state);
        # base_logits checks every output too.
        if not self.active_preprocessing:
            check_nb_classes(nb_classes, self.user_model, tuple(input_shape), device=self._device)
        self._eot_generator = make_generator(seed, self._device)

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        super()._check_params()
        if hasattr(self, "sample_size"):
            check_positive_int(self.sample_size, "sample_size")
        if hasattr(self, "scale") and (
            isinstance(self.scale, bool)
            or not isinstance(self.scale, (int, float))
            or not 0 < float(self.scale) < np.inf
        ):
            raise ValueError(f"scale (the noise sigma) must be a positive finite float, got {self.scale!r}")
        if hasattr(self, "alpha") and (
            isinstance(self.alpha, bool)
            or not isinstance(self.alpha, (int, float))
            or not 0 < float(self.alpha) < 1
        ):
            raise ValueError(f"alpha must be a failure probability in (0, 1), got {self.alpha!r}")
        if getattr(self, "eot_samples", None) is not None:
            check_positive_int(self.eot_samples, "eot_samples")

    def _check_x(self, x: Any, name: str = "x") -> np.ndarray:
        clip = (
            None
            if self.clip_values is None
            else (float(np.min(self.clip_values[0])), float(np.max(self.clip_values[1])))
        )
        return check_images(
            x, name, clip_values=clip, ndim=len(self.input_shape) + 1, input_shape=tuple(self.input_shape)
        )

    @property
    def sigma(self) -> float:
        """The noise standard deviation (ART calls it ``scale``)."""
        return float(self.scale)

    @property
    def user_model(self) -> nn.Module:
        """The user's model itself (ART's wrapper keeps every layer output of an ``nn.Sequential`` alive,
        which costs memory and time at certification batch sizes)."""
        inner = getattr(self._model, "_model", self._model)
        return inner if isinstance(inner, nn.Module) else self._model

    @property
    def model_wrapper(self) -> nn.Module:
        """ART's wrapper around the user's model (an ``nn.Module`` returning the list of layer outputs)."""
        return self._model

    # --------------------------------------------------------------- forward
    @property
    def active_preprocessing(self) -> list[Any]:
        """ART's preprocessing chain without identity standardisations (mean 0, std 1: ART's default
        ``preprocessing=(0, 1)``), which would cost two passes over every noisy batch and change nothing."""
        return [op for op in self.preprocessing_operations if not is_identity_standardisation(op)]

    def base_logits(self, x: Tensor, *, fit: bool = False) -> Tensor:
        """Logits of the base classifier on a float tensor batch: preprocessing defences and standardisation
        (ART's chain, differentiable when every defence is a ``PreprocessorPyTorch``), then the user's model
        (its output is taken as the logits)."""
        x = x.float()
        if not self.active_preprocessing:
            return self._checked_logits(self.user_model(x))
        if self.all_framework_preprocessing:
            x_pre, _ = self._apply_preprocessing(x, y=None, fit=fit, no_grad=not torch.is_grad_enabled())
        else:  # numpy preprocessing: identity gradient (BPDA)
            out, _ = self._apply_preprocessing(x.detach().cpu().numpy(), y=None, fit=fit)
            x_pre = x + (torch.as_tensor(np.asarray(out, dtype=np.float32), device=x.device) - x).detach()
        return self._checked_logits(self.user_model(x_pre.float()))

    def _checked_logits(self, logits: Tensor) -> Tensor:
        if logits.ndim != 2 or logits.shape[1] != self.nb_classes:
            raise ValueError(
                f"nb_classes={self.nb_classes} does not match the model, which returns logits of shape "
                f"{tuple(logits.shape)}; pass the model's number of outputs as nb_classes"
            )
        return logits

    def smoothed_module(
        self, *, samples: int = 1, generator: torch.Generator | None = None
    ) -> SmoothedClassifier:
        """An ``nn.Module`` view of the smoothed classifier (``stochastic = True``) for the evaluation
        harness: the base classifier with this estimator's preprocessing, under fresh noise of standard
        deviation ``scale``."""
        return SmoothedClassifier(
            _PreprocessedBase(self, fit=False), self.sigma, samples=samples, generator=generator
        )

    # --------------------------------------------------------------- predict
    def predict(self, x: Any, batch_size: int = 128, verbose: bool = False, **kwargs: Any) -> np.ndarray:  # type: ignore[override]
        """Smoothed prediction with abstention (Cohen et al.'s PREDICT, as ART): ``n`` noisy votes per image
        (default ``sample_size``), one-hot of the top class if the two-sided binomial test of the top two
        counts has p-value ``<= alpha``, else an all-zero row. Keyword arguments: ``is_abstain`` (default
        True), ``n``, ``alpha``, ``seed``, ``indices`` (image ``i``'s noise is seeded as in
        :meth:`certify_counts`). ``batch_size`` is the number of noisy samples per forward pass."""
        is_abstain = kwargs.get("is_abstain", True)
        if not isinstance(is_abstain, bool):
            raise TypeError(f"is_abstain must be a bool, got {is_abstain!r}")
        n = check_positive_int(kwargs.get("n", self.sample_size), "n")
        alpha = float(kwargs.get("alpha", self.alpha) or 0.0)
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        batch_size = check_positive_int(batch_size, "batch_size")
        x_np = self._check_x(x)
        seed = kwargs.get("seed")
        counts = self._counts(
            x_np, (n,), batch_size, seed, kwargs.get("indices"), verbose, "smoothed predict"
        )[:, 0]
        out = np.zeros((len(x_np), self.nb_classes), dtype=np.float32)
        for i, c in enumerate(counts):
            order = np.argsort(-c, kind="stable")
            c1, c2 = int(c[order[0]]), int(c[order[1]])
            if not is_abstain or binomtest(c1, c1 + c2, p=0.5).pvalue <= alpha:
                out[i, order[0]] = 1.0
        return out

    # ------------------------------------------------------------------- fit
    def fit(  # type: ignore[override]
        self,
        x: Any,
        y: Any,
        batch_size: int = 128,
        nb_epochs: int = 10,
        training_mode: bool = True,
        drop_last: bool = False,
        scheduler: Any = None,
        verbose: bool = False,
        *,
        stability_weight: float = 0.0,
        stability_target: str = "softmax",
        stop_gradient: bool = False,
        seed: int = 0,
        validation_data: tuple[Any, Any] | None = None,
        checkpoint_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Train the base classifier with Gaussian noise of standard deviation ``scale`` drawn fresh for every
        batch (added before the preprocessing defences), with the stability loss when ``stability_weight > 0``
        (STN, ``gamma`` of the paper; ``stability_target="logits"`` is the authors' code variant). Uses the
        package's training loop (tqdm with ``verbose``, resumable with ``checkpoint_dir``)."""
        from ..training import train

        if kwargs:
            raise TypeError(f"fit got unexpected keyword arguments {sorted(kwargs)}")
        if self._optimizer is None:
            raise ValueError("fit needs an optimizer: pass optimizer=... to the constructor")
        if not training_mode:
            raise ValueError("training_mode must be True for fit (dropout/batch-norm in training mode)")
        if stability_target not in STABILITY_TARGETS:
            raise ValueError(f"stability_target must be one of {STABILITY_TARGETS}, got {stability_target!r}")
        x_np = self._check_x(x)
        y_np = check_labels(y, len(x_np), self.nb_classes, "y")
        step = stn_step(
            self.sigma,
            stability_weight=stability_weight,
            target=stability_target,
            stop_gradient=stop_gradient,
        )
        module = _PreprocessedBase(self, fit=True)
        train(
            module,
            x_np,
            y_np,
            epochs=check_positive_int(nb_epochs, "nb_epochs", minimum=0),
            batch_size=check_positive_int(batch_size, "batch_size"),
            optimizer=self._optimizer,
            scheduler=scheduler,
            step_fn=step,
            device=self._device,
            seed=seed,
            drop_last=drop_last,
            validation_data=validation_data,
            checkpoint_dir=checkpoint_dir,
            verbose=verbose,
            desc="stn" if stability_weight > 0 else "gaussian-aug",
        )
        self._model.eval()

    # -------------------------------------------------------------- gradients
    def _eot_gradient(
        self, x: Any, objective: Any, samples: int | None, training_mode: bool
    ) -> np.ndarray | Tensor:
        is_tensor = isinstance(x, Tensor)
        x_t = (
            x.detach().to(self._device).float()
            if is_tensor
            else torch.from_numpy(np.asarray(x, dtype=np.float32)).to(self._device)
        )
        k = check_positive_int(
            samples if samples is not None else (self.eot_samples or self.sample_size), "eot samples"
        )
        self._model.train(mode=training_mode)
        grad = torch.zeros_like(x_t)
        for _ in range(k):
            x_var = x_t.clone().requires_grad_(True)
            noise = torch.randn(x_t.shape, generator=self._eot_generator, device=self._device)
            value = objective(self.base_logits(x_var + self.sigma * noise))
            (g,) = torch.autograd.grad(value, x_var)
            grad += g
        grad /= k
        self._model.eval()
        return grad if is_tensor else grad.cpu().numpy()

    def loss_gradient(
        self, x: Any, y: Any, training_mode: bool = False, **kwargs: Any
    ) -> np.ndarray | Tensor:  # type: ignore[override]
        """EoT gradient of the loss: ``1/k sum_i grad_x loss(f(x + r_i), y)``, ``r_i ~ N(0, scale^2 I)`` with
        ``k = eot_samples`` (default ``sample_size``; override per call with ``samples=``). ``y``: indices or
        one-hot. This is the paper's gradient estimate (section 6.2), so attacks target the smoothed
        classifier."""
        labels = check_labels(y, len(x), self.nb_classes, "y")
        y_t = torch.from_numpy(labels).to(self._device)
        return self._eot_gradient(
            x, lambda logits: self._loss(logits, y_t), kwargs.get("samples"), training_mode
        )

    def class_gradient(
        self, x: Any, label: Any = None, training_mode: bool = False, **kwargs: Any
    ) -> np.ndarray:  # type: ignore[override]
        """EoT gradient of class logits, shape ``(N, 1, *input_shape)`` (one label per input, or one for all)
        or ``(N, nb_classes, *input_shape)`` with ``label=None``."""
        n = len(x)
        if label is None:
            classes = [np.full(n, c) for c in range(self.nb_classes)]
        elif np.isscalar(label):
            classes = [np.full(n, int(label))]  # type: ignore[arg-type]
        else:
            classes = [check_labels(np.asarray(label), n, self.nb_classes, "label")]
        grads = []
        for cls in classes:
            index = torch.from_numpy(np.asarray(cls, dtype=np.int64)).to(self._device)
            g = self._eot_gradient(
                x,
                lambda logits, idx=index: logits.gather(1, idx[:, None]).sum(),
                kwargs.get("samples"),
                training_mode,
            )
            grads.append(np.asarray(g.cpu().numpy() if isinstance(g, Tensor) else g))
        return np.stack(grads, axis=1)


#: Everything :meth:`RenyiSmoothingPyTorch.certify` accepts for ``bound``.
CERTIFY_BOUNDS = (*BOUNDS, "all")

"""``RenyiSmoothingPyTorch``: a drop-in for ART's ``PyTorchRandomizedSmoothing`` that certifies with the Rényi
(Li et al. 2019), Cohen et al. (2019) and PixelDP bounds from the same streamed samples, trains with fresh
noise per batch and stability training, and attacks the smoothed classifier (EoT) by default."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing
from art.estimators.certification.randomized_smoothing.randomized_smoothing import RandomizedSmoothingMixin
from scipy.stats import binomtest
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..estimator import is_identity_standardisation
from ..utils import check_images, check_labels, check_nb_classes, check_positive_int
from .adaptive import adaptive_sample_sizes
from .certification import BOUNDS, certify_batch, resolve_bounds
from .choices import DEFAULT_ALPHA, DEFAULT_N0, DEFAULT_SAMPLES
from .confidence import INTERVALS
from .module import SmoothedClassifier
from .sampling import VoteStreams, image_seeds, make_generator, resolve_seed, vote_counts
from .sequential import DecisionResult, decide_sequentially
from .stability import STABILITY_TARGETS, stn_step

__all__ = ["SAMPLING_MODES", "RenyiSmoothingPyTorch"]

#: ``certify(..., samples=...)``: the same ``n`` for every image (CERTIFY) or input-specific sizes (Chen
#: et al. 2022).
SAMPLING_MODES = ("fixed", "adaptive")

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


class RenyiSmoothingPyTorch(PyTorchRandomizedSmoothing):
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

    # ------------------------------------------------------------- sampling
    def _check_indices(self, indices: Any, num_images: int) -> list[int]:
        if indices is None:
            return list(range(num_images))
        if isinstance(indices, (str, bytes)):
            raise TypeError(f"indices must be a sequence of non-negative integers, got {indices!r}")
        arr = np.asarray(indices)
        if arr.shape != (num_images,):
            raise ValueError(f"indices must have one entry per image ({num_images}), got shape {arr.shape}")
        if arr.size and (arr.dtype.kind not in "iu" or int(arr.min()) < 0):
            raise ValueError(
                f"indices must be non-negative integers (the images' global indices), got dtype {arr.dtype}"
            )
        return [int(i) for i in arr]

    def _counts(
        self,
        x: np.ndarray,
        samples: tuple[int, ...],
        batch_size: int,
        seed: int | None,
        indices: Any,
        verbose: bool,
        desc: str,
    ) -> np.ndarray:
        """Vote counts ``(N, len(samples), nb_classes)``; image ``i``'s noise from
        ``image_seed(seed, indices[i])``."""
        idx = self._check_indices(indices, len(x))
        seeds = image_seeds(resolve_seed(self.seed if seed is None else seed), idx)
        self._model.eval()
        with torch.inference_mode(), tqdm(total=len(x), desc=desc, disable=not verbose, leave=False) as bar:
            counts = vote_counts(
                self.base_logits,
                torch.from_numpy(np.ascontiguousarray(x)),
                samples,
                sigma=self.sigma,
                num_classes=self.nb_classes,
                batch_size=batch_size,
                seeds=seeds,
                device=self._device,
                progress=bar.update,
            )
        return counts.cpu().numpy()

    def certify_counts(
        self,
        x: Any,
        n: int,
        batch_size: int = 1000,
        *,
        n0: int = DEFAULT_N0,
        seed: int | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        verbose: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Selection counts (``n0`` samples) and estimation counts (``n`` fresh samples) per image, both
        ``(N, nb_classes)`` int64, from one streamed pass (memory: one batch of ``batch_size`` noisy samples).

        Image ``i``'s ``n0 + n`` noisy samples (selection first) come from a generator on the model's device
        seeded with :func:`~art_manifold_defenses.smoothing.sampling.image_seed` ``(seed, indices[i]) = (seed
        * 0x9E3779B97F4A7C15 + indices[i]) mod 2**63``, so its counts depend only on
        ``(seed, indices[i], n0, n)``: not on the other images, the batch size, or how a data set is split
        across calls or processes.

        Args:
            indices: the images' global indices (e.g. positions in the test set), ``N`` non-negative integers;
                default ``range(N)``. Certifying ``x[5:10]`` with ``indices=range(5, 10)`` gives the same
                counts as rows 5 to 9 of certifying ``x[0:10]``.
            seed: run seed (default: the constructor's ``seed``; drawn at random when both are None).
        """
        x_np = self._check_x(x)
        n = check_positive_int(n, "n")
        n0 = check_positive_int(n0, "n0", minimum=0)
        batch_size = check_positive_int(batch_size, "batch_size")
        counts = self._counts(x_np, (n0, n), batch_size, seed, indices, verbose, "certify")
        return counts[:, 0], counts[:, 1]

    def _vote_streams(
        self, x_np: np.ndarray, per_image: int, batch_size: int, seed: int | None, indices: Sequence[int]
    ) -> VoteStreams:
        """Per-image noise streams (seeded as :meth:`certify_counts` seeds them) for sampling in
        installments."""
        seeds = image_seeds(resolve_seed(self.seed if seed is None else seed), list(indices))
        return VoteStreams(
            self.base_logits,
            torch.from_numpy(np.ascontiguousarray(x_np)),
            sigma=self.sigma,
            num_classes=self.nb_classes,
            batch_size=batch_size,
            seeds=seeds,
            per_image=per_image,
            device=self._device,
        )

    def _alpha(self, alpha: float | None) -> float:
        value = float(self.alpha if alpha is None else alpha)
        if not 0 < value < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        return value

    @staticmethod
    def _images_per_chunk(batch_size: int, first_round: int) -> int:
        """Images sampled together by the decision and adaptive modes: enough to fill a batch in the first
        round."""
        return max(1, batch_size // max(1, first_round))

    def certify_adaptive_counts(
        self,
        x: Any,
        n: int,
        batch_size: int = 1000,
        *,
        n0: int = DEFAULT_N0,
        alpha: float | None = None,
        max_radius_loss: float = 0.05,
        first_round: int = 100,
        seed: int | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        verbose: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Input-specific sample sizes (Chen et al. 2022, AAAI, Section 4; :mod:`.adaptive`): selection
        (pilot) counts from ``n0`` samples, each image's size ``n_i <= n`` from its pilot, and estimation
        counts from ``n_i`` fresh samples. Returns ``(selection, estimation, n_i)``; samples spent per image:
        ``n0 + n_i``.

        Image ``i``'s samples are the first ``n0 + n_i`` of the stream :meth:`certify_counts` draws for it
        with the same ``seed``, ``n0`` and ``n`` (same per-image seeding), so the adaptive counts are a prefix
        of the fixed ones.

        Cost: about half of CERTIFY's forward passes on MNIST models whose top class wins nearly every vote,
        for a small loss of radius (measured figures: ``docs/sequential_certification.md``).
        """
        x_np = self._check_x(x)
        n = check_positive_int(n, "n")
        n0 = check_positive_int(n0, "n0", minimum=1)
        batch_size = check_positive_int(batch_size, "batch_size")
        first_round = check_positive_int(first_round, "first_round")
        alpha_value = self._alpha(alpha)
        idx = self._check_indices(indices, len(x_np))
        seed = resolve_seed(self.seed if seed is None else seed)  # one run seed for every chunk
        selection = np.zeros((len(x_np), self.nb_classes), dtype=np.int64)
        estimation = np.zeros_like(selection)
        sizes = np.zeros(len(x_np), dtype=np.int64)
        chunk = self._images_per_chunk(batch_size, first_round)
        self._model.eval()
        with (
            torch.inference_mode(),
            tqdm(total=len(x_np), desc="certify (adaptive)", disable=not verbose, leave=False) as bar,
        ):
            for start in range(0, len(x_np), chunk):
                part = list(range(start, min(start + chunk, len(x_np))))
                streams = self._vote_streams(x_np[part], n0 + n, batch_size, seed, [idx[j] for j in part])
                local = np.arange(len(part))
                pilot = streams.sample(local.tolist(), [n0] * len(part)).cpu().numpy()
                top = pilot.argmax(axis=1)
                n_i = adaptive_sample_sizes(
                    pilot[local, top],
                    n0,
                    n_max=n,
                    alpha=alpha_value,
                    sigma=self.sigma,
                    max_radius_loss=max_radius_loss,
                    min_samples=first_round,
                )
                selection[part] = pilot
                estimation[part] = streams.sample(local.tolist(), n_i.tolist()).cpu().numpy()
                sizes[part] = n_i
                bar.update(len(part))
        return selection, estimation, sizes

    def certify_decision(
        self,
        x: Any,
        radius: float,
        n_max: int = DEFAULT_SAMPLES,
        batch_size: int = 1000,
        *,
        n0: int = DEFAULT_N0,
        alpha: float | None = None,
        bound: str = "cohen",
        first_round: int = 100,
        growth: float = 2.0,
        seed: int | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        verbose: bool = False,
    ) -> DecisionResult:
        """Decision mode: certified at ``radius`` / not certified / abstain, per image, with as few samples as
        the image needs (Voráček & Hein 2024, arXiv 2406.17830, Section 3, on Cohen et al. 2019's CERTIFY; the
        procedure and its validity under optional stopping: :mod:`.sequential`).

        Rounds of ``first_round, first_round * growth, ...`` estimation samples (cumulative, capped at
        ``n_max``) after ``n0`` selection samples; an image stops as soon as the union-bound confidence
        sequence decides, and undecided images end as not certified at ``n_max``. Image ``i``'s samples are a
        prefix of the stream that :meth:`certify_counts` draws for it with the same ``seed``, ``n0`` and
        ``n = n_max``.

        Cost: one to two orders of magnitude fewer forward passes than CERTIFY at ``n = n_max`` for images far
        from the radius, with the same certified accuracy (measured figures:
        ``docs/sequential_certification.md``).

        Returns:
            A :class:`~.sequential.DecisionResult` (``prediction``, ``decision``, ``samples`` spent per image,
            ``radius`` certified at level ``alpha``, bounds).
        """
        x_np = self._check_x(x)
        n_max = check_positive_int(n_max, "n_max")
        n0 = check_positive_int(n0, "n0", minimum=1)
        batch_size = check_positive_int(batch_size, "batch_size")
        first_round = check_positive_int(first_round, "first_round")
        alpha_value = self._alpha(alpha)
        if bound not in BOUNDS:
            raise ValueError(
                f"bound must be one of {BOUNDS} in the decision mode (one bound at a time), got {bound!r}"
            )
        idx = self._check_indices(indices, len(x_np))
        seed = resolve_seed(self.seed if seed is None else seed)  # one run seed for every chunk
        parts: list[DecisionResult] = []
        chunk = self._images_per_chunk(batch_size, first_round)
        decide = functools.partial(
            decide_sequentially,
            radius=radius,
            sigma=self.sigma,
            alpha=alpha_value,
            n_max=n_max,
            n0=n0,
            num_classes=self.nb_classes,
            bound=bound,
            first_round=first_round,
            growth=growth,
        )
        self._model.eval()
        with (
            torch.inference_mode(),
            tqdm(total=len(x_np), desc=f"certify at r={radius:g}", disable=not verbose, leave=False) as bar,
        ):
            for start in range(0, len(x_np), chunk):
                part = list(range(start, min(start + chunk, len(x_np))))
                streams = self._vote_streams(x_np[part], n0 + n_max, batch_size, seed, [idx[j] for j in part])

                def draw(
                    images: np.ndarray, counts: np.ndarray, streams: VoteStreams = streams
                ) -> np.ndarray:
                    return streams.sample(images.tolist(), counts.tolist()).cpu().numpy()

                parts.append(decide(draw, len(part)))
                bar.update(len(part))
        if not parts:
            return decide(lambda i, c: np.zeros((0, self.nb_classes), dtype=np.int64), 0)
        fields = {
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in (
                "prediction",
                "decision",
                "samples",
                "rounds",
                "radius",
                "p_lower",
                "p_upper",
                "count_top",
                "count_second",
            )
        }
        return DecisionResult(**fields, tested_radius=parts[0].tested_radius)

    # --------------------------------------------------------------- certify
    def certify(  # type: ignore[override]
        self,
        x: Any,
        n: int = DEFAULT_SAMPLES,
        batch_size: int = 1000,
        *,
        n0: int = DEFAULT_N0,
        alpha: float | None = None,
        bound: str | None = None,
        interval: str = "clopper-pearson",
        seed: int | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        verbose: bool = False,
        radius: float | None = None,
        samples: str = "fixed",
        max_radius_loss: float = 0.05,
        first_round: int = 100,
        growth: float = 2.0,
        return_samples: bool = False,
    ) -> Any:
        """Certified predictions and l2 radii (three modes; ``docs/sequential_certification.md`` compares
        them).

        - **fixed** (default): Cohen et al. 2019's CERTIFY, ``n0`` selection + ``n`` estimation samples per
          image.
        - **adaptive** (``samples="adaptive"``): input-specific sample sizes (Chen et al. 2022, Section 4;
          :meth:`certify_adaptive_counts`): each image gets ``n_i <= n`` estimation samples, chosen from its
          ``n0`` selection samples so that the typical radius given up relative to ``n`` is at most
          ``max_radius_loss``.
        - **decision** (``radius=r``): certified at ``r`` or not, sampling in rounds and stopping as soon as a
          confidence sequence decides (Voráček & Hein 2024, Section 3; :meth:`certify_decision`, ``n`` is the
          cap ``n_max``). Returns a :class:`~.sequential.DecisionResult` instead of a tuple.

        Args:
            x: clean inputs ``(N, *input_shape)`` within ``clip_values``.
            n: estimation samples per image (default :data:`~.choices.DEFAULT_SAMPLES`, the default of every
                certification entry point and of ``amd certify --samples``; Li et al.: 100; Cohen et al.:
                100,000, i.e. :data:`~.choices.COHEN_SAMPLES`; cost: ``docs/costs.md``); the largest size in
                the adaptive mode and the cap ``n_max`` in the decision mode.
            batch_size: noisy samples per forward pass.
            n0: selection samples per image (Cohen et al.: 100); 0 selects from the ``n`` samples (authors'
                code; fixed mode only: the other modes need the independent selection).
            alpha: failure probability of each certificate (default: the estimator's ``alpha``, whose default
                is :data:`~.choices.DEFAULT_ALPHA` = 0.001 as in Cohen et al. and ART, the default of
                ``amd certify`` too; the paper uses 0.05).
            bound: ``"renyi"``, ``"cohen"``, ``"pixeldp"`` or ``"all"`` (default: ``"renyi"``; in the decision
                mode one bound, default ``"cohen"``).
            interval: ``"clopper-pearson"`` (Bonferroni over classes; the paper) or ``"sison-glaz"`` (authors'
                code) for the ``(p_(1), p_(2))`` bounds of Rényi and PixelDP; Cohen always uses its one-sided
                Clopper–Pearson bound on ``p_A``. The decision mode needs Clopper–Pearson.
            seed: run seed of the noise (default: the constructor's ``seed``); image ``i``'s noise is seeded
                with ``image_seed(seed, indices[i])`` (see :meth:`certify_counts`), in every mode.
            indices: the images' global indices (default ``range(N)``), so that a data set certified in parts
                (or shards) gets the same noise, hence the same results, as in one call.
            radius: the radius to decide (decision mode).
            samples: ``"fixed"`` or ``"adaptive"``.
            max_radius_loss: adaptive mode: the bound on the typical radius given up relative to ``n``
                samples.
            first_round: decision mode: estimation samples of the first round; adaptive mode: the smallest
                size.
            growth: decision mode: ratio of consecutive cumulative round sizes.
            return_samples: fixed and adaptive modes: also return the samples spent per image (``n0 + n_i``).

        Returns:
            With one bound, ``(prediction, radius)`` as ART: prediction -1 (abstain) where the radius is 0.
            With ``"all"``, ``(prediction, {bound: radius})``: the selected class, -1 where no bound
            certifies. ``return_samples=True`` appends the samples per image. The decision mode returns a
            :class:`~.sequential.DecisionResult`.
        """
        if samples not in SAMPLING_MODES:
            raise ValueError(f"samples must be one of {SAMPLING_MODES}, got {samples!r}")
        if radius is not None:
            if samples != "fixed":
                raise ValueError(
                    "radius (decision mode) and samples='adaptive' are two different modes: pass one"
                )
            if interval != "clopper-pearson":
                raise ValueError(f"interval must be 'clopper-pearson' in the decision mode, got {interval!r}")
            if (
                isinstance(radius, bool)
                or not isinstance(radius, (int, float))
                or not 0 <= float(radius) < np.inf
            ):
                raise ValueError(f"radius must be a finite radius >= 0, got {radius!r}")
            return self.certify_decision(
                x,
                float(radius),
                n,
                batch_size,
                n0=n0,
                alpha=alpha,
                bound="cohen" if bound is None else bound,
                first_round=first_round,
                growth=growth,
                seed=seed,
                indices=indices,
                verbose=verbose,
            )
        bound = "renyi" if bound is None else bound
        bounds = resolve_bounds(bound)
        if interval not in INTERVALS:
            raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
        alpha_value = self._alpha(alpha)
        if samples == "adaptive":
            selection, estimation, sizes = self.certify_adaptive_counts(
                x,
                n,
                batch_size,
                n0=n0,
                alpha=alpha_value,
                max_radius_loss=max_radius_loss,
                first_round=first_round,
                seed=seed,
                indices=indices,
                verbose=verbose,
            )
            spent = n0 + sizes
        else:
            selection, estimation = self.certify_counts(
                x, n, batch_size, n0=n0, seed=seed, indices=indices, verbose=verbose
            )
            spent = np.full(len(selection), int(n0) + int(n), dtype=np.int64)
        top, radii, _, _, _ = certify_batch(
            selection, estimation, sigma=self.sigma, alpha=alpha_value, bounds=bounds, interval=interval
        )
        certified = np.any(np.stack([radii[b] > 0 for b in bounds]), axis=0)
        prediction = np.where(certified, top, -1).astype(np.int64)
        result: tuple[Any, ...] = (
            prediction,
            radii if bound == "all" or len(bounds) > 1 else radii[bounds[0]],
        )
        return (*result, spent) if return_samples else result

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

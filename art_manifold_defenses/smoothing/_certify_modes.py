"""The certification modes of :class:`~.estimator.RenyiSmoothingPyTorch`, as a mixin: vote counting with
per-image noise streams, the fixed mode (Cohen et al. 2019's CERTIFY, :meth:`certify_counts`), input-specific
sample sizes (Chen et al. 2022, :meth:`certify_adaptive_counts`), the decision mode (Voráček & Hein 2024,
:meth:`certify_decision`) and :meth:`certify`, which dispatches between them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..utils import check_positive_int
from .adaptive import adaptive_sample_sizes
from .certification import BOUNDS, certify_batch, resolve_bounds
from .choices import DEFAULT_N0, DEFAULT_SAMPLES
from .confidence import INTERVALS
from .sampling import VoteStreams, image_seeds, resolve_seed, vote_counts
from .sequential import DecisionResult, decide_sequentially

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = ["SAMPLING_MODES"]

#: ``certify(..., samples=...)``: the same ``n`` for every image (CERTIFY) or input-specific sizes (Chen
#: et al. 2022).
SAMPLING_MODES = ("fixed", "adaptive")


class _CertifyModes:
    """The sampling and certification methods of :class:`~.estimator.RenyiSmoothingPyTorch` (which defines
    the attributes declared below, with ART's estimator)."""

    if TYPE_CHECKING:
        alpha: float
        seed: int | None
        _model: nn.Module
        _device: torch.device

        @property
        def nb_classes(self) -> int: ...

        @property
        def sigma(self) -> float: ...

        def _check_x(self, x: Any, name: str = "x") -> np.ndarray: ...

        def base_logits(self, x: Tensor, *, fit: bool = False) -> Tensor: ...

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
    def certify(
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

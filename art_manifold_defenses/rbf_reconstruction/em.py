"""Non-parametric hard EM that learns the RBF filter bank from clean training patches (paper section III-a,
eq. 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .. import costs
from ..utils import check_images, resolve_device
from .filter_bank import MIN_VARIANCE, RBFFilterBank

__all__ = ["EMStatistics", "e_step", "score_matrix", "fit_rbf_filters", "m_step", "update_creation_threshold"]

#: Log-score of the virtual "new filter" channel in the authors' E-step (before the ``ln alpha`` shift).
NEW_FILTER_LOG_SCORE = -2.5


@dataclass
class EMStatistics:
    """Sufficient statistics of one E-step block, per bucket (rows ``0..J-1``: the filters, row ``J``: "new
    filter").

    Sums are taken of patches *centred on the bucket's current mean* (the new bucket is centred on 0), so that
    the float32 accumulation keeps the precision the near-zero variances need.
    """

    centers: Tensor  # (J + 1, D)
    count: Tensor  # (J + 1,)
    centered_sum: Tensor  # (J + 1, D)
    centered_sq_sum: Tensor  # (J + 1,)


def score_matrix(patches: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    """Match scores ``(P, J)`` of eq. 2 (as in :func:`~.filter_bank.match_scores`) as ONE matrix product of
    the augmented patches ``[z, ||z||^2, 1]`` with ``[mu / sigma^2; -1 / (2 sigma^2); -||mu||^2 / (2 sigma^2)
    - ln sigma]``. Used for the hard assignment only (rounding may shift a score by ~1e-2 for the tightest
    filters; the argmax over well-separated filters is unaffected)."""
    inv = 1.0 / variances
    coefficients = torch.cat(
        [
            (means * inv[:, None]).T,
            (-0.5 * inv)[None],
            (-0.5 * (means * means).sum(1) * inv - 0.5 * torch.log(variances))[None],
        ]
    )
    ones = torch.ones(patches.shape[0], 1, dtype=patches.dtype, device=patches.device)
    augmented = torch.cat([patches, (patches * patches).sum(1, keepdim=True), ones], dim=1)
    return augmented @ coefficients


def e_step(patches: Tensor, means: Tensor, variances: Tensor, log_alpha: float) -> EMStatistics:
    """Hard E-step: assign each patch ``(P, D)`` to the filter of highest match score, or to the "new filter"
    bucket when every score is below ``-2.5 + ln(alpha)`` (the authors' virtual channel); accumulate the
    bucket statistics. ``log_alpha = -inf`` disables the bucket (fixed-count EM)."""
    num_filters, dim = means.shape
    centers = torch.cat([means, torch.zeros(1, dim, dtype=means.dtype, device=means.device)])
    if num_filters:
        best_score, best = score_matrix(patches, means, variances).max(dim=1)
        assignment = torch.where(
            best_score < NEW_FILTER_LOG_SCORE + log_alpha, torch.full_like(best, num_filters), best
        )
    else:
        assignment = torch.zeros(patches.shape[0], dtype=torch.long, device=patches.device)
    centered = patches - centers[assignment]
    count = torch.bincount(assignment, minlength=num_filters + 1).to(patches.dtype)
    centered_sum = torch.zeros_like(centers).index_add_(0, assignment, centered)
    centered_sq_sum = torch.zeros(num_filters + 1, dtype=patches.dtype, device=patches.device)
    centered_sq_sum.index_add_(0, assignment, (centered * centered).sum(1))
    return EMStatistics(centers, count, centered_sum, centered_sq_sum)


def m_step(
    means: Tensor,
    variances: Tensor,
    stats: EMStatistics,
    *,
    allow_new: bool,
    count_threshold: int,
    new_share_threshold: float,
) -> tuple[Tensor, Tensor, float, int, bool]:
    """M-step (eq. 3): ``mu_j`` = mean of the assigned patches, ``sigma_j^2`` = their mean squared distance to
    it (floored at 1e-20 as in the authors' code).

    Filters with at most ``count_threshold`` patches are deleted; the "new" bucket becomes one new filter when
    its share of the patches exceeds ``new_share_threshold`` (and ``allow_new``). Returns ``(means, variances,
    new_share, deleted, created)``.
    """
    count = stats.count
    safe = count.clamp_min(1.0)
    shift = stats.centered_sum / safe[:, None]
    new_means = stats.centers + shift
    new_vars = (stats.centered_sq_sum / safe - (shift * shift).sum(1)).clamp_min(0.0) + MIN_VARIANCE
    num_filters = means.shape[0]
    keep = count[:num_filters] > count_threshold
    deleted = int((~keep).sum())
    out_means, out_vars = new_means[:num_filters][keep], new_vars[:num_filters][keep]
    new_count = float(count[num_filters])
    new_share = new_count / max(float(count.sum()), 1.0)
    created = allow_new and new_share > new_share_threshold and new_count > count_threshold
    if created:
        out_means = torch.cat([out_means, new_means[num_filters:]])
        out_vars = torch.cat([out_vars, new_vars[num_filters:]])
    return out_means, out_vars.clamp_min(MIN_VARIANCE), new_share, deleted, created


def update_creation_threshold(
    alpha: float, num_filters: int, desired_filters: int, new_share: float, share_scale: float = 1e-3
) -> float:
    """Adaptive creation threshold of the authors' code:
    ``alpha <- alpha + 0.6913 / ((1 + exp(J / J_desired)) (1 + exp(new_share / 0.001))) - 0.05``.

    With no new patches ``alpha`` grows while ``J < 1.78 J_desired`` (raising the bar a patch must clear to
    stay in an existing filter, so new filters appear) and shrinks beyond it.
    """
    a = min(num_filters / desired_filters, 700.0)
    b = min(new_share / share_scale, 700.0)
    return alpha + 0.6913 / ((1.0 + math.exp(a)) * (1.0 + math.exp(b))) - 0.05


def fit_rbf_filters(
    x: Any,
    patch_size: int = 3,
    *,
    desired_filters: int = 10,
    max_steps: int = 500,
    nonparametric_steps: int | None = 250,
    batch_size: int = 50,
    batches_per_step: int = 15,
    count_threshold: int = 1,
    new_share_threshold: float = 1e-3,
    initial_alpha: float = 1.0,
    init: Literal["paper", "authors_code"] = "paper",
    shuffle: bool = False,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    verbose: bool = True,
    block_to_data: bool = True,
) -> RBFFilterBank:
    """Learn an :class:`RBFFilterBank` from training images with the non-parametric hard EM of RBF-CNN.

    Paper: Nandy, Hsu and Lee, arXiv:2004.02183, section III-a and eq. 3 (hard EM that creates a filter for
    patches whose best score is below a threshold). The schedule, thresholds and creation rule the
    paper leaves open follow the authors' code (notes section 000): mini-batches of ``batch_size = 50`` images
    streamed in order (repeating epochs), one M-step every ``batches_per_step = 15`` mini-batches, at most one
    new filter per M-step (when the new bucket holds more than ``new_share_threshold`` = 0.1 % of the
    patches), deletion of filters with at most ``count_threshold`` = 1 patch, the adaptive threshold of
    :func:`update_creation_threshold` with ``desired_filters`` (10 for MNIST, 175 for CIFAR-10),
    ``max_steps = 500`` M-steps of which the first ``nonparametric_steps = 250`` may create filters and the
    rest are plain fixed-count hard EM (MNIST; pass ``None`` to stay non-parametric throughout, as the
    CIFAR-10 code does).

    Cost: ``max_steps`` M-steps, each an E-step over the patches of ``batch_size * batches_per_step`` images
    (750), whatever the number of images: the authors stream a smaller set round and round to fill the block.
    The number of M-steps is not a number of passes over the data: the creation threshold needs about 130 of
    them to reach its filter count on MNIST (23 filters), and 60 M-steps leave one filter, so it is not scaled
    down. What scales is the block: with ``block_to_data=True`` (default) a set of fewer than 750 images is
    one block (every image once per M-step, where the authors' stream repeats each image two or more times),
    so small inputs cost in proportion to their size; ``block_to_data=False`` is the authors' stream on any
    data; sets of 750 images or more are unaffected. Measured costs: ``docs/costs.md``.

    Args:
        x: training images ``(N, C, H, W)`` in [0, 1] (numpy or tensor).
        init: ``"paper"`` starts from one random filter (mean ~ U[0, 1), variance ``D``, drawn from ``seed``);
            ``"authors_code"`` starts from no filter (the first M-step creates the global patch mean).
        shuffle: stream the images in a random order drawn from ``seed`` (the authors use file order).
        device: where the E-steps run (all patches of an M-step block at once, vectorised).

    Returns the bank; ``bank.fit_history`` lists ``{"step", "filters", "alpha", "new_share"}`` per M-step.
    """
    _check_fit_params(
        patch_size,
        desired_filters,
        max_steps,
        nonparametric_steps,
        batch_size,
        batches_per_step,
        count_threshold,
        new_share_threshold,
        initial_alpha,
        init,
        seed,
    )
    if not isinstance(block_to_data, bool):
        raise TypeError(f"block_to_data must be a bool, got {block_to_data!r}")
    images = check_images(x, "x")
    if images.shape[2] < patch_size or images.shape[3] < patch_size:
        raise ValueError(f"x of size {images.shape[2:]} is smaller than patch_size={patch_size}")
    dev = resolve_device(device)
    channels = images.shape[1]
    dim = channels * patch_size * patch_size
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen).numpy() if shuffle else np.arange(len(images))
    if init == "paper":
        means = torch.rand(1, dim, generator=gen).to(dev)
        variances = torch.full((1,), float(dim), device=dev)
    else:
        means = torch.zeros(0, dim, device=dev)
        variances = torch.zeros(0, device=dev)
    alpha = float(initial_alpha)
    block = batch_size * batches_per_step
    if block_to_data:
        block = min(block, len(images))
    cursor = 0
    history: list[dict[str, float]] = []
    bar = tqdm(range(max_steps), desc="fit RBF filters (EM)", disable=not verbose)
    began = costs.clock()
    for step in bar:
        idx = order[np.arange(cursor, cursor + block) % len(images)]
        cursor = (cursor + block) % len(images)
        chunk = torch.from_numpy(images[idx]).to(dev)
        patches = F.unfold(chunk, kernel_size=patch_size).transpose(1, 2).reshape(-1, dim)
        nonparametric = nonparametric_steps is None or step < nonparametric_steps
        if step == ESTIMATE_AFTER_STEPS and verbose and max_steps > step:
            per_step = (costs.clock() - began) / step
            costs.report_estimate(
                f"{max_steps} EM M-steps of {block} images",
                per_step * max_steps,
                f"the first {step} took {per_step:.3g} s each",
            )
        log_alpha = math.log(alpha) if (nonparametric and alpha > 0) else -math.inf
        stats = e_step(patches, means, variances, log_alpha)
        means, variances, new_share, _deleted, _created = m_step(
            means,
            variances,
            stats,
            allow_new=nonparametric,
            count_threshold=count_threshold,
            new_share_threshold=new_share_threshold,
        )
        if nonparametric:
            alpha = update_creation_threshold(alpha, means.shape[0], desired_filters, new_share)
        history.append(
            {
                "step": float(step + 1),
                "filters": float(means.shape[0]),
                "alpha": alpha,
                "new_share": new_share,
            }
        )
        bar.set_postfix(filters=means.shape[0], alpha=f"{alpha:.3f}")
    if means.shape[0] == 0:
        raise ValueError("EM ended with no filter; the data hold too few patches for count_threshold")
    bank = RBFFilterBank(
        means.cpu(), variances.cpu(), patch_size=patch_size, in_channels=channels, device=dev
    )
    bank.fit_history = history
    return bank


#: ``fit_rbf_filters`` prints its time estimate after this many M-steps (verbose).
ESTIMATE_AFTER_STEPS = 5


def _check_fit_params(
    patch_size: int,
    desired_filters: int,
    max_steps: int,
    nonparametric_steps: int | None,
    batch_size: int,
    batches_per_step: int,
    count_threshold: int,
    new_share_threshold: float,
    initial_alpha: float,
    init: str,
    seed: int,
) -> None:
    for name, value in (
        ("patch_size", patch_size),
        ("desired_filters", desired_filters),
        ("max_steps", max_steps),
        ("batch_size", batch_size),
        ("batches_per_step", batches_per_step),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if nonparametric_steps is not None and (
        not isinstance(nonparametric_steps, int) or nonparametric_steps < 0
    ):
        raise ValueError(
            f"nonparametric_steps must be a non-negative integer or None, got {nonparametric_steps!r}"
        )
    if not isinstance(count_threshold, int) or count_threshold < 0:
        raise ValueError(f"count_threshold must be a non-negative integer, got {count_threshold!r}")
    if not (isinstance(new_share_threshold, (int, float)) and 0 <= new_share_threshold < 1):
        raise ValueError(f"new_share_threshold must lie in [0, 1), got {new_share_threshold!r}")
    if not (isinstance(initial_alpha, (int, float)) and initial_alpha > 0 and math.isfinite(initial_alpha)):
        raise ValueError(f"initial_alpha must be a finite positive number, got {initial_alpha!r}")
    if init not in ("paper", "authors_code"):
        raise ValueError(f"init must be 'paper' or 'authors_code', got {init!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")

"""Streamed Monte-Carlo sampling of a smoothed classifier: Gaussian noise is drawn batch by batch on the model's
device, each noisy sample goes through exactly one forward pass, and only the per-class vote counts are kept, so
memory is one batch whatever the number of samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["make_generator", "vote_counts"]


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch generator on ``device``, seeded with ``seed`` (or from torch's global RNG when ``seed`` is None)."""
    gen = torch.Generator(device=torch.device(device))
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    gen.manual_seed(seed)
    return gen


@torch.no_grad()
def vote_counts(
    classify: Callable[[Tensor], Tensor],
    x: Tensor,
    samples: Sequence[int],
    *,
    sigma: float,
    num_classes: int,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Count the base classifier's argmax votes on ``x_i + N(0, sigma^2 I)`` for every image and phase.

    The ``N * sum(samples)`` noisy samples form one flat stream cut into batches of ``batch_size``: a batch may hold
    samples of several images (small ``n``) or a part of one image's samples (large ``n``), so every batch is full.
    Phase ``p`` of image ``i`` gets ``samples[p]`` fresh samples (e.g. Cohen et al.'s ``n0`` selection samples and
    ``n`` estimation samples).

    Args:
        classify: maps a batch of noisy inputs (on ``x``'s device) to logits ``(B, num_classes)``.
        x: clean images ``(N, C, H, W)`` on the model's device.
        samples: number of noisy samples per image for each phase.
        sigma: noise standard deviation (noise is added in input space and not clipped, as in the papers).
        batch_size: noisy samples per forward pass.
        generator: torch generator on ``x``'s device.

    Returns:
        int64 counts of shape ``(N, len(samples), num_classes)`` on ``x``'s device.
    """
    phases = [int(s) for s in samples]
    num_images, per_image = x.shape[0], sum(phases)
    device = x.device
    counts = torch.zeros(num_images * len(phases) * num_classes, dtype=torch.int64, device=device)
    if per_image == 0 or num_images == 0:
        return counts.view(num_images, len(phases), num_classes)
    boundaries = torch.cumsum(torch.tensor(phases, device=device), 0)[:-1]
    total = num_images * per_image
    buffer = torch.empty((min(batch_size, total), *x.shape[1:]), device=device, dtype=x.dtype)  # reused every batch
    for start in range(0, total, batch_size):
        flat = torch.arange(start, min(start + batch_size, total), device=device)
        image = torch.div(flat, per_image, rounding_mode="floor")
        phase = torch.bucketize(flat - image * per_image, boundaries, right=True)
        batch = buffer[: flat.numel()].normal_(generator=generator)
        batch.mul_(sigma).add_(x.index_select(0, image))
        predicted = classify(batch).argmax(dim=1)
        counts += torch.bincount((image * len(phases) + phase) * num_classes + predicted, minlength=counts.numel())
    return counts.view(num_images, len(phases), num_classes)

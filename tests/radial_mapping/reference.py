"""Straightforward (slow) reference implementations of the block's distances, one centre at a time.

They spell the equations out literally and serve two purposes: tests check the vectorised block against them,
and ``bench/radial_mapping.py`` times them to show what the vectorised expansion saves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from art_manifold_defenses.radial_mapping.block import (
    FEATURE_BOUND,
    SQRT_FLOOR,
    RadialBasisMapping,
    radial_basis_activation,
)

__all__ = ["per_center_forward", "per_center_distances"]


def per_center_distances(block: RadialBasisMapping, features: Tensor) -> Tensor:
    """Distances of ``features`` (..., K) computed literally: a loop over centres, each with its own
    difference tensor."""
    f = features.clamp(-FEATURE_BOUND, FEATURE_BOUND)
    matrix = block.precision()
    columns = []
    if block.variant == "paper":
        for k in range(block.n_centers):
            diff = f - block.centers[k]
            columns.append(((diff @ matrix) * diff).sum(-1))
        return torch.stack(columns, dim=-1)
    for k in range(block.in_channels):
        diff = f[..., k : k + 1] - block.centers[:, k]  # (..., P): s_p = f_k - C_pk
        form = ((diff @ matrix) * diff).sum(-1)
        columns.append(form.clamp_min(SQRT_FLOOR).sqrt())
    return torch.stack(columns, dim=-1)


def per_center_forward(block: RadialBasisMapping, x: Tensor) -> Tensor:
    """The block's forward pass with :func:`per_center_distances` (same output as ``block(x)``)."""
    f = x.permute(0, 2, 3, 1)
    phi = radial_basis_activation(per_center_distances(block, f), block.beta)
    return nn.functional.linear(phi, block.weight, block.bias).permute(0, 3, 1, 2)

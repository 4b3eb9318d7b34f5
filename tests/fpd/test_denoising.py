"""Denoising layers: the O(C^2 N) non-local mean equals the naive O(N^2) one; bottleneck and middle variants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_manifold_defenses.fpd.denoising import (
    InnerDenoisingLayer,
    MiddleDenoisingLayer,
    dot_product_non_local_mean,
)


def naive_non_local_mean(x: torch.Tensor) -> torch.Tensor:
    """Xie et al.'s dot-product non-local mean written position by position through the N x N affinity matrix."""
    batch, channels, height, width = x.shape
    out = torch.zeros_like(x)
    for b in range(batch):
        positions = x[b].reshape(channels, -1).T  # (N, C)
        n = positions.shape[0]
        affinity = torch.zeros(n, n, dtype=x.dtype)
        for i in range(n):
            for j in range(n):
                affinity[i, j] = torch.dot(positions[i], positions[j])
        out[b] = ((affinity @ positions) / n).T.reshape(channels, height, width)
    return out


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 3, 3), (3, 6, 2, 7)])
def test_gram_form_equals_naive_quadratic_form(shape: tuple[int, int, int, int]) -> None:
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(dot_product_non_local_mean(x), naive_non_local_mean(x), rtol=1e-10, atol=1e-10)


def test_non_local_mean_treats_samples_independently() -> None:
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    whole = dot_product_non_local_mean(x)
    torch.testing.assert_close(whole[2:3], dot_product_non_local_mean(x[2:3]))


def test_inner_layer_is_non_local_mean_plus_identity_without_parameters() -> None:
    layer = InnerDenoisingLayer(3)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), naive_non_local_mean(x) + x)
    assert sum(p.numel() for p in layer.parameters()) == 0


def test_bottleneck_layer_matches_naive_embedded_non_local_block() -> None:
    torch.manual_seed(0)
    layer = InnerDenoisingLayer(6, bottleneck=True, reduction=2).double()
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    assert layer.theta is not None and layer.phi is not None and layer.g is not None and layer.project is not None
    theta = layer.theta(x).flatten(2).transpose(1, 2)  # (B, N, C')
    phi = layer.phi(x).flatten(2).transpose(1, 2)
    g = layer.g(x).flatten(2).transpose(1, 2)
    n = theta.shape[1]
    affinity = theta @ phi.transpose(1, 2)  # (B, N, N)
    mean = (affinity @ g / n).transpose(1, 2).reshape(2, 3, 3, 4)
    torch.testing.assert_close(layer(x), layer.project(mean) + x)
    # 4 1x1 convolutions of 6 <-> 3 channels, no bias
    assert sum(p.numel() for p in layer.parameters()) == 4 * 6 * 3


def test_middle_layer_variants() -> None:
    restored = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    network_input = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    paper = MiddleDenoisingLayer(variant="paper")(restored, network_input)
    code = MiddleDenoisingLayer(variant="authors_code")(restored, network_input)
    torch.testing.assert_close(paper, restored + naive_non_local_mean(restored))
    torch.testing.assert_close(code, restored + naive_non_local_mean(network_input))
    assert sum(p.numel() for p in MiddleDenoisingLayer().parameters()) == 0


def test_layers_are_differentiable() -> None:
    x = torch.randn(1, 4, 3, 3, requires_grad=True)
    InnerDenoisingLayer(4)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"channels": 0}, ValueError, "channels"),
        ({"channels": 4, "reduction": 0}, ValueError, "reduction"),
        ({"channels": 4, "bottleneck": "yes"}, TypeError, "bottleneck"),
    ],
)
def test_inner_layer_rejects_bad_parameters(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        InnerDenoisingLayer(**kwargs)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="4-D"):
        dot_product_non_local_mean(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        InnerDenoisingLayer(4)(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="variant"):
        MiddleDenoisingLayer(variant="mean")
    with pytest.raises(ValueError, match="shape"):
        MiddleDenoisingLayer(variant="authors_code")(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
    assert isinstance(InnerDenoisingLayer(2), nn.Module)

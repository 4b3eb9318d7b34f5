"""Denoising layers: the O(C^2 N) non-local mean equals the naive O(N^2) one; the three residual forms (gated
and bn_zero start as the identity, authors_code is x + NL(x)); bottleneck and middle variants."""

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
    """Xie et al.'s dot-product non-local mean written position by position through the N x N affinity
    matrix."""
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


def test_authors_code_inner_layer_is_non_local_mean_plus_identity_without_parameters() -> None:
    layer = InnerDenoisingLayer(3, form="authors_code")
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), naive_non_local_mean(x) + x)
    assert sum(p.numel() for p in layer.parameters()) == 0


def test_gated_inner_layer_starts_as_identity_and_adds_the_gated_non_local_mean() -> None:
    layer = InnerDenoisingLayer(3).double()  # the default form
    assert layer.form == "gated" and sum(p.numel() for p in layer.parameters()) == 1
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x, rtol=0, atol=0)
    assert layer.scale.gate is not None
    with torch.no_grad():
        layer.scale.gate.fill_(0.25)
    torch.testing.assert_close(layer(x), x + 0.25 * naive_non_local_mean(x))


def test_gate_gets_a_gradient_at_initialisation() -> None:
    layer = InnerDenoisingLayer(3)
    layer(torch.randn(2, 3, 4, 4)).pow(2).sum().backward()
    assert (
        layer.scale.gate is not None
        and layer.scale.gate.grad is not None
        and layer.scale.gate.grad.abs().item() > 0
    )


def test_bn_zero_inner_layer_starts_as_identity_and_normalises_the_non_local_mean() -> None:
    layer = InnerDenoisingLayer(3, form="bn_zero").double().train()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x, rtol=0, atol=0)
    norm = layer.scale.norm
    assert norm is not None
    with torch.no_grad():
        norm.weight.fill_(2.0)
    term = naive_non_local_mean(x)
    mean = term.mean(dim=(0, 2, 3), keepdim=True)
    var = term.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(layer(x), x + 2.0 * (term - mean) / torch.sqrt(var + norm.eps))


@pytest.mark.parametrize("form", ["gated", "bn_zero"])
def test_bottleneck_identity_forms_start_as_identity(form: str) -> None:
    layer = InnerDenoisingLayer(6, bottleneck=True, form=form).double()
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x, rtol=0, atol=0)
    layer(x).pow(2).sum().backward()
    trainable = [p for p in layer.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert trainable, "an identity start must not be a dead end: some parameter gets a gradient"


def test_bottleneck_layer_matches_naive_embedded_non_local_block() -> None:
    torch.manual_seed(0)
    layer = InnerDenoisingLayer(6, bottleneck=True, reduction=2, form="authors_code").double()
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    assert (
        layer.theta is not None
        and layer.phi is not None
        and layer.g is not None
        and layer.project is not None
    )
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
    paper = MiddleDenoisingLayer(variant="paper", form="authors_code")(restored, network_input)
    code = MiddleDenoisingLayer(variant="authors_code", form="authors_code")(restored, network_input)
    torch.testing.assert_close(paper, restored + naive_non_local_mean(restored))
    torch.testing.assert_close(code, restored + naive_non_local_mean(network_input))
    assert sum(p.numel() for p in MiddleDenoisingLayer(form="authors_code").parameters()) == 0
    gated = MiddleDenoisingLayer(channels=3).double()  # default: gated, the identity at initialisation
    torch.testing.assert_close(gated(restored, network_input), restored, rtol=0, atol=0)
    assert sum(p.numel() for p in gated.parameters()) == 1


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
        ({"channels": 4, "form": "cubic"}, ValueError, "form"),
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
    with pytest.raises(ValueError, match="form"):
        MiddleDenoisingLayer(form="none")
    with pytest.raises(ValueError, match="channels"):
        MiddleDenoisingLayer(channels=0)
    with pytest.raises(ValueError, match="shape"):
        MiddleDenoisingLayer(variant="authors_code")(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
    assert isinstance(InnerDenoisingLayer(2), nn.Module)

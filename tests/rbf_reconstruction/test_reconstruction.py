"""RBFReconstruction: stitching vs a naive per-patch reference, determinism at beta2 = 0, noise, BPDA
gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from art_manifold_defenses.rbf_reconstruction import (
    RBFFilterBank,
    RBFReconstruction,
    compute_weights,
    stitch_patches,
)


def naive_reconstruction(
    x: torch.Tensor, bank: RBFFilterBank, beta1: float, samples: torch.Tensor
) -> torch.Tensor:
    """Per-patch loops: weights of each patch, weighted sum of the samples, average of the overlapping
    patches."""
    k, c = bank.patch_size, bank.in_channels
    n, _, h, w = x.shape
    total = torch.zeros(n, c, h, w, dtype=torch.float64)
    count = torch.zeros(h, w, dtype=torch.float64)
    for i in range(n):
        for r in range(h - k + 1):
            for s in range(w - k + 1):
                z = x[i, :, r : r + k, s : s + k].reshape(-1).double()
                d2 = ((z[None] - bank.means.double()) ** 2).sum(1)
                score = -d2 / (2 * bank.variances.double()) - 0.5 * torch.log(bank.variances.double())
                v = torch.sigmoid(score)
                weights = 2.0 ** (beta1 * v)
                weights = weights / weights.sum()
                sample_i = samples[i] if samples.ndim == 3 else samples
                patch = (weights[:, None] * sample_i.double()).sum(0)
                total[i, :, r : r + k, s : s + k] += patch.view(c, k, k)
                if i == 0:
                    count[r : r + k, s : s + k] += 1
    return total / count


@pytest.fixture
def random_bank() -> RBFFilterBank:
    gen = torch.Generator().manual_seed(0)
    return RBFFilterBank(
        torch.rand(5, 18, generator=gen),
        torch.rand(5, generator=gen) * 0.5 + 0.2,
        patch_size=3,
        in_channels=2,
    )


def test_deterministic_reconstruction_matches_naive_reference(random_bank: RBFFilterBank) -> None:
    x = torch.rand(2, 2, 6, 7, generator=torch.Generator().manual_seed(1))
    recon = RBFReconstruction(random_bank, beta1=3.0, beta2=0.0, clip=False)
    expected = naive_reconstruction(x, random_bank, 3.0, random_bank.means)
    np.testing.assert_allclose(recon(x).double().numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_per_image_samples_match_naive_reference(random_bank: RBFFilterBank) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 2, 5, 6, generator=gen)
    samples = random_bank.means[None] + 0.1 * torch.randn(3, 5, 18, generator=gen)
    weights = compute_weights(random_bank(x), 2.0)
    out = stitch_patches(weights, samples, in_channels=2, patch_size=3)
    expected = naive_reconstruction(x, random_bank, 2.0, samples)
    np.testing.assert_allclose(out.double().numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_patch_equal_to_a_filter_mean_reconstructs_to_itself(toy_bank: RBFFilterBank) -> None:
    recon = RBFReconstruction(toy_bank, beta1=125.0, beta2=0.0)
    for value in (0.0, 0.99, 0.5):
        x = torch.full((1, 1, 6, 6), value)
        torch.testing.assert_close(recon(x), x, atol=1e-4, rtol=0)
    mixed = torch.zeros(1, 1, 9, 9)
    mixed[..., :, 5:] = 0.99  # a black and a white region: each patch of a pure region is one filter mean
    out = recon(mixed)
    torch.testing.assert_close(out[..., :, :2], mixed[..., :, :2], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[..., :, 7:], mixed[..., :, 7:], atol=1e-4, rtol=0)


def test_reconstruction_pulls_perturbed_digits_back(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:16])
    delta = 0.1 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    x_adv = (x + delta).clamp(0, 1)
    recon = RBFReconstruction(mnist_bank, beta2=0.0)
    # the reconstruction moves less than the input did: part of the perturbation is removed
    assert (recon(x_adv) - recon(x)).abs().mean() < 0.8 * (x_adv - x).abs().mean()


def test_beta2_zero_is_deterministic_and_beta2_positive_is_stochastic(
    mnist_small, mnist_bank: RBFFilterBank
) -> None:
    x = torch.from_numpy(mnist_small[2][:4])
    deterministic = RBFReconstruction(mnist_bank, beta2=0.0)
    torch.testing.assert_close(deterministic(x), deterministic.deterministic(x).clamp(0, 1))
    assert not deterministic.stochastic
    noisy = RBFReconstruction(mnist_bank, beta2=1.75)
    assert noisy.stochastic
    a, b = noisy(x), noisy(x)
    assert not torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    # fresh noise per image: two copies of one image get different reconstructions in one call
    pair = noisy(torch.cat([x[:1], x[:1]]))
    assert not torch.equal(pair[0], pair[1])


def test_seeded_noise_is_reproducible(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:4])
    a = RBFReconstruction(mnist_bank, beta2=1.75, seed=7)(x)
    b = RBFReconstruction(mnist_bank, beta2=1.75, seed=7)(x)
    torch.testing.assert_close(a, b)


def test_fixed_noise_is_the_same_for_every_call_and_image(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:1])
    recon = RBFReconstruction(mnist_bank, beta2=1.75, noise_draw="fixed", copies=2, seed=0)
    assert not recon.stochastic
    torch.testing.assert_close(recon(x), recon(x))
    pair = recon(torch.cat([x, x]))
    torch.testing.assert_close(pair[0], pair[1])
    assert not torch.equal(recon(x, copy=0), recon(x, copy=1))
    with pytest.raises(ValueError, match="copy"):
        recon(x, copy=2)


def test_noise_scales_with_variance_or_sigma(toy_bank: RBFFilterBank) -> None:
    # a mid-grey image: every patch uses the sigma^2 = 0.3 filter, so the output noise std follows that filter
    x = torch.full((400, 1, 3, 3), 0.5)
    for variant, std in (("authors_code", 0.3), ("paper", math.sqrt(0.3))):
        recon = RBFReconstruction(toy_bank, beta1=125.0, beta2=0.2, noise_std=variant, clip=False, seed=0)
        measured = float((recon(x) - 0.5).std())
        assert measured == pytest.approx(0.2 * std, rel=0.1)


def test_exp_weighting_differs_from_base2(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:2])
    base2 = RBFReconstruction(mnist_bank, beta2=0.0, weighting="base2")(x)
    exp = RBFReconstruction(mnist_bank, beta2=0.0, weighting="exp")(x)
    assert not torch.allclose(base2, exp)
    scores = mnist_bank(x)
    torch.testing.assert_close(
        compute_weights(scores, 25.0, weighting="exp"), compute_weights(scores, 25.0 / math.log(2.0))
    )


def test_chunking_does_not_change_the_result(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:10])
    whole = RBFReconstruction(mnist_bank, beta2=0.0, chunk_size=100)(x)
    chunked = RBFReconstruction(mnist_bank, beta2=0.0, chunk_size=3)(x)
    torch.testing.assert_close(whole, chunked)


def test_bpda_gradient_is_the_beta2_zero_gradient(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:3])
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))

    def grad(module: RBFReconstruction, fn: str = "forward") -> torch.Tensor:
        xv = x.clone().requires_grad_(True)
        out = module(xv) if fn == "forward" else module.deterministic(xv)
        (g,) = torch.autograd.grad((out * weight).sum(), xv)
        return g

    bpda = RBFReconstruction(mnist_bank, beta2=1.75, gradient="bpda")
    reference = grad(bpda, "deterministic")
    g = grad(bpda)
    torch.testing.assert_close(g, reference)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    full = grad(RBFReconstruction(mnist_bank, beta2=1.75, gradient="full", seed=0))
    assert torch.isfinite(full).all() and not torch.allclose(full, reference)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta1": 0.0}, ValueError, "beta1"),
        ({"beta2": -1.0}, ValueError, "beta2"),
        ({"beta2": float("nan")}, ValueError, "beta2"),
        ({"beta1": "25"}, TypeError, "beta1"),
        ({"weighting": "e"}, ValueError, "weighting"),
        ({"noise_std": "sigma"}, ValueError, "noise_std"),
        ({"noise_draw": "per_call"}, ValueError, "noise_draw"),
        ({"gradient": "identity"}, ValueError, "gradient"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"clip": 1}, TypeError, "clip"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_parameter_errors(toy_bank: RBFFilterBank, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        RBFReconstruction(toy_bank, **kwargs)


def test_requires_a_filter_bank() -> None:
    with pytest.raises(TypeError, match="RBFFilterBank"):
        RBFReconstruction(torch.zeros(3))  # type: ignore[arg-type]

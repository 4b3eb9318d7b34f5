"""Soundness spot check: EoT PGD inside the certified Rényi radius never changes the smoothed prediction."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch, train_stn
from art_manifold_defenses.smoothing.sampling import make_generator, vote_counts


def eot_pgd_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor,
    *,
    sigma: float,
    steps: int,
    samples: int,
    seed: int,
) -> torch.Tensor:
    """l2 PGD on the cross-entropy averaged over Gaussian noise (EoT), per-image budget ``eps``, no clipping
    to [0, 1] (the certificate does not need it)."""
    gen = torch.Generator().manual_seed(seed)
    delta = torch.zeros_like(x)
    step = (2.5 * eps / steps).view(-1, 1, 1, 1)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = sum(
            nn.functional.cross_entropy(model(x + delta + sigma * torch.randn(x.shape, generator=gen)), y)
            for _ in range(samples)
        )
        (grad,) = torch.autograd.grad(loss, delta)  # type: ignore[arg-type]
        with torch.no_grad():
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = delta + step * grad / norm
            scale = (
                eps.view(-1, 1, 1, 1) / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            ).clamp(max=1.0)
            delta = delta * scale
    return (x + delta).detach()


def test_eot_pgd_inside_certified_radius_keeps_smoothed_prediction(
    mnist_small: tuple[np.ndarray, ...],
) -> None:
    x_train, y_train, x_test, y_test = mnist_small
    sigma = 0.5
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 12 * 12, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    train_stn(
        net,
        x_train,
        y_train,
        sigma=sigma,
        stability_weight=1.0,
        epochs=3,
        batch_size=64,
        verbose=False,
        seed=0,
    )
    net.eval()
    est = RenyiSmoothingPyTorch(
        net, nn.CrossEntropyLoss(), (1, 28, 28), 10, clip_values=(0.0, 1.0), device_type="cpu", scale=sigma
    )
    x = x_test[:50]
    pred, radius = est.certify(x, 500, batch_size=1100, n0=50, alpha=0.001, bound="renyi", seed=1)
    certified = radius > 0
    assert certified.sum() >= 25, f"only {certified.sum()} of 50 images certified"

    xt = torch.from_numpy(x[certified])
    target = torch.from_numpy(pred[certified])
    inside = torch.from_numpy(0.95 * radius[certified]).float()
    x_adv = eot_pgd_l2(net, xt, target, inside, sigma=sigma, steps=12, samples=4, seed=2)
    assert torch.all((x_adv - xt).flatten(1).norm(dim=1) <= inside + 1e-4)
    counts = vote_counts(
        net, x_adv, (1000,), sigma=sigma, num_classes=10, batch_size=4000, generator=make_generator(3, "cpu")
    )[:, 0]
    assert torch.equal(counts.argmax(1), target), "a certified smoothed prediction changed inside its radius"

    # the attack is not vacuous: with a budget far beyond the radius it changes smoothed predictions
    far = eot_pgd_l2(net, xt, target, torch.full_like(inside, 4.0), sigma=sigma, steps=12, samples=4, seed=2)
    far_counts = vote_counts(
        net, far, (500,), sigma=sigma, num_classes=10, batch_size=4000, generator=make_generator(4, "cpu")
    )[:, 0]
    assert (far_counts.argmax(1) != target).float().mean() > 0.5

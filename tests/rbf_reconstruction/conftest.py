"""Fixtures of the RBF-CNN tests: a small filter bank learned by EM on 1,000 real MNIST digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_manifold_defenses.rbf_reconstruction import RBFFilterBank, fit_rbf_filters


@pytest.fixture(scope="session")
def mnist_bank(mnist_small: tuple[np.ndarray, ...]) -> RBFFilterBank:
    """EM on real digits with a short schedule (small M-step blocks): about a dozen filters incl. the black
    one."""
    x_train = mnist_small[0]
    return fit_rbf_filters(
        x_train,
        desired_filters=10,
        max_steps=80,
        nonparametric_steps=60,
        batch_size=20,
        batches_per_step=5,
        verbose=False,
    )


@pytest.fixture
def toy_bank() -> RBFFilterBank:
    """Three well-separated 3x3 filters: black (variance at the floor), white (tight) and mid-grey (broad)."""
    means = torch.stack([torch.zeros(9), torch.full((9,), 0.99), torch.full((9,), 0.5)])
    return RBFFilterBank(means, torch.tensor([1e-20, 2.2e-4, 0.3]), patch_size=3, in_channels=1)

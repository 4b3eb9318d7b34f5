"""Shared fixtures: small real MNIST batches and tiny models, all on CPU."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

torch.set_num_threads(int(os.environ.get("AMD_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)
    np.random.seed(1234)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A per-session data folder (the embedded MNIST cache is written there)."""
    return str(tmp_path_factory.mktemp("amd-data"))


@pytest.fixture(scope="session")
def mnist_small(data_root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embedded real MNIST: 1,000 training and 200 test images (float32 NCHW in [0, 1], int64 labels)."""
    from art_manifold_defenses.data import load_dataset

    x_train, y_train = load_dataset("mnist-embedded", "train", root=data_root)
    x_test, y_test = load_dataset("mnist-embedded", "test", root=data_root)
    return x_train[:1000], y_train[:1000], x_test[:200], y_test[:200]


def tiny_cnn(in_channels: int = 1, num_classes: int = 10, size: int = 28) -> nn.Module:
    """A tiny CNN (ReLU modules) for fast tests."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * ((size - 5) // 2 + 1) ** 2, 32),
        nn.ReLU(),
        nn.Linear(32, num_classes),
    )


@pytest.fixture
def tiny_model() -> nn.Module:
    return tiny_cnn()


@pytest.fixture(scope="session")
def trained_tiny(mnist_small: tuple[np.ndarray, ...]) -> nn.Module:
    """A tiny CNN trained briefly on 1,000 embedded MNIST images (about 90% test accuracy), shared by
    tests."""
    from art_manifold_defenses.training import train

    x_train, y_train, _, _ = mnist_small
    torch.manual_seed(0)
    model = tiny_cnn()
    train(model, x_train, y_train, epochs=4, batch_size=64, verbose=False, seed=0)
    return model.eval()

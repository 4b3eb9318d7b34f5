"""Segmentation path: synthetic shapes, Dice, DAG, and a mapped U-Net trained on the task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.models.small_nets import UNet
from art_manifold_defenses.radial_mapping import add_radial_mapping, mapping_blocks
from art_manifold_defenses.radial_mapping.segmentation import (
    DenseAdversaryGeneration,
    dice_score,
    make_shapes_dataset,
    segmentation_dice,
    train_segmentation,
)


def test_shapes_dataset_is_reproducible_and_valid() -> None:
    x, m = make_shapes_dataset(12, size=16, seed=3)
    x2, m2 = make_shapes_dataset(12, size=16, seed=3)
    assert x.shape == (12, 3, 16, 16) and m.shape == (12, 16, 16)
    assert x.dtype == np.float32 and m.dtype == np.int64
    assert np.array_equal(x, x2) and np.array_equal(m, m2)
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(m)) == {0, 1}
    assert not np.array_equal(make_shapes_dataset(12, size=16, seed=4)[1], m)
    with pytest.raises(ValueError, match="size"):
        make_shapes_dataset(2, size=4)
    with pytest.raises(ValueError, match="noise"):
        make_shapes_dataset(2, noise=2.0)


def test_dice_by_hand() -> None:
    target = np.array([[[1, 1, 0], [0, 0, 0]]])
    prediction = np.array([[[1, 0, 0], [1, 0, 0]]])
    assert dice_score(prediction, target)[0] == pytest.approx(2 * 1 / (2 + 2))
    assert dice_score(target, target)[0] == 1.0
    assert dice_score(np.zeros((1, 2, 3), int), np.zeros((1, 2, 3), int))[0] == 1.0  # both empty
    assert dice_score(1 - target, target)[0] == 0.0
    with pytest.raises(ValueError, match="same shape"):
        dice_score(target, target[:, :1])


def test_dag_reaches_adversarial_labels_on_a_linear_model() -> None:
    """On a per-pixel linear model DAG flips the prediction of every pixel within a few gamma steps."""
    model = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[[[-4.0]]], [[[4.0]]]]))
        model.bias.copy_(torch.tensor([2.0, -2.0]))  # class 1 iff x > 0.5
    x = np.full((2, 1, 4, 4), 0.45, dtype=np.float32)
    y = np.zeros((2, 4, 4), dtype=np.int64)
    attack = DenseAdversaryGeneration(model, iterations=5, gamma=0.03, verbose=False)
    x_adv = attack.generate(x, y)
    with torch.no_grad():
        pred = model(torch.from_numpy(x_adv)).argmax(1).numpy()
    assert (pred == 1).all()
    assert np.abs(x_adv - x).max() <= 5 * 0.03 + 1e-6
    with pytest.raises(ValueError, match="gamma"):
        DenseAdversaryGeneration(model, gamma=0.0)
    with pytest.raises(ValueError, match="iterations"):
        DenseAdversaryGeneration(model, iterations=0)
    with pytest.raises(ValueError, match="target"):
        DenseAdversaryGeneration(model, target="everything")
    with pytest.raises(ValueError, match="label maps"):
        attack.generate(x, y[:, :2])
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        attack.generate(x + 2.0, y)


def test_mapped_unet_trains_and_dag_lowers_dice() -> None:
    torch.manual_seed(0)
    x, m = make_shapes_dataset(128, size=16, seed=0)
    x_test, m_test = make_shapes_dataset(24, size=16, seed=1)
    model = add_radial_mapping(UNet(3, 2, 16, base_width=8, depth=2), after="blocks", seed=0)
    assert len(mapping_blocks(model)) == 5
    before = segmentation_dice(model, x_test, m_test)[0]
    history = train_segmentation(
        model, x, m, epochs=8, optimizer="adam", learning_rate=3e-3, verbose=False, seed=0
    )
    assert history[-1]["loss"] < history[0]["loss"]
    clean, stderr = segmentation_dice(model, x_test, m_test)
    assert clean > 0.5 and clean > before and stderr >= 0
    x_adv = DenseAdversaryGeneration(model, iterations=10, gamma=0.03, verbose=False).generate(x_test, m_test)
    attacked = segmentation_dice(model, x_adv, m_test)[0]
    assert attacked < clean - 0.1

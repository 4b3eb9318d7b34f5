"""RBFFilterBank: match scores (eq. 2) against a per-patch reference, numerical safety, save/load, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from art_manifold_defenses.rbf_reconstruction import RBFFilterBank, extract_patches


def naive_scores(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor, k: int) -> torch.Tensor:
    n, c, h, w = x.shape
    out = torch.empty(n, means.shape[0], h - k + 1, w - k + 1, dtype=torch.float64)
    for i in range(n):
        for r in range(h - k + 1):
            for s in range(w - k + 1):
                z = x[i, :, r : r + k, s : s + k].reshape(-1).double()
                for j in range(means.shape[0]):
                    d2 = ((z - means[j].double()) ** 2).sum()
                    out[i, j, r, s] = -d2 / (2 * variances[j].double()) - 0.5 * math.log(float(variances[j]))
    return out


@pytest.mark.parametrize("exact", [False, True])
def test_scores_match_per_patch_reference(exact: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, 6, 5, generator=gen)
    means = torch.rand(4, 2 * 9, generator=gen)
    variances = torch.rand(4, generator=gen) + 0.1
    bank = RBFFilterBank(means, variances, patch_size=3, in_channels=2)
    np.testing.assert_allclose(
        bank(x).double().numpy(), naive_scores(x, means, variances, 3).numpy(), rtol=1e-4, atol=1e-4
    )


def test_fast_scores_agree_with_exact_scores_on_digits(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:16])
    fast, exact = torch.sigmoid(mnist_bank(x)), torch.sigmoid(mnist_bank(x, exact=True))
    assert float((fast - exact).abs().max()) < 2e-3


def test_patch_layout_matches_means_layout() -> None:
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4) / 32
    patches = extract_patches(x, 3)
    assert patches.shape == (1, 4, 18)
    np.testing.assert_array_equal(patches[0, 0].numpy(), x[0, :, :3, :3].reshape(-1).numpy())


def test_background_filters_are_finite_forward_and_backward(toy_bank: RBFFilterBank) -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:, :] = 1.0  # half black, half white
    x[..., 2, 2] = 0.37
    x.requires_grad_(True)
    scores = toy_bank(x)
    assert torch.isfinite(scores).all()
    # the exactly-black patch scores +23 on the floor-variance filter (-ln sigma = 23.03), anything else ~
    # -1e19
    assert scores[0, 0, 0, 5].item() == pytest.approx(-0.5 * math.log(1e-20), rel=1e-5)
    assert scores[0, 0, 1, 1].item() < -1e15
    torch.sigmoid(scores).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_save_load_round_trip(tmp_path, toy_bank: RBFFilterBank) -> None:
    path = toy_bank.save(tmp_path / "bank.npz")
    loaded = RBFFilterBank.load(path)
    assert loaded.config() == toy_bank.config()
    assert torch.equal(loaded.means, toy_bank.means) and torch.equal(loaded.variances, toy_bank.variances)


def test_buffers_are_in_state_dict(toy_bank: RBFFilterBank) -> None:
    state = toy_bank.state_dict()
    assert set(state) == {"means", "variances"}
    empty = RBFFilterBank(num_filters=3)
    empty.load_state_dict(state)
    assert torch.equal(empty.means, toy_bank.means)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"means": torch.zeros(2, 8), "variances": torch.ones(2)}, "means must have shape"),
        ({"means": torch.zeros(2, 9), "variances": torch.ones(3)}, "variances must have shape"),
        ({"means": torch.zeros(2, 9), "variances": torch.tensor([1.0, 0.0])}, "variances must be positive"),
        ({"means": torch.full((1, 9), float("nan")), "variances": torch.ones(1)}, "finite"),
        ({"means": torch.zeros(1, 9)}, "together"),
        ({}, "num_filters"),
        ({"num_filters": 2, "patch_size": 0}, "patch_size"),
    ],
)
def test_constructor_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RBFFilterBank(**kwargs)


def test_bad_input_errors(toy_bank: RBFFilterBank) -> None:
    with pytest.raises(ValueError, match="shape"):
        toy_bank(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        toy_bank(torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        toy_bank(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        toy_bank(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="smaller"):
        toy_bank(torch.zeros(1, 1, 2, 8))
    with pytest.raises(TypeError):
        toy_bank(np.zeros((1, 1, 8, 8)))


def test_load_rejects_other_files(tmp_path) -> None:
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        RBFFilterBank.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        RBFFilterBank.load(tmp_path / "absent.npz")

"""Non-parametric EM: recovery of known clusters, M-step rules, the adaptive threshold, argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from art_manifold_defenses.rbf_reconstruction import fit_rbf_filters
from art_manifold_defenses.rbf_reconstruction.em import (
    e_step,
    m_step,
    score_matrix,
    update_creation_threshold,
)
from art_manifold_defenses.rbf_reconstruction.filter_bank import match_scores


def synthetic_cluster_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3x3 images, each a single patch drawn from one of four known clusters (std 0.02)."""
    rng = np.random.default_rng(seed)
    centres = np.array(
        [np.zeros(9), np.full(9, 0.9), np.tile([0.1, 0.8, 0.1], 3), np.repeat([0.1, 0.8, 0.1], 3)]
    )
    labels = rng.integers(0, 4, size=n)
    patches = centres[labels] + rng.normal(0, 0.02, size=(n, 9))
    return np.clip(patches, 0, 1).reshape(n, 1, 3, 3).astype(np.float32), centres


def test_em_recovers_known_cluster_means() -> None:
    x, centres = synthetic_cluster_images(4000)
    bank = fit_rbf_filters(
        x,
        desired_filters=3,
        max_steps=200,
        nonparametric_steps=160,
        batch_size=200,
        batches_per_step=5,
        verbose=False,
    )
    means = bank.means.numpy()
    assert 4 <= bank.num_filters <= 8
    for centre in centres:  # every true cluster has a filter at (almost) its mean
        assert np.linalg.norm(means - centre, axis=1).min() < 0.05
    heavy = [h["filters"] for h in bank.fit_history]
    assert heavy[0] == 1 and max(heavy) >= 4


def test_em_on_real_digits_learns_black_filter(mnist_bank) -> None:
    assert 5 <= mnist_bank.num_filters <= 40
    black = int(torch.argmin(mnist_bank.means.abs().sum(1)))
    assert float(mnist_bank.means[black].abs().max()) == 0.0
    assert float(mnist_bank.variances[black]) == pytest.approx(1e-20)


def test_fixed_count_phase_keeps_filter_count() -> None:
    x, _ = synthetic_cluster_images(2000, seed=1)
    bank = fit_rbf_filters(
        x,
        desired_filters=3,
        max_steps=60,
        nonparametric_steps=30,
        batch_size=200,
        batches_per_step=5,
        verbose=False,
    )
    counts = [h["filters"] for h in bank.fit_history[30:]]
    assert len(set(counts)) == 1


def test_seeded_runs_are_reproducible() -> None:
    x, _ = synthetic_cluster_images(1000, seed=2)
    kw = {
        "max_steps": 20,
        "batch_size": 100,
        "batches_per_step": 2,
        "verbose": False,
        "shuffle": True,
        "seed": 3,
    }
    a, b = fit_rbf_filters(x, **kw), fit_rbf_filters(x, **kw)
    assert torch.equal(a.means, b.means)


def test_score_matrix_agrees_with_network_scores() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 7, 7, generator=gen)
    means, variances = torch.rand(5, 9, generator=gen), torch.rand(5, generator=gen) + 0.05
    patches = torch.nn.functional.unfold(x, 3).transpose(1, 2).reshape(-1, 9)
    reference = (
        match_scores(x, means, variances, patch_size=3, in_channels=1).permute(0, 2, 3, 1).reshape(-1, 5)
    )
    torch.testing.assert_close(score_matrix(patches, means, variances), reference, rtol=1e-4, atol=1e-4)


def test_m_step_deletes_empty_filters_and_creates_one_from_new_bucket() -> None:
    means = torch.tensor([[0.0] * 9, [0.5] * 9, [1.0] * 9])
    variances = torch.tensor([0.01, 0.01, 0.01])
    far = torch.full((50, 9), 0.25)  # far from every filter -> new bucket
    near_zero = torch.zeros(100, 9)
    stats = e_step(torch.cat([near_zero, far]), means, variances, log_alpha=0.0)
    assert stats.count.tolist() == [100.0, 0.0, 0.0, 50.0]
    new_means, new_vars, share, deleted, created = m_step(
        means, variances, stats, allow_new=True, count_threshold=1, new_share_threshold=1e-3
    )
    assert deleted == 2 and created and share == pytest.approx(50 / 150)
    torch.testing.assert_close(new_means, torch.stack([torch.zeros(9), torch.full((9,), 0.25)]))
    assert new_vars[0].item() == pytest.approx(1e-20)
    _, _, _, _, created_fixed = m_step(
        means, variances, stats, allow_new=False, count_threshold=1, new_share_threshold=1e-3
    )
    assert not created_fixed


def test_m_step_variance_is_mean_squared_distance() -> None:
    gen = torch.Generator().manual_seed(0)
    patches = 0.5 + 0.1 * torch.randn(500, 9, generator=gen)
    means, variances = torch.full((1, 9), 0.4), torch.ones(1)
    stats = e_step(patches, means, variances, log_alpha=-math.inf)
    new_means, new_vars, *_ = m_step(
        means, variances, stats, allow_new=False, count_threshold=1, new_share_threshold=1e-3
    )
    torch.testing.assert_close(new_means[0], patches.mean(0), rtol=1e-5, atol=1e-5)
    expected = ((patches - patches.mean(0)) ** 2).sum(1).mean()
    assert new_vars[0].item() == pytest.approx(expected.item(), rel=1e-4)


def test_creation_threshold_equilibrium() -> None:
    # with no new patches alpha is stationary at J = ln(5.913) J_desired ~ 1.78 J_desired
    j_star = math.log(0.6913 / 0.05 / 2 - 1) * 10
    assert update_creation_threshold(1.0, int(j_star) - 2, 10, 0.0) > 1.0
    assert update_creation_threshold(1.0, int(j_star) + 2, 10, 0.0) < 1.0
    assert update_creation_threshold(1.0, 1, 10, 0.05) == pytest.approx(0.95, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch_size": 0}, "patch_size"),
        ({"max_steps": 0}, "max_steps"),
        ({"desired_filters": -1}, "desired_filters"),
        ({"nonparametric_steps": -2}, "nonparametric_steps"),
        ({"new_share_threshold": 1.5}, "new_share_threshold"),
        ({"init": "zeros"}, "init"),
    ],
)
def test_argument_errors(kwargs: dict, match: str) -> None:
    x = np.zeros((4, 1, 5, 5), np.float32)
    with pytest.raises(ValueError, match=match):
        fit_rbf_filters(x, verbose=False, **kwargs)


def test_bad_images_raise() -> None:
    with pytest.raises(ValueError, match="lie in"):
        fit_rbf_filters(np.full((2, 1, 5, 5), 2.0, np.float32), verbose=False)
    with pytest.raises(ValueError, match="dimensions"):
        fit_rbf_filters(np.zeros((2, 5, 5), np.float32), verbose=False)
    with pytest.raises(ValueError, match="smaller"):
        fit_rbf_filters(np.zeros((2, 1, 2, 2), np.float32), verbose=False)


def test_a_small_set_is_one_block_per_m_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22 item 2: fewer images than ``batch_size * batches_per_step`` (750) make one block per M-step
    (every image once), so a small set costs in proportion to its size; ``block_to_data=False`` keeps the
    authors' stream, which repeats the images to fill 750; a large set is unaffected."""
    from art_manifold_defenses.rbf_reconstruction import em

    seen: list[int] = []
    original = em.e_step

    def counting(patches: torch.Tensor, *args: object, **kwargs: object) -> object:
        seen.append(int(patches.shape[0]))
        return original(patches, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(em, "e_step", counting)
    x = np.random.default_rng(0).random((30, 1, 6, 6), dtype=np.float32)  # 16 patches of 3x3 per image
    fit_rbf_filters(x, max_steps=3, verbose=False)
    assert seen == [30 * 16] * 3
    seen.clear()
    fit_rbf_filters(x, max_steps=3, verbose=False, block_to_data=False)
    assert seen == [750 * 16] * 3
    seen.clear()
    fit_rbf_filters(np.zeros((800, 1, 3, 3), np.float32), max_steps=2, verbose=False)
    assert seen == [750] * 2
    with pytest.raises(TypeError, match="block_to_data"):
        fit_rbf_filters(x, verbose=False, block_to_data=1)  # type: ignore[arg-type]

"""Per-image noise streams: an image's noise depends only on (seed, its global index), whatever the
batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch
from art_manifold_defenses.smoothing.sampling import (
    SEED_MULTIPLIER,
    default_draw_size,
    image_seed,
    image_seeds,
    vote_counts,
)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
    ).eval()


def make_estimator(**kw: object) -> RenyiSmoothingPyTorch:
    params: dict[str, object] = {"clip_values": (0.0, 1.0), "device_type": "cpu", "scale": 0.5, "seed": 11}
    params.update(kw)
    return RenyiSmoothingPyTorch(small_net(), nn.CrossEntropyLoss(), (1, 28, 28), 10, **params)  # type: ignore[arg-type]


def images(count: int) -> np.ndarray:
    return np.random.default_rng(0).random((count, 1, 28, 28), dtype=np.float32)


class Recorder(nn.Module):
    """Records every batch it classifies; votes class 0 (the noise itself is what the tests look at)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.clone())
        return torch.zeros(len(x), 10)


def test_image_seed_formula_and_spread() -> None:
    assert image_seed(0, 7) == 7
    assert image_seed(3, 5) == (3 * SEED_MULTIPLIER + 5) % 2**63
    assert image_seeds(3, [5, 6]) == [image_seed(3, 5), image_seed(3, 6)]
    seeds = [image_seed(s, i) for s in range(20) for i in range(5000)]
    assert all(0 <= v < 2**63 for v in seeds)
    # torch's CPU generator keeps the low 32 bits of a seed: those must differ for every (seed, index) here
    assert len({v % 2**32 for v in seeds}) == len(seeds)
    with pytest.raises(ValueError, match="index"):
        image_seed(0, -1)
    with pytest.raises(ValueError, match="seed"):
        image_seed(-2, 0)


def test_certify_counts_do_not_depend_on_the_other_images_or_the_batches() -> None:
    est = make_estimator()
    x = images(10)
    sel, cnt = est.certify_counts(x, 30, batch_size=16, n0=7)
    assert sel.sum(1).tolist() == [7] * 10 and cnt.sum(1).tolist() == [30] * 10
    assert len({tuple(c) for c in cnt}) > 1  # the counts are not trivially constant
    sel_a, cnt_a = est.certify_counts(x[:5], 30, batch_size=16, n0=7)
    sel_b, cnt_b = est.certify_counts(x[5:], 30, batch_size=16, n0=7, indices=range(5, 10))
    np.testing.assert_array_equal(np.concatenate([sel_a, sel_b]), sel)
    np.testing.assert_array_equal(np.concatenate([cnt_a, cnt_b]), cnt)
    # nor on the batch size, nor on the order of the images
    for batch_size in (5, 37, 1000):
        sel_c, cnt_c = est.certify_counts(x, 30, batch_size=batch_size, n0=7)
        np.testing.assert_array_equal(sel_c, sel)
        np.testing.assert_array_equal(cnt_c, cnt)
    order = np.array([9, 2, 4, 0, 7])
    sel_d, cnt_d = est.certify_counts(x[order], 30, batch_size=16, n0=7, indices=order)
    np.testing.assert_array_equal(cnt_d, cnt[order])
    np.testing.assert_array_equal(sel_d, sel[order])
    # the index, not the pixels, picks the noise: the same image under another index gets other votes
    _, cnt_e = est.certify_counts(np.repeat(x[:1], 6, axis=0), 30, batch_size=16, n0=7)
    assert len({tuple(c) for c in cnt_e}) > 1
    # and the seed changes everything
    _, cnt_f = est.certify_counts(x, 30, batch_size=16, n0=7, seed=12)
    assert not np.array_equal(cnt_f, cnt)


def test_certify_in_parts_equals_certify_at_once() -> None:
    est = make_estimator(scale=0.25)
    x = images(6)
    pred, radii = est.certify(x, 60, batch_size=50, n0=10, bound="all", alpha=0.01)
    assert isinstance(radii, dict)
    for part in (slice(0, 2), slice(2, 6)):
        p, r = est.certify(
            x[part], 60, batch_size=50, n0=10, bound="all", alpha=0.01, indices=np.arange(6)[part]
        )
        assert isinstance(r, dict)
        np.testing.assert_array_equal(p, pred[part])
        for b in radii:
            np.testing.assert_array_equal(r[b], radii[b][part])


def test_predict_uses_the_same_per_image_seeds() -> None:
    est = make_estimator(sample_size=40)
    x = images(6)
    whole = est.predict(x, batch_size=64, is_abstain=False)
    parts = np.concatenate(
        [
            est.predict(x[:3], batch_size=64, is_abstain=False),
            est.predict(x[3:], batch_size=64, is_abstain=False, indices=[3, 4, 5]),
        ]
    )
    np.testing.assert_array_equal(whole, parts)


@pytest.mark.parametrize("batch_size", [4, 13, 64])
def test_noise_is_each_images_own_stream_in_draws(batch_size: int) -> None:
    """With clean images 0 and sigma 1 the classified batches are the noise itself: image i's samples are the
    consecutive ``normal_`` draws of ``draw_size`` samples from a generator seeded with ``seeds[i]``. (9
    values per sample: torch's CPU ``normal_`` gives other values when a call is cut at a multiple of 16
    values or not.)"""
    recorder = Recorder()
    x = torch.zeros(3, 1, 3, 3)
    seeds = [5, 123, 2**40 + 9]
    phases, draw = (3, 8), 5
    counts = vote_counts(
        recorder, x, phases, sigma=1.0, num_classes=10, batch_size=batch_size, seeds=seeds, draw_size=draw
    )
    assert counts[:, :, 0].tolist() == [[3, 8]] * 3 and int(counts.sum()) == 33
    seen = torch.cat(recorder.batches)
    assert [len(b) for b in recorder.batches[:-1]] == [batch_size] * (
        len(recorder.batches) - 1
    )  # full batches
    for i, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(seed)
        expected = torch.cat([torch.empty(k, 1, 3, 3).normal_(generator=gen) for k in (5, 5, 1)])
        torch.testing.assert_close(seen[11 * i : 11 * (i + 1)], expected, rtol=0, atol=0)
    assert len({tuple(row.flatten().tolist()) for row in seen}) == 33  # every sample a fresh draw


def test_votes_go_to_the_right_image_and_phase_and_noise_has_std_sigma() -> None:
    class MeanThreshold(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(len(x), 10)
            logits[:, 3] = torch.where(x.mean(dim=(1, 2, 3)) > 0.5, 1.0, -1.0)
            self.std = float(x[0].std())
            return logits

    x = torch.cat(
        [torch.full((2, 1, 28, 28), 0.9), torch.full((3, 1, 28, 28), 0.1), torch.full((1, 1, 28, 28), 0.9)]
    )
    net = MeanThreshold()
    done: list[int] = []
    counts = vote_counts(
        net,
        x,
        (0, 17),
        sigma=0.3,
        num_classes=10,
        batch_size=10,
        seeds=image_seeds(1, range(6)),
        progress=done.append,
    )
    assert counts[:, 0].sum() == 0  # an empty phase (n0 = 0) gets no votes
    assert counts[:, 1, 3].tolist() == [17, 17, 0, 0, 0, 17] and counts[:, 1, 0].tolist() == [
        0,
        0,
        17,
        17,
        17,
        0,
    ]
    assert sum(done) == 6
    assert net.std == pytest.approx(0.3, rel=0.1)


def test_default_draw_size_depends_only_on_the_sample_shape() -> None:
    assert default_draw_size((1, 28, 28)) == 2**18 // 784
    assert default_draw_size((3, 224, 224)) == 1


def test_indices_validation() -> None:
    est = make_estimator()
    x = images(3)
    with pytest.raises(ValueError, match="indices"):
        est.certify_counts(x, 10, indices=[0, 1])
    with pytest.raises(ValueError, match="indices"):
        est.certify_counts(x, 10, indices=[0, -1, 2])
    with pytest.raises(ValueError, match="indices"):
        est.certify(x, 10, indices=[0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match="seeds"):
        vote_counts(
            Recorder(), torch.zeros(2, 1, 4, 4), (3,), sigma=1.0, num_classes=10, batch_size=4, seeds=[1]
        )

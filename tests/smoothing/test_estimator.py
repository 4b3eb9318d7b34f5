"""RenyiSmoothingPyTorch: streamed counts, certify, predict with abstention, fit, EoT gradients, module
view."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch, SmoothedClassifier, certify_from_counts
from art_manifold_defenses.smoothing.sampling import make_generator, vote_counts


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 12 * 12, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


class ThresholdNet(nn.Module):
    """Class 1 if the mean pixel exceeds 0.5, else class 0 (10 classes, the others never win)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        logits = torch.full((len(x), 10), -10.0, device=x.device)
        logits[:, 1] = 50 * (m - 0.5)
        logits[:, 0] = 0.0
        return logits


def make_estimator(model: nn.Module, **kw: object) -> RenyiSmoothingPyTorch:
    params: dict[str, object] = {
        "clip_values": (0.0, 1.0),
        "device_type": "cpu",
        "scale": 0.5,
        "sample_size": 50,
        "seed": 0,
    }
    params.update(kw)
    return RenyiSmoothingPyTorch(model, nn.CrossEntropyLoss(), (1, 28, 28), 10, **params)  # type: ignore[arg-type]


def test_vote_counts_streams_in_full_batches_one_pass_per_sample() -> None:
    seen: list[int] = []

    def classify(b: torch.Tensor) -> torch.Tensor:
        seen.append(len(b))
        return ThresholdNet()(b)

    x = torch.rand(7, 1, 28, 28)
    counts = vote_counts(
        classify, x, (3, 40), sigma=0.1, num_classes=10, batch_size=32, generator=make_generator(0, "cpu")
    )
    assert counts.shape == (7, 2, 10)
    assert counts[:, 0].sum(1).tolist() == [3] * 7 and counts[:, 1].sum(1).tolist() == [40] * 7
    assert sum(seen) == 7 * 43 and max(seen) <= 32 and seen[:-1] == [32] * (len(seen) - 1)


def test_vote_counts_assign_votes_to_the_right_image() -> None:
    x = torch.cat([torch.full((3, 1, 28, 28), 0.9), torch.full((3, 1, 28, 28), 0.1)])
    counts = vote_counts(ThresholdNet(), x, (5, 100), sigma=0.05, num_classes=10, batch_size=64)
    assert counts[:3, :, 1].sum() == 3 * 105 and counts[3:, :, 0].sum() == 3 * 105


def test_certify_matches_counts_and_is_reproducible() -> None:
    est = make_estimator(ThresholdNet(), scale=0.25)
    x = np.concatenate([np.full((2, 1, 28, 28), 0.52, np.float32), np.full((2, 1, 28, 28), 0.1, np.float32)])
    pred, radii = est.certify(x, 500, batch_size=256, n0=50, bound="all", alpha=0.001, seed=3)
    assert pred.tolist() == [1, 1, 0, 0]
    assert set(radii) == {"renyi", "cohen", "pixeldp"}
    # the smoothed probability of class 1 at mean 0.52 is Phi(0.02 * 28 / 0.25) ~ 0.987 (noise on the mean has
    # std 0.25 / 28), so every bound certifies a positive radius, below the true Cohen radius 0.02 * 28
    for b in radii:
        assert np.all(radii[b] > 0)
    assert np.all(radii["cohen"][:2] < 0.02 * 28)
    assert np.all(radii["renyi"] >= radii["pixeldp"])
    sel, cnt = est.certify_counts(x, 500, 256, n0=50, seed=3)
    cert = certify_from_counts(sel[0], cnt[0], sigma=0.25, alpha=0.001)
    assert radii["renyi"][0] == pytest.approx(cert.radius["renyi"])
    pred2, radii2 = est.certify(x, 500, batch_size=256, n0=50, bound="all", alpha=0.001, seed=3)
    np.testing.assert_array_equal(radii["renyi"], radii2["renyi"])
    single_pred, single = est.certify(x, 500, batch_size=256, n0=50, bound="cohen", alpha=0.001, seed=3)
    np.testing.assert_allclose(single, radii["cohen"])
    # at the decision boundary the smoothed classifier abstains (p_A ~ 1/2)
    p, r = est.certify(np.full((1, 1, 28, 28), 0.5, np.float32), 200, n0=20, bound="cohen")
    assert p.tolist() == [-1] and r.tolist() == [0.0]


def test_predict_abstains_only_near_the_boundary() -> None:
    est = make_estimator(ThresholdNet(), scale=0.25, sample_size=200, alpha=0.001)
    x = np.stack([np.full((1, 28, 28), v, np.float32) for v in (0.9, 0.5, 0.1)])
    out = est.predict(x, batch_size=128)
    assert out.shape == (3, 10)
    assert out[0].argmax() == 1 and out[0].sum() == 1
    assert out[1].sum() == 0  # abstained
    assert out[2].argmax() == 0
    assert est.predict(x, is_abstain=False)[1].sum() == 1


def test_fit_with_stn_trains_and_preprocessing_runs_after_noise(mnist_small: tuple[np.ndarray, ...]) -> None:
    from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

    class Recorder(PreprocessorPyTorch):
        def __init__(self) -> None:
            super().__init__(device_type="cpu", apply_fit=True, apply_predict=True)
            self.stds: list[float] = []
            self.training_steps: list[bool] = []

        def forward(self, x: torch.Tensor, y: object = None) -> tuple[torch.Tensor, object]:
            self.stds.append(float((x - x.mean()).std()))
            self.training_steps.append(
                torch.is_grad_enabled()
            )  # False for the loop's collapse check on clean images
            return x, y

    x_train, y_train, x_test, y_test = mnist_small
    net = small_net()
    rec = Recorder()
    est = make_estimator(
        net, optimizer=torch.optim.Adam(net.parameters(), lr=3e-3), preprocessing_defences=[rec], scale=0.4
    )
    before = [p.detach().clone() for p in net.parameters()]
    est.fit(x_train, y_train, batch_size=64, nb_epochs=3, stability_weight=1.0)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert any(rec.training_steps)
    # the preprocessor saw noisy inputs in every training step (noise std 0.4 on top of the images)
    assert min(std for std, step in zip(rec.stds, rec.training_steps, strict=True) if step) > 0.4
    rec.stds.clear()
    est.predict(x_test[:2], batch_size=50)
    assert min(rec.stds) > 0.4
    votes = est.predict(x_test[:40], is_abstain=False, n=20).argmax(1)
    assert np.mean(votes == y_test[:40]) > 0.6


def test_loss_gradient_is_the_eot_average() -> None:
    net = small_net().eval()
    est = make_estimator(net, eot_samples=7, seed=5)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    y = np.array([1, 2, 3])
    grad = est.loss_gradient(x, y)
    gen = make_generator(5, "cpu")  # the same noise stream, by hand
    manual = torch.zeros(3, 1, 28, 28)
    for _ in range(7):
        xv = torch.from_numpy(x).requires_grad_(True)
        noise = torch.randn(xv.shape, generator=gen)
        loss = nn.functional.cross_entropy(net(xv + 0.5 * noise), torch.from_numpy(y))
        manual += torch.autograd.grad(loss, xv)[0]
    np.testing.assert_allclose(grad, (manual / 7).numpy(), rtol=1e-4, atol=1e-8)
    # one-hot labels give the same, and the gradient is not the base classifier's
    est2 = make_estimator(net, eot_samples=7, seed=5)
    np.testing.assert_allclose(est2.loss_gradient(x, np.eye(10)[y]), grad, rtol=1e-5, atol=1e-9)
    xv = torch.from_numpy(x).requires_grad_(True)
    base = torch.autograd.grad(nn.functional.cross_entropy(net(xv), torch.from_numpy(y)), xv)[0].numpy()
    assert not np.allclose(base, grad)
    assert est.class_gradient(x, label=[0, 1, 2]).shape == (3, 1, 1, 28, 28)


def test_smoothed_module_view() -> None:
    est = make_estimator(ThresholdNet(), scale=0.25)
    module = est.smoothed_module()
    assert isinstance(module, SmoothedClassifier) and module.stochastic is True
    x = torch.full((4, 1, 28, 28), 0.9)
    assert module(x).shape == (4, 10)
    assert module.predict_vote(x, n=20).tolist() == [1, 1, 1, 1]
    soft = SmoothedClassifier(ThresholdNet(), 0.25, samples=5)(x)
    assert torch.allclose(soft.exp().sum(1), torch.ones(4), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": -1.0}, "scale"),
        ({"sample_size": 0}, "sample_size"),
        ({"alpha": 2.0}, "alpha"),
        ({"eot_samples": 0}, "eot_samples"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_estimator(ThresholdNet(), **kwargs)


def test_input_validation() -> None:
    est = make_estimator(ThresholdNet())
    good = np.zeros((1, 1, 28, 28), np.float32)
    with pytest.raises(ValueError, match="x"):
        est.certify(np.zeros((0, 1, 28, 28), np.float32), 10)
    with pytest.raises(ValueError, match="x"):
        est.certify(np.full((1, 1, 28, 28), np.nan, np.float32), 10)
    with pytest.raises(ValueError, match="x"):
        est.certify(np.full((1, 1, 28, 28), 2.0, np.float32), 10)
    with pytest.raises(ValueError, match="shape"):
        est.certify(np.zeros((1, 1, 20, 20), np.float32), 10)
    with pytest.raises(ValueError, match="bound"):
        est.certify(good, 10, bound="lecuyer")
    with pytest.raises(ValueError, match="interval"):
        est.certify(good, 10, interval="wald")
    with pytest.raises(ValueError, match="n must"):
        est.certify(good, 0)
    with pytest.raises(ValueError, match="optimizer"):
        est.fit(good, np.array([0]))
    with pytest.raises(TypeError, match="base"):
        SmoothedClassifier("not a module", 0.5)  # type: ignore[arg-type]


def test_identity_standardisation_is_skipped_and_others_are_applied() -> None:
    from art.preprocessing.standardisation_mean_std.pytorch import StandardisationMeanStdPyTorch

    net = small_net().eval()
    x = torch.rand(3, 1, 28, 28)
    default = make_estimator(net)  # ART turns preprocessing=(0, 1) into a StandardisationMeanStdPyTorch
    assert any(isinstance(op, StandardisationMeanStdPyTorch) for op in default.preprocessing_operations)
    assert default.active_preprocessing == []
    with torch.no_grad():
        torch.testing.assert_close(default.base_logits(x), net(x), rtol=0, atol=0)
        shifted = make_estimator(net, preprocessing=(0.25, 0.5))
        assert len(shifted.active_preprocessing) == 1
        torch.testing.assert_close(shifted.base_logits(x), net((x - 0.25) / 0.5))

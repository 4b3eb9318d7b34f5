"""RBFReconstructionPyTorch inside ART: BPDA gradients through PyTorchClassifier, ART PGD, numpy path,
errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from torch import nn

from art_manifold_defenses.estimator import to_art_classifier
from art_manifold_defenses.rbf_reconstruction import RBFFilterBank, RBFReconstructionPyTorch


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 12 * 12, 10))


@pytest.fixture
def defended(mnist_bank: RBFFilterBank):
    pre = RBFReconstructionPyTorch(mnist_bank, seed=0, device_type="cpu")
    return pre, to_art_classifier(
        small_cnn(), input_shape=(1, 28, 28), nb_classes=10, preprocessing_defences=[pre]
    )


def test_gradients_through_art_are_finite_and_nonzero_on_real_digits(mnist_small, defended) -> None:
    _, classifier = defended
    x, y = mnist_small[2][:8], mnist_small[3][:8]
    grad = classifier.loss_gradient(x, np.eye(10, dtype=np.float32)[y])
    assert grad.shape == x.shape and np.isfinite(grad).all()
    black = x == 0
    assert black.mean() > 0.5  # MNIST digits are mostly black background
    assert np.abs(grad).sum() > 0
    assert (grad[black] != 0).mean() > 0.5  # gradient also flows from the all-black regions


def test_forward_gradient_equals_estimate_forward_gradient(mnist_small, mnist_bank: RBFFilterBank) -> None:
    pre = RBFReconstructionPyTorch(mnist_bank, device_type="cpu")
    x = torch.from_numpy(mnist_small[2][:3])
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    grads = []
    for fn in (lambda v: pre.forward(v)[0], pre.estimate_forward):
        xv = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad((fn(xv) * weight).sum(), xv)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1])


def test_art_pgd_moves_the_input(mnist_small, defended) -> None:
    _, classifier = defended
    x, y = mnist_small[2][:8], mnist_small[3][:8]
    attack = ProjectedGradientDescent(classifier, eps=0.3, eps_step=0.1, max_iter=3, verbose=False)
    adv = attack.generate(x, y=np.eye(10, dtype=np.float32)[y])
    moved = np.abs(adv - x)
    assert moved.max() == pytest.approx(0.3, abs=1e-5)
    assert moved.mean() > 0.05
    assert adv.min() >= 0 and adv.max() <= 1


def test_numpy_call_is_stochastic_and_float32(mnist_small, mnist_bank: RBFFilterBank) -> None:
    pre = RBFReconstructionPyTorch(mnist_bank, device_type="cpu")
    x = mnist_small[2][:4].astype(np.float64)  # float64 input (numpy 2 promotion) is accepted
    a, _ = pre(x)
    b, _ = pre(x)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert not np.array_equal(a, b)
    assert pre.stochastic
    pre.set_params(beta2=0.0)
    assert not pre.stochastic
    c, _ = pre(x)
    d, _ = pre(x)
    np.testing.assert_array_equal(c, d)


def test_apply_fit_defaults_to_false(mnist_bank: RBFFilterBank) -> None:
    pre = RBFReconstructionPyTorch(mnist_bank, device_type="cpu")
    assert not pre.apply_fit and pre.apply_predict and pre.is_fitted


def test_input_errors(mnist_bank: RBFFilterBank) -> None:
    pre = RBFReconstructionPyTorch(mnist_bank, device_type="cpu")
    with pytest.raises(ValueError, match="clip_values"):
        pre.forward(torch.full((1, 1, 28, 28), 1.5))
    with pytest.raises(ValueError, match="NaN"):
        pre.forward(torch.full((1, 1, 28, 28), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        pre.forward(torch.zeros(0, 1, 28, 28))
    with pytest.raises(ValueError, match="channels"):
        pre.forward(torch.zeros(1, 3, 28, 28))
    unchecked = RBFReconstructionPyTorch(mnist_bank, clip_values=None, device_type="cpu")
    out, _ = unchecked.forward(torch.full((1, 1, 28, 28), 1.5))  # Gaussian-noise certification inputs
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta1": -1.0}, ValueError, "beta1"),
        ({"beta2": -0.5}, ValueError, "beta2"),
        ({"weighting": "softmax"}, ValueError, "weighting"),
        ({"clip_values": (1.0, 0.0)}, ValueError, "clip_values"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
    ],
)
def test_parameter_errors(mnist_bank: RBFFilterBank, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        RBFReconstructionPyTorch(mnist_bank, device_type="cpu", **kwargs)


def test_set_params_validates(mnist_bank: RBFFilterBank) -> None:
    pre = RBFReconstructionPyTorch(mnist_bank, device_type="cpu")
    with pytest.raises(ValueError, match="beta2"):
        pre.set_params(beta2=-1.0)
    with pytest.raises(ValueError, match="unknown"):
        pre.set_params(sigma=1.0)


def test_requires_a_filter_bank() -> None:
    with pytest.raises(TypeError, match="RBFFilterBank"):
        RBFReconstructionPyTorch(np.zeros((3, 9)), device_type="cpu")  # type: ignore[arg-type]

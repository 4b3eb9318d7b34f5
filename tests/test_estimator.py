"""ART glue: to_art_classifier gives a working PyTorchClassifier that survives float64 inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from art.attacks.evasion import FastGradientMethod
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_manifold_defenses.estimator import PerSampleClassGradientClassifier, to_art_classifier


def test_classifier_properties_and_float64_inputs(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    _, _, x, y = mnist_small
    clf = to_art_classifier(trained_tiny, input_shape=(1, 28, 28), nb_classes=10)
    assert isinstance(clf, PyTorchClassifier)
    assert clf.input_shape == (1, 28, 28) and clf.nb_classes == 10
    np.testing.assert_array_equal(clf.clip_values, [0.0, 1.0])
    p32 = clf.predict(x[:20])
    p64 = clf.predict(x[:20].astype(np.float64))  # numpy-2 promotion inside attacks feeds float64
    np.testing.assert_allclose(p32, p64, atol=1e-5)
    assert (p32.argmax(1) == y[:20]).mean() > 0.6
    adv = FastGradientMethod(clf, eps=0.2).generate(x[:20], y=y[:20])
    assert np.abs(adv - x[:20]).max() <= 0.2 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (clf.predict(adv).argmax(1) == y[:20]).mean() < (p32.argmax(1) == y[:20]).mean()


def test_bad_arguments(tiny_model: nn.Module) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        to_art_classifier(tiny_model, input_shape=(28, 28), nb_classes=10)
    with pytest.raises(ValueError, match="nb_classes"):
        to_art_classifier(tiny_model, input_shape=(1, 28, 28), nb_classes=1)
    with pytest.raises(ValueError, match="CUDA"):
        to_art_classifier(tiny_model, input_shape=(1, 28, 28), nb_classes=10, device="cuda")


class _CountingIdentity(nn.Module):
    """Counts backward passes through the model's input layer."""

    def __init__(self) -> None:
        super().__init__()
        self.backward_calls = 0

    def forward(self, x: Any) -> Any:
        if x.requires_grad:
            x.register_hook(self._count)
        return x

    def _count(self, grad: Any) -> None:
        self.backward_calls += 1


def test_per_sample_class_gradient_equals_art_with_one_backward(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    _, _, x, _ = mnist_small
    counter = _CountingIdentity()
    model = nn.Sequential(counter, trained_tiny)
    labels = np.arange(20) % 10  # every class present: ART back-propagates 10 times
    art_clf = to_art_classifier(model, input_shape=(1, 28, 28), nb_classes=10)
    fast = to_art_classifier(model, input_shape=(1, 28, 28), nb_classes=10, per_sample_class_gradient=True)
    assert isinstance(fast, PerSampleClassGradientClassifier)
    expected = art_clf.class_gradient(x[:20], label=labels)
    art_calls, counter.backward_calls = counter.backward_calls, 0
    got = fast.class_gradient(x[:20], label=labels)
    assert art_calls == 10 and counter.backward_calls == 1
    assert got.shape == expected.shape == (20, 1, 1, 28, 28)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(got).max() > 0
    # a list of labels, a single int label and label=None behave as in ART
    np.testing.assert_allclose(
        fast.class_gradient(x[:20], label=list(labels)), expected, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        fast.class_gradient(x[:4], label=3), art_clf.class_gradient(x[:4], label=3), rtol=1e-5, atol=1e-7
    )
    assert fast.class_gradient(x[:4]).shape == (4, 10, 1, 28, 28)
    with pytest.raises(ValueError, match="labels must lie"):
        fast.class_gradient(x[:4], label=np.array([0, 1, 2, 10]))


def test_ead_same_adversarials_as_on_art_classifier(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    """ART's EAD (C&W-style class gradients) finds the same adversarial examples on both classifiers."""
    from art.attacks.evasion import ElasticNet

    _, _, x, y = mnist_small
    runs = []
    for fast in (False, True):
        clf = to_art_classifier(
            trained_tiny, input_shape=(1, 28, 28), nb_classes=10, per_sample_class_gradient=fast
        )
        attack = ElasticNet(
            clf, max_iter=10, binary_search_steps=2, initial_const=1.0, batch_size=10, verbose=False
        )
        runs.append(attack.generate(x[:10], y=np.eye(10, dtype=np.float32)[y[:10]]))
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)
    assert np.abs(runs[1] - x[:10]).max() > 0


def test_classifier_module_applies_the_fit_or_predict_chain_and_skips_identity_standardisation() -> None:
    import torch
    from art.defences.preprocessor import SpatialSmoothing
    from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

    from art_manifold_defenses.estimator import ClassifierModule

    class AddOne(PreprocessorPyTorch):
        def __init__(self, *, apply_fit: bool, apply_predict: bool) -> None:
            super().__init__(device_type="cpu", apply_fit=apply_fit, apply_predict=apply_predict)

        def forward(self, x: torch.Tensor, y: Any = None) -> tuple[torch.Tensor, Any]:
            return x + 1.0, y

    net = nn.Flatten()
    predict_only, fit_only = (
        AddOne(apply_fit=False, apply_predict=True),
        AddOne(apply_fit=True, apply_predict=False),
    )
    classifier = PyTorchClassifier(
        net,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 2, 2),
        nb_classes=4,
        preprocessing_defences=[predict_only, fit_only, AddOne(apply_fit=True, apply_predict=True)],
        preprocessing=(0.0, 1.0),
    )
    x = torch.zeros(3, 1, 2, 2)
    predict, fit = ClassifierModule(classifier, fit=False), ClassifierModule(classifier, fit=True)
    assert len(predict.operations) == len(fit.operations) == 2  # the identity standardisation is skipped
    assert float(predict(x).max()) == float(fit(x).max()) == 2.0
    assert predict.operations[0] is predict_only and fit.operations[0] is fit_only
    numpy_defence = PyTorchClassifier(
        net,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 2, 2),
        nb_classes=4,
        preprocessing_defences=[SpatialSmoothing()],
    )
    with pytest.raises(
        TypeError, match=("surrogate_model: its preprocessing SpatialSmoothing is not a PreprocessorPyTorch")
    ):
        ClassifierModule(numpy_defence, fit=False, name="surrogate_model")

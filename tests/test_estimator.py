"""ART glue: to_art_classifier gives a working PyTorchClassifier that survives float64 inputs."""

from __future__ import annotations

import numpy as np
import pytest
from art.attacks.evasion import FastGradientMethod
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_manifold_defenses.estimator import to_art_classifier


def test_classifier_properties_and_float64_inputs(trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]) -> None:
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

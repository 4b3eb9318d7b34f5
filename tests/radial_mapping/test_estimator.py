"""RadialMappingClassifierPyTorch (ART), end-to-end training with the shared loop, and checkpoint round
trips."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from art.attacks.evasion import FastGradientMethod

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.models import build_model
from art_manifold_defenses.radial_mapping import (
    RadialMappingClassifierPyTorch,
    add_radial_mapping,
    mapping_blocks,
    train_radial_mapping,
)
from art_manifold_defenses.radial_mapping.cli import add_train_arguments, train_from_args
from art_manifold_defenses.training import evaluate_accuracy


def _classifier(**kwargs: object) -> RadialMappingClassifierPyTorch:
    return RadialMappingClassifierPyTorch(
        build_model("cleverhans_cnn"), input_shape=(1, 28, 28), nb_classes=10, device_type="cpu", **kwargs
    )  # type: ignore[arg-type]


def test_art_classifier_predicts_and_gives_gradients() -> None:
    clf = _classifier()
    x = np.random.default_rng(0).random((5, 1, 28, 28)).astype(np.float64)  # float64 in: cast inside
    assert clf.predict(x).shape == (5, 10)
    grad = clf.loss_gradient(x.astype(np.float32), np.eye(10)[[0, 1, 2, 3, 4]])
    assert grad.shape == x.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    assert len(mapping_blocks(clf.mapped_model)) == 3
    assert clf.mapping_config()["variant"] == "paper"


def test_art_fit_trains_mapping_and_fgsm_runs(mnist_small: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, x_test, y_test = mnist_small
    clf = _classifier(variant="authors_code", seed=1)
    block = mapping_blocks(clf.mapped_model)[0]
    centres_before = block.centers.detach().clone()
    clf.fit(x_train, np.eye(10)[y_train], batch_size=64, nb_epochs=2)
    assert not torch.allclose(block.centers.detach(), centres_before)  # learned by back-propagation
    accuracy = float((clf.predict_labels(x_test) == y_test).mean())
    assert accuracy > 0.5  # chance is 0.1; 2 epochs on 1,000 images
    x_adv = FastGradientMethod(clf, eps=0.3).generate(x_test[:50])
    assert np.abs(x_adv - x_test[:50]).max() <= 0.3 + 1e-6
    assert float((clf.predict_labels(x_adv) == y_test[:50]).mean()) < accuracy


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"variant": "x"}, ValueError, "variant"),
        ({"mode": "x"}, ValueError, "mode"),
        ({"init": "x"}, ValueError, "init"),
        ({"n_centers": 0}, ValueError, "n_centers"),
        ({"epsilon": -1.0}, ValueError, "epsilon"),
        ({"beta_init": 0.0}, ValueError, "beta_init"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"seed": "a"}, TypeError, "seed"),
    ],
)
def test_classifier_rejects_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        _classifier(**kwargs)
    with pytest.raises(ValueError, match="input_shape"):
        RadialMappingClassifierPyTorch(build_model("cleverhans_cnn"), input_shape=(28, 28), nb_classes=10)
    with pytest.raises(ValueError, match="nb_classes"):
        RadialMappingClassifierPyTorch(build_model("cleverhans_cnn"), input_shape=(1, 28, 28), nb_classes=1)


def test_shared_loop_training_and_checkpoint_round_trip(
    mnist_small: tuple[np.ndarray, ...], tmp_path
) -> None:
    x_train, y_train, x_test, y_test = mnist_small
    model = add_radial_mapping(build_model("cleverhans_cnn"), variant="paper", seed=0)
    history = train_radial_mapping(model, x_train, y_train, epochs=2, batch_size=64, verbose=False, seed=0)
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]
    assert evaluate_accuracy(model, x_test, y_test) > 0.7
    params = {
        "after": "all_conv",
        "n_centers": None,
        "variant": "paper",
        "out_channels": None,
        "mode": "auto",
        "epsilon": 1e-6,
        "beta_init": 2.0,
    }
    path = save_checkpoint(
        model,
        tmp_path / "model.pt",
        architecture={"name": "cleverhans_cnn"},
        defence={"name": "radial-mapping", "params": params},
    )
    loaded, metadata = load_checkpoint(path)
    assert metadata["defence"]["name"] == "radial-mapping"
    x = torch.from_numpy(x_test[:8])
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_cli_train_from_args(mnist_small: tuple[np.ndarray, ...], tmp_path) -> None:
    x_train, y_train, x_test, y_test = mnist_small
    parser = argparse.ArgumentParser()
    add_train_arguments(parser.add_argument_group("radial-mapping"))
    extra = parser.parse_args(["--rbm-variant", "authors_code", "--rbm-init", "kmeans", "--rbm-after", "0,2"])
    args = argparse.Namespace(
        dataset="mnist-embedded",
        data_root=None,
        device="cpu",
        seed=0,
        model="cleverhans_cnn",
        epochs=1,
        batch_size=64,
        lr=1e-3,
        activation=None,
        train_limit=None,
        out=str(tmp_path),
        quiet=True,
        **vars(extra),
    )
    data = {"x_train": x_train[:300], "y_train": y_train[:300], "x_test": x_test[:50], "y_test": y_test[:50]}
    architecture = {"name": "cleverhans_cnn", "in_channels": 1, "num_classes": 10, "input_size": 28}
    model, meta = train_from_args(args, data, torch.device("cpu"), architecture)
    assert meta["name"] == "radial-mapping" and meta["params"]["after"] == ["0", "2"]
    assert meta["params"]["variant"] == "authors_code"
    assert [b.variant for b in mapping_blocks(model)] == ["authors_code", "authors_code"]
    assert (tmp_path / "train_state" / "train_state.pt").is_file()
    path = save_checkpoint(model, tmp_path / "model.pt", architecture=architecture, defence=meta)
    loaded, _ = load_checkpoint(path)
    x = torch.from_numpy(x_test[:4])
    torch.testing.assert_close(loaded(x), model.eval()(x))

"""RBFCNNTrainer: label smoothing, noise windows, rCNN learns, rCNN+ builds and uses the PGD noise bank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.estimator import to_art_classifier
from art_manifold_defenses.rbf_reconstruction import (
    RBFCNN,
    RBFCNNTrainer,
    RBFFilterBank,
    pgd_noise_bank,
    smoothed_targets,
)
from art_manifold_defenses.rbf_reconstruction.trainer import clip_to_window
from art_manifold_defenses.training import evaluate_accuracy


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 12 * 12, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def test_smoothed_targets_match_authors_clip() -> None:
    t = smoothed_targets(torch.tensor([2, 0]), 10, 0.9)
    assert t[0, 2].item() == pytest.approx(0.9) and t[0, 0].item() == pytest.approx(0.1 / 9)
    torch.testing.assert_close(t.sum(1), torch.ones(2))


def test_clip_to_window() -> None:
    x = torch.tensor([0.0, 0.5, 1.0])
    out = clip_to_window(x, torch.tensor([-1.0, 2.0, 0.2]), 0.3)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.8, 0.7]))


def test_rcnn_training_learns_through_the_reconstruction(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x, y, xt, yt = mnist_small
    torch.manual_seed(0)
    model = RBFCNN(small_cnn(), mnist_bank, beta2=0.0)
    before = evaluate_accuracy(model, xt, yt)
    trainer = RBFCNNTrainer(model, input_shape=(1, 28, 28))
    trainer.fit(x, y, nb_epochs=3, batch_size=64, verbose=False, seed=0)
    after = evaluate_accuracy(model, xt, yt)
    assert after > 0.6 and after > before + 0.3
    assert len(trainer.history) == 3 and trainer.history[-1]["loss"] < trainer.history[0]["loss"]
    assert trainer.predict(xt[:5]).shape == (5, 10)


def test_rcnn_plus_computes_and_uses_the_noise_bank(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x, y = mnist_small[0][:256], mnist_small[1][:256]
    torch.manual_seed(0)
    model = RBFCNN(small_cnn(), mnist_bank, beta2=0.0)
    classifier = to_art_classifier(model, input_shape=(1, 28, 28), nb_classes=10)
    trainer = RBFCNNTrainer(
        classifier,
        variant="rcnn_plus",
        noise_bank_epoch=1,
        noise_bank_size=64,
        noise_bank_eps=0.3,
        noise_bank_steps=2,
        linf_window=(0.15, 0.4),
    )
    seen: list[int] = []
    original = trainer._step

    def spy(ctx, xb, yb):
        seen.append(int(ctx.epoch))
        return original(ctx, xb, yb)

    trainer._step = spy  # type: ignore[method-assign]
    trainer.fit(x, y, nb_epochs=2, batch_size=64, verbose=False, seed=0)
    assert trainer.noise_bank is not None and trainer.noise_bank.shape == (64, 1, 28, 28)
    assert np.abs(trainer.noise_bank).max() <= 0.3 + 1e-6 and np.abs(trainer.noise_bank).max() > 0.2
    assert 0.15 <= trainer._window(0) <= 0.4
    assert seen.count(0) == seen.count(1) == 4


def test_rcnn_plus_batch_composition(mnist_small, mnist_bank: RBFFilterBank) -> None:
    from art_manifold_defenses.training import TrainContext

    model = RBFCNN(small_cnn(), mnist_bank, beta2=0.0).train()
    bank = np.full((5, 1, 28, 28), 0.2, np.float32)
    trainer = RBFCNNTrainer(
        model,
        variant="rcnn_plus",
        noise_bank=bank,
        gaussian_images=3,
        adversarial_images=2,
        input_shape=(1, 28, 28),
    )
    seen = []
    model.classifier.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    ctx = TrainContext(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        device=torch.device("cpu"),
        epochs=1,
    )
    ctx.state.update({"num_classes": 10, "window": 0.3, "x": None, "y": None, "seed": 0, "verbose": False})
    loss = trainer._step(ctx, torch.from_numpy(mnist_small[0][:8]), torch.from_numpy(mnist_small[1][:8]))
    assert torch.isfinite(loss) and seen == [8 + 3 + 2]


def test_pgd_noise_bank_respects_eps_and_box(mnist_small) -> None:
    x, y = mnist_small[0][:16], mnist_small[1][:16]
    noise = pgd_noise_bank(small_cnn(), x, y, eps=0.1, steps=2, verbose=False)
    assert np.abs(noise).max() <= 0.1 + 1e-6
    assert (x + noise).min() >= -1e-6 and (x + noise).max() <= 1 + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "rcnn++"}, "variant"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"gaussian_std": 0.0}, "gaussian_std"),
        ({"linf_window": 2.0}, "linf_window"),
        ({"linf_window": (0.4, 0.1)}, "linf_window"),
        ({"noise_bank_steps": 0}, "noise_bank_steps"),
        ({"gaussian_images": -1}, "gaussian_images"),
        ({"noise_bank": np.full((2, 1, 28, 28), 3.0, np.float32)}, "noise_bank"),
    ],
)
def test_parameter_errors(mnist_bank: RBFFilterBank, kwargs: dict, match: str) -> None:
    model = RBFCNN(small_cnn(), mnist_bank)
    with pytest.raises(ValueError, match=match):
        RBFCNNTrainer(model, input_shape=(1, 28, 28), **kwargs)


def test_classifier_errors(mnist_bank: RBFFilterBank) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        RBFCNNTrainer(RBFCNN(small_cnn(), mnist_bank))
    with pytest.raises(ValueError, match="exactly one RBFCNN"):
        RBFCNNTrainer(to_art_classifier(small_cnn(), input_shape=(1, 28, 28), nb_classes=10))
    with pytest.raises(TypeError, match="PyTorchClassifier"):
        RBFCNNTrainer(small_cnn())  # type: ignore[arg-type]


def test_fit_input_errors(mnist_small, mnist_bank: RBFFilterBank) -> None:
    trainer = RBFCNNTrainer(RBFCNN(small_cnn(), mnist_bank), input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="labels"):
        trainer.fit(mnist_small[0][:10], mnist_small[1][:9], nb_epochs=1, verbose=False)
    with pytest.raises(ValueError, match="lie in"):
        trainer.fit(mnist_small[0][:10] * 3, mnist_small[1][:10], nb_epochs=1, verbose=False)

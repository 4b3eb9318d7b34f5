"""FPDTrainer (Algorithm 1): phase logic, second pass, noise, adversarial training, validation, ART
integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from art.defences.trainer import Trainer
from torch import nn

from art_manifold_defenses.estimator import to_art_classifier
from art_manifold_defenses.fpd import FeaturePyramidDecoder, FPDTrainer
from art_manifold_defenses.training import evaluate_accuracy


class TinyBackbone(nn.Module):
    def __init__(self, batch_norm: bool = True) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), norm(8), nn.ReLU()),
                nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), norm(16), nn.ReLU()),
            ]
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def tiny_fpd(batch_norm: bool = True) -> FeaturePyramidDecoder:
    torch.manual_seed(0)
    return FeaturePyramidDecoder(TinyBackbone(batch_norm), input_size=16, fpn_channels=16)


@pytest.fixture(scope="module")
def mnist16(mnist_small: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The shared MNIST sample resized to 16x16."""
    x_train, y_train, x_test, y_test = mnist_small

    def resize(x: np.ndarray) -> np.ndarray:
        return (
            F.interpolate(torch.from_numpy(x), size=16, mode="bilinear", align_corners=False)
            .clamp(0, 1)
            .numpy()
        )

    return resize(x_train), y_train, resize(x_test), y_test


def _snapshot(params: list[nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def test_phase_one_updates_only_front_denoising_and_restoration(mnist16: tuple[np.ndarray, ...]) -> None:
    x, y = mnist16[0][:64], mnist16[1][:64]
    model = tiny_fpd()
    trainer = FPDTrainer(model, threshold=float("inf"), verbose=False)  # l2 <= inf: always phase 2
    assert isinstance(trainer, Trainer)
    initial = _snapshot(list(model.parameters()))
    trainer.fit(x, y, batch_size=16, nb_epochs=1)
    assert trainer.history[-1]["phase_one"] == 0.0
    # phase 2: every parameter trains, the classifier included (this also builds Adamax momentum for it)
    assert all(not torch.equal(a, b) for a, b in zip(initial, model.parameters(), strict=True))

    phase_one = trainer.phase_one_parameters()
    phase_one_ids = {id(p) for p in phase_one}
    frozen = [p for p in model.parameters() if id(p) not in phase_one_ids]
    later = [*model.classifier_parameters(), *model.middle_denoising_parameters()]  # they act after x' only
    assert {id(p) for p in frozen} == {id(p) for p in later}
    before_frozen, before_trained = _snapshot(frozen), _snapshot(phase_one)
    trainer.threshold = -1.0  # l2 > -1: always phase 1
    trainer.fit(x, y, batch_size=16, nb_epochs=1)
    assert trainer.history[-1]["phase_one"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before_frozen, frozen, strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(before_trained, phase_one, strict=True))


@pytest.mark.parametrize(
    ("threshold", "second_pass", "steps_per_batch"),
    [
        (float("inf"), "detach", 2),
        (float("inf"), "recompute", 2),
        (float("inf"), "none", 1),
        (-1.0, "detach", 1),
    ],
)
def test_optimizer_steps_per_batch(
    mnist16: tuple[np.ndarray, ...], threshold: float, second_pass: str, steps_per_batch: int
) -> None:
    model = tiny_fpd()
    trainer = FPDTrainer(model, threshold=threshold, second_pass=second_pass, verbose=False)
    steps = []
    trainer.optimizer.register_step_post_hook(lambda *_: steps.append(1))
    trainer.fit(mnist16[0][:32], mnist16[1][:32], batch_size=16, nb_epochs=1)
    assert len(steps) == 2 * steps_per_batch
    record = trainer.history[-1]
    assert ("l2_second" in record) == (steps_per_batch == 2)
    assert ("ce" in record) == (threshold > 0)


def test_phase_switch_follows_the_reconstruction_loss(mnist16: tuple[np.ndarray, ...]) -> None:
    model = tiny_fpd()
    trainer = FPDTrainer(model, verbose=False)
    x = torch.from_numpy(mnist16[0][:16])
    with torch.no_grad():
        l2 = float(F.mse_loss(model.restore(x), x))
    seen = []
    trainer.optimizer.register_step_post_hook(lambda *_: seen.append(1))
    from art_manifold_defenses.training import TrainContext

    ctx = TrainContext(model=model, optimizer=trainer.optimizer, device=torch.device("cpu"), epochs=1)
    trainer.threshold = l2 * 100
    logs = trainer.training_step(ctx, x, torch.from_numpy(mnist16[1][:16]))
    assert logs["phase_one"] == 0.0 and len(seen) == 2
    trainer.threshold = l2 / 100
    logs = trainer.training_step(ctx, x, torch.from_numpy(mnist16[1][:16]))
    assert logs["phase_one"] == 1.0 and len(seen) == 3


def test_uniform_noise_stays_in_the_epsilon_ball() -> None:
    trainer = FPDTrainer(tiny_fpd(), epsilon=0.05, verbose=False)
    x = torch.rand(4, 1, 16, 16)
    noisy = trainer.add_uniform_noise(x)
    delta = noisy - x
    assert delta.abs().max() <= 0.05 + 1e-7 and delta.abs().max() > 0.04 and delta.mean().abs() < 0.005


def test_adversarial_training_respects_the_delay(mnist16: tuple[np.ndarray, ...]) -> None:
    x, y = mnist16[0][:32], mnist16[1][:32]
    trainer = FPDTrainer(
        tiny_fpd(), threshold=float("inf"), adversarial="fgsm", adversarial_delay=0, verbose=False
    )
    xt = torch.from_numpy(x[:8])
    adv = trainer.adversarial_examples(xt, torch.from_numpy(y[:8]))
    assert (
        (adv - xt).abs().max() <= 0.3 + 1e-6
        and not torch.equal(adv, xt)
        and adv.min() >= 0
        and adv.max() <= 1
    )
    trainer.fit(x, y, batch_size=16, nb_epochs=1)
    assert trainer.history[-1]["adversarial"] == 1.0
    pgd = FPDTrainer(
        tiny_fpd(), adversarial="pgd", adversarial_max_iter=3, adversarial_eps_step=0.1, verbose=False
    )
    adv = pgd.adversarial_examples(xt, torch.from_numpy(y[:8]))
    assert (adv - xt).abs().max() <= 0.3 + 1e-6 and not torch.equal(adv, xt)
    delayed = FPDTrainer(
        tiny_fpd(), threshold=float("inf"), adversarial="pgd", adversarial_delay=5, verbose=False
    )
    delayed.fit(x, y, batch_size=16, nb_epochs=1)
    assert delayed.history[-1]["adversarial"] == 0.0


def test_accepts_an_art_classifier_and_learns(mnist16: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, x_test, y_test = mnist16
    model = tiny_fpd()
    classifier = to_art_classifier(model, input_shape=(1, 16, 16), nb_classes=10)
    trainer = FPDTrainer(classifier, verbose=False, lr=5e-3)
    assert trainer.get_classifier() is classifier and trainer.model is model
    trainer.fit(x_train, y_train, validation_data=(x_test, y_test), batch_size=50, nb_epochs=4)
    assert trainer.history[-1]["phase_one"] < 1.0  # the reconstruction loss got below T = 3
    accuracy = evaluate_accuracy(model, x_test, y_test)
    assert accuracy > 0.3, trainer.history  # 10 classes; about 0.5 after 4 epochs of 1,000 images
    assert trainer.predict(x_test[:5]).shape == (5, 10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epsilon": -0.1}, ValueError, "epsilon"),
        ({"alpha1": "1"}, TypeError, "alpha1"),
        ({"threshold": float("nan")}, TypeError, "threshold"),
        ({"second_pass": "retain"}, ValueError, "second_pass"),
        ({"adversarial": "cw"}, ValueError, "adversarial"),
        ({"adversarial_max_iter": -1}, ValueError, "adversarial_max_iter"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"lr": 0}, ValueError, "lr"),
        ({"adversarial_labels": "random"}, ValueError, "adversarial_labels"),
    ],
)
def test_rejects_bad_parameters(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        FPDTrainer(tiny_fpd(), verbose=False, **kwargs)


def test_rejects_bad_inputs() -> None:
    with pytest.raises(TypeError, match="FeaturePyramidDecoder"):
        FPDTrainer(nn.Linear(2, 2))
    trainer = FPDTrainer(tiny_fpd(), verbose=False)
    y = np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        trainer.fit(np.full((4, 1, 16, 16), 2.0, dtype=np.float32), y, nb_epochs=1)
    with pytest.raises(ValueError, match="channels"):
        trainer.fit(np.zeros((4, 3, 16, 16), dtype=np.float32), y, nb_epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        trainer.fit(np.full((4, 1, 16, 16), np.nan, dtype=np.float32), y, nb_epochs=1)
    with pytest.raises(ValueError, match="labels"):
        trainer.fit(np.zeros((4, 1, 16, 16), dtype=np.float32), y[:3], nb_epochs=1)

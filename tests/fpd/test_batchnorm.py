"""recalibrate_batchnorm and the trainer's phase-2 logging / eval-mode statistics (the 'chance in eval mode'
bug)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.fpd import FeaturePyramidDecoder, FPDTrainer
from art_manifold_defenses.fpd.batchnorm import recalibrate_batchnorm


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.stages = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())]
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def fpd() -> FeaturePyramidDecoder:
    torch.manual_seed(0)
    return FeaturePyramidDecoder(Backbone(), input_size=8, fpn_channels=8)


def images(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two easy classes: a bright top half or a bright bottom half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 0.2, (n, 1, 8, 8)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, :4] += 0.7 * (label == 0)
        x[i, 0, 4:] += 0.7 * (label == 1)
    return x, y.astype(np.int64)


def test_recalibration_replaces_polluted_statistics_by_those_of_the_inference_path() -> None:
    model = fpd()
    x = torch.from_numpy(images(32)[0])
    norms = [n for n in model.modules() if isinstance(n, nn.BatchNorm2d)]
    seen: dict[nn.Module, list[torch.Tensor]] = {n: [] for n in norms}
    hooks = [n.register_forward_hook(lambda m, i, o: seen[m].append(i[0].mean((0, 2, 3)))) for n in norms]
    with torch.no_grad():
        model.train()(x)  # the inference path: front pass on x, back pass on the denoised x'
    for hook in hooks:
        hook.remove()
    for norm in norms:  # statistics polluted as the second pass of early training pollutes them
        norm.running_var.fill_(1e5)
        norm.running_mean.fill_(3.0)
    model.eval()
    assert (
        recalibrate_batchnorm(model, x, batch_size=32) == 2
    )  # the stem's and the stage's, each shared by 2 passes
    assert not model.training  # mode restored
    for norm in norms:
        assert len(seen[norm]) == 2  # front and back pass
        # cumulative average over the two calls of the single batch = mean of the two passes' batch means
        torch.testing.assert_close(norm.running_mean, torch.stack(seen[norm]).mean(0), rtol=1e-4, atol=1e-5)
        assert float(norm.running_var.max()) < 1e3 and norm.momentum == 0.1


def test_recalibration_counts_shared_layers_and_checks_arguments() -> None:
    model = fpd()
    assert recalibrate_batchnorm(model, images(8)[0], batch_size=4) == 2
    assert recalibrate_batchnorm(nn.Sequential(nn.Conv2d(1, 1, 1)), images(8)[0]) == 0
    with pytest.raises(ValueError, match="batch_size"):
        recalibrate_batchnorm(model, images(8)[0], batch_size=1)
    with pytest.raises(ValueError, match="non-empty"):
        recalibrate_batchnorm(model, np.zeros((0, 1, 8, 8), np.float32))


def test_phase_two_values_are_means_over_phase_two_batches() -> None:
    x, y = images(64)
    trainer = FPDTrainer(fpd(), threshold=float("inf"), verbose=False, lr=1e-2)
    trainer.fit(x, y, batch_size=16, nb_epochs=1)
    record = trainer.history[-1]
    assert record["phase_one"] == 0.0 and record["phase_two_batches"] == 4.0
    ce_all_phase_two = record["ce"]
    # the same run with half the batches in phase 1 (threshold between the two l2 regimes is hard to hit, so
    # force phase 1 on every other batch) must report the same *kind* of mean, not one shrunk by the phase-2
    # share
    trainer = FPDTrainer(fpd(), threshold=float("inf"), verbose=False, lr=1e-2)
    step = trainer.training_step

    def alternate(ctx, xb, yb):  # noqa: ANN001, ANN202
        trainer.threshold = -1.0 if ctx.batch_index % 2 == 0 else float("inf")
        return step(ctx, xb, yb)

    trainer.training_step = alternate  # type: ignore[method-assign]
    trainer.fit(x, y, batch_size=16, nb_epochs=1)
    record = trainer.history[-1]
    assert record["phase_one"] == 0.5 and record["phase_two_batches"] == 2.0
    assert np.log(2) * 0.8 < record["ce"] < 2.0  # 2 classes, tanh logits: CE near ln 2, not ~0.5 * ln 2
    assert 0.0 <= record["train_accuracy"] <= 1.0
    assert abs(record["ce"] - ce_all_phase_two) < 0.3


def test_briefly_trained_fpd_is_accurate_in_eval_mode() -> None:
    """Sanity: a briefly trained FPD is accurate in eval mode and val_accuracy is measured after
    recalibration."""
    x, y = images(256)
    x_test, y_test = images(128, seed=1)
    model = fpd()
    trainer = FPDTrainer(model, verbose=False, lr=1e-2)
    trainer.fit(x, y, validation_data=(x_test, y_test), batch_size=32, nb_epochs=3)
    with torch.no_grad():
        accuracy = (model.eval()(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    assert accuracy > 0.9, trainer.history
    assert trainer.history[-1]["val_accuracy"] == pytest.approx(accuracy)

"""The default FPD starts as its backbone (identity denoising layers, a reconstruction below the phase
threshold) and trains with the documented defaults; the authors' cubic form does not start near the
backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.fpd import FeaturePyramidDecoder, FPDTrainer
from art_manifold_defenses.models import build_model
from art_manifold_defenses.training import evaluate_accuracy

ARCH = {"name": "resnet18", "in_channels": 1, "num_classes": 10, "input_size": 32, "stem": "imagenet"}


def _resnet18() -> torch.nn.Module:
    arch = dict(ARCH)
    return build_model(arch.pop("name"), **arch)


def _mnist32(x: np.ndarray) -> np.ndarray:
    return F.interpolate(torch.from_numpy(x), size=32, mode="bilinear", align_corners=False).numpy()


def test_default_inner_layers_are_the_identity_at_initialisation() -> None:
    model = FeaturePyramidDecoder(_resnet18(), input_size=32).train()
    assert model.denoising_form == "gated" and set(model.inner_denoising) == {"0", "1"}
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        stem_out = model.stem(x)
        torch.testing.assert_close(model.inner_denoising["0"](stem_out), stem_out, rtol=0, atol=0)
        stage_out = model.stages[0](stem_out)
        torch.testing.assert_close(model.inner_denoising["1"](stage_out), stage_out, rtol=0, atol=0)
        # so the denoising module computes the backbone's features exactly
        features, last = model.denoising_module(x)
        out = stem_out
        for stage, feature in zip(model.stages, features, strict=True):
            out = stage(out)
            torch.testing.assert_close(feature, out)
        torch.testing.assert_close(last, out)


@pytest.mark.parametrize(
    ("form", "below_threshold"), [("gated", True), ("bn_zero", True), ("authors_code", False)]
)
def test_untrained_reconstruction_error_against_the_phase_threshold(
    mnist_small: tuple[np.ndarray, ...], form: str, below_threshold: bool
) -> None:
    torch.manual_seed(0)
    model = FeaturePyramidDecoder(_resnet18(), input_size=32, denoising_form=form).train()
    x = torch.from_numpy(_mnist32(mnist_small[0][:100]))
    with torch.no_grad():
        mse = float(F.mse_loss(model.restore(x), x))
    threshold = FPDTrainer(model, verbose=False).threshold
    # measured: ~0.4 for the identity-start forms, ~600 for the authors' cubic form (T = 3)
    assert (mse < threshold) == below_threshold, mse


def test_checkpoint_without_denoising_form_loads_as_authors_code(tmp_path) -> None:  # noqa: ANN001
    model = FeaturePyramidDecoder(_resnet18(), input_size=32, denoising_form="authors_code").eval()
    old_params = {
        k: v for k, v in model.config.items() if k != "denoising_form"
    }  # a sidecar from before the option
    path = save_checkpoint(
        model, tmp_path / "old.pt", architecture=ARCH, defence={"name": "fpd", "params": old_params}
    )
    loaded, _ = load_checkpoint(path)
    assert isinstance(loaded, FeaturePyramidDecoder) and loaded.denoising_form == "authors_code"
    new = FeaturePyramidDecoder(_resnet18(), input_size=32)
    path = save_checkpoint(
        new, tmp_path / "new.pt", architecture=ARCH, defence={"name": "fpd", "params": new.config}
    )
    assert load_checkpoint(path)[0].denoising_form == "gated"


@pytest.mark.slow
def test_default_recipe_trains_resnet18_above_chance(mnist_small: tuple[np.ndarray, ...]) -> None:
    """20 Algorithm-1 steps with FPDTrainer's defaults (batch 50, the paper's MNIST settings) on real digits:
    the default FPD learns (measured ~69% held-out; the authors' cubic form stays at ~8% with the same
    budget)."""
    accuracy = _held_out_accuracy_after_one_epoch(mnist_small, "gated")
    assert accuracy >= 0.6, accuracy


def _held_out_accuracy_after_one_epoch(mnist_small: tuple[np.ndarray, ...], form: str) -> float:
    x_train, y_train, x_test, y_test = mnist_small
    torch.manual_seed(0)
    model = FeaturePyramidDecoder(_resnet18(), input_size=32, denoising_form=form)
    FPDTrainer(model, verbose=False).fit(_mnist32(x_train), y_train, batch_size=50, nb_epochs=1)
    return evaluate_accuracy(model, _mnist32(x_test), y_test)

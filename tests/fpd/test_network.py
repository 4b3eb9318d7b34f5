"""FeaturePyramidDecoder: shapes for the zoo ResNets, (-1, 1) logits, shared front/back modules, ELU swap,
protocol, checkpoints and ART."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.estimator import to_art_classifier
from art_manifold_defenses.fpd import FeaturePyramidDecoder
from art_manifold_defenses.models import build_model


class TinyBackbone(nn.Module):
    """A user's own block-based CNN following the protocol (stem, stages, head)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, batch_norm: bool = True) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU())
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), norm(8), nn.ReLU()),
                nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), norm(16), nn.ReLU()),
            ]
        )
        self.stage_channels = [8, 16]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def _check_outputs(model: FeaturePyramidDecoder, x: torch.Tensor, num_classes: int = 10) -> None:
    restored, logits = model.forward_with_restoration(x)
    assert restored.shape == x.shape
    assert logits.shape == (x.shape[0], num_classes)
    assert torch.isfinite(logits).all()
    assert (logits.abs() < 1).all()
    torch.testing.assert_close(model(x), logits)


@pytest.mark.parametrize(("size", "channels"), [(32, 1), (32, 3), (64, 1), (64, 3)])
def test_resnet18_shapes(size: int, channels: int) -> None:
    model = FeaturePyramidDecoder(
        build_model("resnet18", in_channels=channels, input_size=size), input_size=size
    )
    with torch.no_grad():
        _check_outputs(model, torch.rand(2, channels, size, size))


def test_resnet18_backward_reaches_every_parameter() -> None:
    model = FeaturePyramidDecoder(build_model("resnet18", in_channels=3, input_size=64), input_size=64)
    restored, logits = model.forward_with_restoration(torch.rand(2, 3, 64, 64))
    (logits.sum() + restored.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


# batch 1, no backward: every size and channel count is covered by each deep network across its two cases
@pytest.mark.parametrize(
    ("name", "size", "channels"),
    [("resnet50", 32, 3), ("resnet50", 64, 1), ("resnet101", 32, 1), ("resnet101", 64, 3)],
)
def test_deep_resnet_shapes(name: str, size: int, channels: int) -> None:
    model = FeaturePyramidDecoder(build_model(name, in_channels=channels, input_size=size), input_size=size)
    with torch.no_grad():
        _check_outputs(model, torch.rand(1, channels, size, size))  # train mode: batch statistics


def test_front_and_back_modules_share_one_set_of_parameters() -> None:
    backbone = build_model("resnet18", in_channels=1, input_size=32, stem="imagenet")
    model = FeaturePyramidDecoder(backbone, input_size=32)
    params = list(model.parameters())
    assert len({id(p) for p in params}) == len(params)
    # the backbone is copied: its weights (the head's linear layer reused by the tanh classifier) start the
    # FPD, once
    assert not {id(p) for p in backbone.parameters()} & {id(p) for p in params}
    torch.testing.assert_close(model.head.linear.weight, backbone.head[-1].weight)
    torch.testing.assert_close(model.stem[0].weight, backbone.stem[0].weight)
    gates = len(model.denoise_after) + 1  # one scalar per inner layer and one for the middle layer
    extra = sum(p.numel() for p in model.restoration.parameters()) + gates
    assert sum(p.numel() for p in params) == sum(p.numel() for p in backbone.parameters()) + extra
    calls = []
    model.stages[0].register_forward_hook(lambda *_: calls.append(1))
    model.stem.register_forward_hook(lambda *_: calls.append(0))
    model(torch.rand(2, 1, 32, 32))
    assert calls.count(1) == 2 and calls.count(0) == 2  # front pass and back pass run the same modules


def test_relu_are_swapped_for_elu() -> None:
    backbone = build_model("resnet18", in_channels=1, input_size=32, stem="imagenet")
    relus = sum(isinstance(m, nn.ReLU) for m in backbone.modules())
    model = FeaturePyramidDecoder(backbone, input_size=32)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, nn.ELU) for m in model.modules()) == relus
    kept = FeaturePyramidDecoder(
        build_model("resnet18", in_channels=1, input_size=32, stem="imagenet"),
        input_size=32,
        swap_activation=False,
    )
    assert sum(isinstance(m, nn.ReLU) for m in kept.modules()) == relus


def test_inner_denoising_positions_and_restoration_depth() -> None:
    model = FeaturePyramidDecoder(TinyBackbone(), input_size=16, denoise_after=(0, 2))
    assert sorted(model.inner_denoising.keys()) == ["0", "2"]
    assert model.inner_denoising["0"].channels == 4 and model.inner_denoising["2"].channels == 16
    assert (
        model.restoration.upsample_steps == 1
    )  # first stage at 8x8 -> one stride-2 transposed conv to 16x16
    resnet = FeaturePyramidDecoder(build_model("resnet18", in_channels=3, input_size=64), input_size=64)
    assert resnet.restoration.upsample_steps == 2  # ImageNet stem: c2 at 16x16, as in the authors' code
    # odd input sizes are restored to the input's size
    _check_outputs(model, torch.rand(2, 1, 15, 15))


def test_inner_denoising_changes_the_function() -> None:
    torch.manual_seed(0)
    backbone = TinyBackbone()
    plain = FeaturePyramidDecoder(backbone, input_size=16, denoise_after=(), denoising_form="authors_code")
    x = torch.rand(2, 1, 16, 16)
    features, _ = plain.denoising_module(x)
    denoised = FeaturePyramidDecoder(TinyBackbone(), input_size=16, denoising_form="authors_code")
    denoised.load_state_dict(plain.state_dict())
    features_2, _ = denoised.denoising_module(x)
    assert not torch.allclose(features[0], features_2[0])  # stem denoising changes stage 1's input


def test_user_backbone_protocol_and_errors() -> None:
    model = FeaturePyramidDecoder(TinyBackbone(in_channels=3, num_classes=5), input_size=16)
    assert model.in_channels == 3 and model.num_classes == 5
    _check_outputs(model, torch.rand(3, 3, 16, 16), num_classes=5)
    with pytest.raises(TypeError, match="stem"):
        FeaturePyramidDecoder(nn.Sequential(nn.Conv2d(1, 4, 3)))
    with pytest.raises(ValueError, match="denoise_after"):
        FeaturePyramidDecoder(TinyBackbone(), input_size=16, denoise_after=(3,))
    with pytest.raises(ValueError, match="middle_denoising"):
        FeaturePyramidDecoder(TinyBackbone(), input_size=16, middle_denoising="flip")
    with pytest.raises(ValueError, match="dropout"):
        FeaturePyramidDecoder(TinyBackbone(), input_size=16, dropout=1.5)
    with pytest.raises(ValueError, match="fpn_channels"):
        FeaturePyramidDecoder(TinyBackbone(), input_size=16, fpn_channels=0)
    model = FeaturePyramidDecoder(TinyBackbone(), input_size=16)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="empty"):
        model(torch.rand(0, 1, 16, 16))


def test_middle_variants_differ_and_none_skips() -> None:
    torch.manual_seed(0)
    form = "authors_code"  # parameter-free middle layers: one state dict fits all three variants
    base = FeaturePyramidDecoder(
        TinyBackbone(), input_size=16, middle_denoising="paper", denoising_form=form
    ).eval()
    x = torch.rand(2, 1, 16, 16)
    outputs = {}
    for variant in ("paper", "authors_code", "none"):
        model = FeaturePyramidDecoder(
            TinyBackbone(), input_size=16, middle_denoising=variant, denoising_form=form
        ).eval()
        model.load_state_dict(base.state_dict())
        outputs[variant] = model(x)
    assert not torch.allclose(outputs["paper"], outputs["authors_code"])
    assert not torch.allclose(outputs["paper"], outputs["none"])


def test_checkpoint_round_trip(tmp_path) -> None:
    architecture = {
        "name": "resnet18",
        "in_channels": 1,
        "num_classes": 10,
        "input_size": 16,
        "stem": "imagenet",
    }
    arch = dict(architecture)
    model = FeaturePyramidDecoder(
        build_model(arch.pop("name"), **arch), input_size=16, bottleneck=True
    ).eval()
    path = save_checkpoint(
        model,
        tmp_path / "model.pt",
        architecture=architecture,
        defence={"name": "fpd", "params": model.config},
    )
    loaded, metadata = load_checkpoint(path)
    assert isinstance(loaded, FeaturePyramidDecoder) and metadata["defence"]["name"] == "fpd"
    assert loaded.config == model.config
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_art_classifier_predicts_and_differentiates() -> None:
    model = FeaturePyramidDecoder(TinyBackbone(batch_norm=False), input_size=16)
    classifier = to_art_classifier(model, input_shape=(1, 16, 16), nb_classes=10)
    x = np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32)
    predictions = classifier.predict(x)
    assert predictions.shape == (3, 10) and np.all(np.abs(predictions) < 1)
    gradient = classifier.loss_gradient(x, np.eye(10, dtype=np.float32)[[1, 2, 3]])
    assert gradient.shape == x.shape and np.isfinite(gradient).all() and np.abs(gradient).sum() > 0
    assert model.stochastic is False


def test_classification_refuses_inputs_outside_clip_values_but_training_passes_accept_them() -> None:
    """Images in [0, 255] gave all-NaN logits (the non-local means are cubic in the features); ``forward`` now
    refuses them by name, while the training interface (``return_restored=True``: Algorithm 1's noisy inputs
    and second pass on ``x'``) only needs finite values; ``clip_values=None`` accepts normalised inputs."""
    model = FeaturePyramidDecoder(build_model("resnet18", in_channels=1, input_size=32), input_size=32).eval()
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"clip_values \[0, 1\].*\[0, 255\] must be divided by 255"):
        model(x * 255)
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(torch.full_like(x, float("nan")), return_restored=True)
    restored, logits = model(x * 3 - 1.5, return_restored=True)  # far outside [0, 1]: still computed
    assert torch.isfinite(logits).all() and restored.shape == x.shape
    assert torch.isfinite(model(x + 0.3)).all()  # a little outside (noise) is accepted
    free = FeaturePyramidDecoder(
        build_model("resnet18", in_channels=1, input_size=32), input_size=32, clip_values=None
    )
    assert free.config["clip_values"] is None and torch.isfinite(free.eval()(x * 4 - 2)).all()
    with pytest.raises(ValueError, match="clip_values"):
        FeaturePyramidDecoder(
            build_model("resnet18", in_channels=1, input_size=32), input_size=32, clip_values=(1.0, 0.0)
        )
    with pytest.raises(ValueError, match="clip_values"):
        FeaturePyramidDecoder(
            build_model("resnet18", in_channels=1, input_size=32), input_size=32, clip_values="ab"
        )

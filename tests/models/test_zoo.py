"""Output shapes of every zoo entry; argument checking; the ResNet backbone protocol."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_manifold_defenses.models import build_model, model_names

CASES = [(1, 28), (3, 32)]
HEAVY = {"resnet50", "resnet101", "vgg16", "preact_resnet18"}


@pytest.mark.parametrize("name", [n for n in model_names() if n != "unet"])
@pytest.mark.parametrize("channels,size", CASES)
def test_classifier_output_shape(name: str, channels: int, size: int) -> None:
    model = build_model(name, in_channels=channels, num_classes=7, input_size=size).eval()
    batch = 1 if name in HEAVY else 3
    with torch.no_grad():
        out = model(torch.rand(batch, channels, size, size))
    assert out.shape == (batch, 7)
    assert torch.isfinite(out).all()


def test_unet_output_is_per_pixel() -> None:
    model = build_model("unet", in_channels=3, num_classes=2, input_size=32).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 2, 32, 32)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_backbone_protocol(name: str) -> None:
    model = build_model(name, in_channels=1, num_classes=10, input_size=64).eval()
    assert isinstance(model.stages, nn.ModuleList) and len(model.stages) == 4
    with torch.no_grad():
        features = model.forward_features(torch.rand(1, 1, 64, 64))
    assert [f.shape[1] for f in features] == model.stage_channels
    assert [f.shape[-1] for f in features] == [16, 8, 4, 2]  # ImageNet stem at 64x64


def test_activation_swap_to_elu() -> None:
    model = build_model("cw_mnist", activation="elu")
    kinds = {type(m) for m in model.modules()}
    assert nn.ELU in kinds and nn.ReLU not in kinds


def test_stn_cifar_uses_elu_by_default_and_relu_on_request() -> None:
    assert any(
        isinstance(m, nn.ELU) for m in build_model("stn_cifar", in_channels=3, input_size=32).modules()
    )
    assert not any(
        isinstance(m, nn.ELU)
        for m in build_model("stn_cifar", in_channels=3, input_size=32, activation="relu").modules()
    )


def test_cleverhans_cnn_width_option() -> None:
    narrow = build_model("cleverhans_cnn")
    wide = build_model("cleverhans_cnn", width=64)
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in narrow.parameters())


def test_bad_model_arguments() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("alexnet")
    with pytest.raises(ValueError, match="activation"):
        build_model("cw_mnist", activation="gelu")
    with pytest.raises(ValueError, match="in_channels"):
        build_model("cw_mnist", in_channels=0)
    with pytest.raises(ValueError, match="does not take"):
        build_model("cw_mnist", width=3)
    with pytest.raises(ValueError, match="too small"):
        build_model("cleverhans_cnn", input_size=8)
    with pytest.raises(ValueError, match="divisible"):
        build_model("unet", input_size=30)


def test_cw_mnist_paper_is_carlini_and_wagners_network() -> None:
    model = build_model("cw_mnist_paper")
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (0, 0)),
        (32, 32, (3, 3), (0, 0)),
        (32, 64, (3, 3), (0, 0)),
        (64, 64, (3, 3), (0, 0)),
    ]
    # valid convs: 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4, so 64 * 4 * 4 = 1,024 features (cw_mnist:
    # 3,136)
    assert [(m.in_features, m.out_features) for m in linears] == [(1024, 200), (200, 200), (200, 10)]
    assert (
        next(m for m in build_model("cw_mnist") if isinstance(m, nn.Linear)).in_features == 64 * 7 * 7
    )  # the 'same'-padded variant is unchanged
    kinds = [type(m).__name__ for m in model]
    assert kinds == [
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
        "ReLU",
        "Linear",
    ]
    for layer in (
        convs + linears
    ):  # Keras' defaults: Glorot-uniform weights, limit sqrt(6 / (fan_in + fan_out)), zero biases
        receptive = layer.weight[0, 0].numel() if isinstance(layer, nn.Conv2d) else 1
        fan_in, fan_out = layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        weights = layer.weight.detach()
        assert float(weights.abs().max()) <= limit and float(weights.abs().max()) > 0.9 * limit
        assert float(weights.std()) == pytest.approx(limit / 3**0.5, rel=0.15)
        assert layer.bias is not None and torch.count_nonzero(layer.bias) == 0
    with pytest.raises(ValueError, match="too small"):
        build_model("cw_mnist_paper", input_size=12)

"""Extraction of a PyTorch model into an exact affine/ReLU chain (BatchNorm folding, conv matrices)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.estimator import Float32Input
from art_manifold_defenses.models import build_model
from art_manifold_defenses.verification import extract_network


def _randomize_batchnorm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(2, 4, 3, stride=1, padding=1),
        nn.Conv2d(2, 4, 4, stride=2, padding=1),
        nn.Conv2d(2, 4, 3, stride=2, padding=0, dilation=2),
        nn.Conv2d(2, 4, 3, padding=1, groups=2, bias=False),
        nn.Conv2d(2, 4, 3, padding="same"),
    ],
)
def test_conv_matrix_matches_forward(conv: nn.Conv2d) -> None:
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    x = torch.rand(5, 2, 9, 9)
    model(x)  # materialise the lazy layer
    network = extract_network(model.eval(), (2, 9, 9))
    expected = model(x).detach().double().numpy()
    np.testing.assert_allclose(network(x.numpy().reshape(5, -1)), expected, atol=1e-5)
    assert network.num_hidden == 1


def test_batchnorm_is_folded_into_the_preceding_layer() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 6),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(6, 3),
    )
    _randomize_batchnorm(model)
    model.eval()
    network = extract_network(model, (1, 8, 8))
    assert network.num_hidden == 2  # BatchNorm and pooling composed into the affine layers, ReLUs kept
    assert [layer.out_features for layer in network.layers] == [4 * 8 * 8, 6, 3]
    x = torch.rand(7, 1, 8, 8)
    np.testing.assert_allclose(network(x.numpy().reshape(7, -1)), model(x).detach().numpy(), atol=1e-5)


def test_wong_small_wrapped_in_float32input() -> None:
    model = build_model("wong_small").eval()
    network = extract_network(Float32Input(model), (1, 28, 28))
    assert network.relu_count == 16 * 14 * 14 + 32 * 7 * 7 + 128
    x = torch.rand(3, 1, 28, 28)
    np.testing.assert_allclose(network(x.numpy().reshape(3, -1)), model(x).detach().numpy(), atol=1e-5)


def test_leading_and_repeated_relus_and_trailing_relu() -> None:
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 2), nn.ReLU())
    network = extract_network(model, (3,))
    x = torch.rand(6, 3) * 2 - 1
    np.testing.assert_allclose(network(x.numpy()), model(x).detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.ELU(), nn.Sigmoid()])
def test_unsupported_layers_raise_type_error(layer: nn.Module) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), layer, nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(TypeError, match=type(layer).__name__):
        extract_network(model, (1, 6, 6))


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        extract_network("not a model", (1, 2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_shape"):
        extract_network(nn.Sequential(nn.Linear(2, 2)), (0,))


def test_affine_types_extends_the_supported_layers() -> None:
    class Scale(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2.0 * x - 0.5

    model = nn.Sequential(Scale(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="Scale"):
        extract_network(model, (3,))
    network = extract_network(model, (3,), affine_types=(Scale,))
    x = torch.rand(4, 3)
    np.testing.assert_allclose(network(x.numpy()), model(x).detach().numpy(), atol=1e-6)

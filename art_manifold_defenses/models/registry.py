"""``build_model``: one entry point for the zoo, with argument checking."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from .common import ACTIVATIONS, check_positive, make_activation
from .mnist_nets import cleverhans_cnn, cw_mnist, cw_mnist_paper, tramer_a, wong_small
from .resnet import preact_resnet18, resnet18, resnet50, resnet101
from .small_nets import stn_cifar, unet, vgg16

__all__ = ["MODELS", "build_model", "make_activation", "model_names"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "cw_mnist": cw_mnist,
    "cw_mnist_paper": cw_mnist_paper,
    "cleverhans_cnn": cleverhans_cnn,
    "tramer_a": tramer_a,
    "wong_small": wong_small,
    "stn_cifar": stn_cifar,
    "vgg16": vgg16,
    "preact_resnet18": preact_resnet18,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "unet": unet,
}


def model_names() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(MODELS)


def build_model(
    name: str,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    activation: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a zoo model by name.

    Args:
        name: one of :func:`model_names`.
        in_channels, num_classes, input_size: image channels, number of classes, image height (= width).
        activation: ``"relu"`` or ``"elu"``; ``None`` keeps the architecture's own default (ELU for
            ``stn_cifar``, ReLU otherwise).
        kwargs: architecture-specific options (e.g. ``width`` for ``cleverhans_cnn``, ``stem`` for the
            ResNets).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {model_names()}")
    check_positive(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    factory = MODELS[name]
    accepted = set(inspect.signature(factory).parameters)
    unknown = set(kwargs) - accepted
    if unknown:
        raise ValueError(f"model {name!r} does not take {sorted(unknown)}; it accepts {sorted(accepted)}")
    if activation is not None:
        kwargs["activation"] = activation
    return factory(in_channels=in_channels, num_classes=num_classes, input_size=input_size, **kwargs)

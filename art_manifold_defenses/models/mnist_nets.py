"""The small MNIST-sized networks of the papers, as flat ``nn.Sequential`` models (easy to hook and to rewire)."""

from __future__ import annotations

from torch import nn

from .common import conv_out, make_activation


def _require(size: int, minimum: int, name: str) -> None:
    if size < minimum:
        raise ValueError(f"input_size={size} is too small for {name}; it needs at least {minimum}")


def cw_mnist(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu") -> nn.Sequential:
    """Carlini & Wagner's MNIST net (papers 000 and 003): 4 conv 3x3 (32, 32, 64, 64, same padding) with two
    max-pools, then FC200, dropout 0.5, FC200, FC``num_classes``.

    Architecture of Carlini & Wagner 2017 (their MNIST model); no equation.
    """
    _require(input_size, 4, "cw_mnist")
    side = input_size // 2 // 2
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), act(),
        nn.Conv2d(32, 32, 3, padding=1), act(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), act(),
        nn.Conv2d(64, 64, 3, padding=1), act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 200), act(),
        nn.Dropout(0.5),
        nn.Linear(200, 200), act(),
        nn.Linear(200, num_classes),
    )  # fmt: skip


def cleverhans_cnn(
    in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu", width: int = 16
) -> nn.Sequential:
    """CleverHans' basic 3-layer CNN (paper 001): conv ``width`` 8x8/2 same, conv 2*width 6x6/2 valid,
    conv 2*width 5x5/1 valid, flatten, linear. ``width=16`` as in the paper authors' code (CleverHans' tutorial uses 64)."""
    _require(input_size, 16, "cleverhans_cnn")
    # TensorFlow "same" padding for an 8x8 kernel with stride 2: 3 on each side for even sizes.
    s1 = conv_out(input_size, 8, 2, 3)
    s2 = conv_out(s1, 6, 2)
    s3 = conv_out(s2, 5, 1)
    if s3 < 1:
        raise ValueError(f"input_size={input_size} is too small for cleverhans_cnn")
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 8, stride=2, padding=3), act(),
        nn.Conv2d(width, 2 * width, 6, stride=2), act(),
        nn.Conv2d(2 * width, 2 * width, 5, stride=1), act(),
        nn.Flatten(),
        nn.Linear(2 * width * s3 * s3, num_classes),
    )  # fmt: skip


def tramer_a(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu") -> nn.Sequential:
    """Tramèr et al.'s MNIST model A (paper 004): conv64 5x5, conv64 5x5 (valid), dropout .25, FC128, dropout .5, FC.

    Architecture: model A of Tramèr et al. 2018, used by Li et al. 2019 (paper 004) for MNIST; no equation.
    """
    _require(input_size, 9, "tramer_a")
    side = input_size - 8
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 5), act(),
        nn.Conv2d(64, 64, 5), act(),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128), act(),
        nn.Dropout(0.5),
        nn.Linear(128, num_classes),
    )  # fmt: skip


def wong_small(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu") -> nn.Sequential:
    """Wong et al.'s small verification CNN as read for paper 003: conv16 4x4/2 pad 1, conv32 4x4/2 pad 1, FC128, FC.
    Only Conv2d/ReLU/Flatten/Linear, so the exact verifier can encode it.

    Architecture of Wong et al. 2018, used (with 128 hidden units) by Jin & Rinard 2020 (paper 003), Appendix
    B; no equation.
    """
    _require(input_size, 4, "wong_small")
    side = conv_out(conv_out(input_size, 4, 2, 1), 4, 2, 1)
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 4, stride=2, padding=1), act(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), act(),
        nn.Flatten(),
        nn.Linear(32 * side * side, 128), act(),
        nn.Linear(128, num_classes),
    )  # fmt: skip

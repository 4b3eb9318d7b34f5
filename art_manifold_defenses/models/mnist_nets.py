"""The small MNIST-sized networks of the papers, as flat ``nn.Sequential`` models (easy to hook and to
rewire)."""

from __future__ import annotations

from torch import nn

from .common import conv_out, make_activation


def _require(size: int, minimum: int, name: str) -> None:
    if size < minimum:
        raise ValueError(f"input_size={size} is too small for {name}; it needs at least {minimum}")


def _carlini_wagner_layers(
    in_channels: int, num_classes: int, side: int, padding: int, activation: str
) -> nn.Sequential:
    """C&W's MNIST layer stack: conv 3x3 32, 32, max-pool 2, 64, 64, max-pool 2, flatten (64 x ``side`` x
    ``side``), FC 200, dropout 0.5, FC 200, FC ``num_classes``; every conv padded by ``padding``."""
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=padding),
        act(),
        nn.Conv2d(32, 32, 3, padding=padding),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=padding),
        act(),
        nn.Conv2d(64, 64, 3, padding=padding),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 200),
        act(),
        nn.Dropout(0.5),
        nn.Linear(200, 200),
        act(),
        nn.Linear(200, num_classes),
    )


def cw_mnist(
    in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu"
) -> nn.Sequential:
    """Carlini & Wagner's MNIST net with 'same' padding (papers 000 and 003): 4 conv 3x3 (32, 32, 64, 64, same
    padding) with two max-pools, then FC200, dropout 0.5, FC200, FC``num_classes``; PyTorch's default
    initialisation.

    Architecture after Carlini & Wagner 2017 (their MNIST model), as paper 000's authors build it ('same'
    padding); Not C&W's network exactly: theirs has valid convs (flatten 1,024 instead of 3,136) and
    Glorot-uniform weights with zero biases, see :func:`cw_mnist_paper` (paper 003's network).
    """
    _require(input_size, 4, "cw_mnist")
    return _carlini_wagner_layers(in_channels, num_classes, input_size // 2 // 2, 1, activation)


def cw_mnist_paper(
    in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu"
) -> nn.Sequential:
    """Carlini & Wagner's MNIST net exactly as their code builds it (paper 003): 3x3 **valid** convs 32, 32,
    max-pool 2, 64, 64, max-pool 2, flatten (1,024 features at 28x28), FC 200, ReLU, dropout 0.5, FC 200,
    ReLU, FC ``num_classes``; Glorot-uniform weights and zero biases (Keras' defaults, which their code uses).

    Architecture of Carlini & Wagner 2017 (``train_models.py`` of ``carlini/nn_robust_attacks``, parameters
    ``[32, 32, 64, 64, 200, 200]``), the MNIST network of Jin & Rinard 2020 (paper 003), Appendix B.

    Differences from :func:`cw_mnist` (kept unchanged for existing checkpoints): ``cw_mnist`` pads its convs
    ('same', flatten 3,136) and keeps PyTorch's default initialisation. C&W feed images in [-0.5, 0.5]; the
    package feeds [0, 1] (its convention), which shifts only what the first layer sees.
    """
    side = conv_out(conv_out(conv_out(conv_out(input_size, 3), 3) // 2, 3), 3) // 2
    if side < 1:
        raise ValueError(f"input_size={input_size} is too small for cw_mnist_paper; it needs at least 16")
    model = _carlini_wagner_layers(in_channels, num_classes, side, 0, activation)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(
                module.weight
            )  # Glorot uniform: fans of a conv include its kernel size, as in Keras
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def cleverhans_cnn(
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    activation: str = "relu",
    width: int = 16,
) -> nn.Sequential:
    """CleverHans' basic 3-layer CNN (paper 001): conv ``width`` 8x8/2 same, conv 2*width 6x6/2 valid, conv
    2*width 5x5/1 valid, flatten, linear. ``width=16`` as in the paper authors' code (CleverHans' tutorial
    uses 64)."""
    _require(input_size, 16, "cleverhans_cnn")
    # TensorFlow "same" padding for an 8x8 kernel with stride 2: 3 on each side for even sizes.
    s1 = conv_out(input_size, 8, 2, 3)
    s2 = conv_out(s1, 6, 2)
    s3 = conv_out(s2, 5, 1)
    if s3 < 1:
        raise ValueError(f"input_size={input_size} is too small for cleverhans_cnn")
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 8, stride=2, padding=3),
        act(),
        nn.Conv2d(width, 2 * width, 6, stride=2),
        act(),
        nn.Conv2d(2 * width, 2 * width, 5, stride=1),
        act(),
        nn.Flatten(),
        nn.Linear(2 * width * s3 * s3, num_classes),
    )


def tramer_a(
    in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu"
) -> nn.Sequential:
    """Tramèr et al.'s MNIST model A (paper 004): conv64 5x5, conv64 5x5 (valid), dropout .25, FC128, dropout
    .5, FC.

    Architecture: model A of Tramèr et al. 2018, used by Li et al. 2019 (paper 004) for MNIST.
    """
    _require(input_size, 9, "tramer_a")
    side = input_size - 8
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 5),
        act(),
        nn.Conv2d(64, 64, 5),
        act(),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128),
        act(),
        nn.Dropout(0.5),
        nn.Linear(128, num_classes),
    )


def wong_small(
    in_channels: int = 1, num_classes: int = 10, input_size: int = 28, activation: str = "relu"
) -> nn.Sequential:
    """Wong et al.'s small verification CNN as read for paper 003: conv16 4x4/2 pad 1, conv32 4x4/2 pad 1,
    FC128, FC. Only Conv2d/ReLU/Flatten/Linear, so the exact verifier can encode it.

    Architecture of Wong et al. 2018, used (with 128 hidden units) by Jin & Rinard 2020 (paper 003), Appendix
    B.
    """
    _require(input_size, 4, "wong_small")
    side = conv_out(conv_out(input_size, 4, 2, 1), 4, 2, 1)
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 4, stride=2, padding=1),
        act(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        act(),
        nn.Flatten(),
        nn.Linear(32 * side * side, 128),
        act(),
        nn.Linear(128, num_classes),
    )

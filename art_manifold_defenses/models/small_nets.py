"""CIFAR-sized plain CNNs (STN's 7-conv net, VGG-16 with batch norm) and a small U-Net for segmentation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import check_positive, make_activation


def stn_cifar(
    in_channels: int = 3, num_classes: int = 10, input_size: int = 32, activation: str = "elu"
) -> nn.Sequential:
    """Paper 004's seven-conv CIFAR net: conv96 5x5, conv96 1x1, maxpool 3/2, dropout .5, conv192 5x5, conv192
    1x1, maxpool 3/2, dropout .5, conv256 3x3, conv256 1x1, conv``num_classes`` 1x1, global average pool. ELU
    by default as in the authors' model files; "same" padding throughout."""
    check_positive(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    act = lambda: make_activation(activation)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_channels, 96, 5, padding=2),
        act(),
        nn.Conv2d(96, 96, 1),
        act(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Dropout(0.5),
        nn.Conv2d(96, 192, 5, padding=2),
        act(),
        nn.Conv2d(192, 192, 1),
        act(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Dropout(0.5),
        nn.Conv2d(192, 256, 3, padding=1),
        act(),
        nn.Conv2d(256, 256, 1),
        act(),
        nn.Conv2d(256, num_classes, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


VGG16_CONFIG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def vgg16(
    in_channels: int = 3, num_classes: int = 10, input_size: int = 32, activation: str = "relu"
) -> nn.Sequential:
    """The CIFAR VGG-16 variant of paper 000: 13 conv 3x3 (each conv -> act -> BN), dropout 0.3 in the first
    block and 0.4 in the others between convolutions, five max-pools (ceil mode, so 28x28 inputs work),
    dropout 0.5, FC512-act-BN-dropout 0.5, FC."""
    check_positive(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    layers: list[nn.Module] = []
    channels, block = in_channels, 0
    for index, item in enumerate(VGG16_CONFIG):
        if item == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            block += 1
            continue
        width = int(item)  # an int: "M" entries were handled above
        layers += [
            nn.Conv2d(channels, width, 3, padding=1),
            make_activation(activation),
            nn.BatchNorm2d(width),
        ]
        channels = width
        next_is_pool = VGG16_CONFIG[index + 1] == "M"
        if not next_is_pool:
            layers.append(nn.Dropout(0.3 if block == 0 else 0.4))
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(512, 512),
        make_activation(activation),
        nn.BatchNorm1d(512),
        nn.Dropout(0.5),
        nn.Linear(512, num_classes),
    ]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """A small U-Net: ``depth`` down levels of two 3x3 conv-BN-act layers with max-pooling, a bottleneck, and
    transposed-conv up levels with skip concatenation; output (N, num_classes, H, W) logits. H and W must be
    divisible by ``2**depth``.

    Architecture of Ronneberger et al. 2015 (U-Net), used as a segmentation model for Taghanaki et al. 2019
    (paper 001), Table 4.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        input_size: int = 64,
        activation: str = "relu",
        base_width: int = 16,
        depth: int = 2,
    ) -> None:
        super().__init__()
        check_positive(
            in_channels=in_channels,
            num_classes=num_classes,
            input_size=input_size,
            base_width=base_width,
            depth=depth,
        )
        if input_size % (2**depth):
            raise ValueError(f"input_size={input_size} must be divisible by 2**depth={2**depth}")

        def double(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                make_activation(activation),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                make_activation(activation),
            )

        widths = [base_width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.down.append(double(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(w * 2, w, 2, stride=2))
            self.up_conv.append(double(w * 2, w))
        self.out = nn.Conv2d(widths[0], num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips), strict=True):
            x = conv(torch.cat([up(x), skip], dim=1))
        return self.out(x)


def unet(in_channels: int = 3, num_classes: int = 2, input_size: int = 64, activation: str = "relu") -> UNet:
    """A small U-Net for the segmentation experiments of paper 001."""
    return UNet(in_channels, num_classes, input_size, activation)

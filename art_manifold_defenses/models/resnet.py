"""Block-based residual networks: ResNet-18/50/101 (any input size and channel count) and PreAct ResNet-18.

``ResNet`` exposes the *backbone protocol* used by the Feature Pyramid Decoder (paper 002):

- ``stem``: ``nn.Module`` from the image to the first feature map;
- ``stages``: ``nn.ModuleList`` of the residual stages, applied in order after the stem;
- ``stage_channels``: output channels of each stage;
- ``head``: global pooling + flatten + linear classifier applied to the last stage's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .common import check_positive, make_activation


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, activation: str = "relu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), with batch norm and a projection shortcut when shapes
    change."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, activation: str = "relu") -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.act3 = make_activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with an ImageNet stem (7x7/2 conv + 3x3/2 max-pool) or a small-image stem (3x3/1 conv, no pool).

    Architecture of He et al. 2016 ("Deep Residual Learning for Image Recognition").

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: number of blocks per stage (4 stages, widths 64, 128, 256, 512 before expansion).
        stem: ``"imagenet"``, ``"small"``, or ``"auto"`` (``"imagenet"`` when ``input_size >= 64``, else
            ``"small"``).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: int = 32,
        activation: str = "relu",
        stem: str = "auto",
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
        if stem == "auto":
            stem = "imagenet" if input_size >= 64 else "small"
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                make_activation(activation),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif stem == "small":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
                nn.BatchNorm2d(64),
                make_activation(activation),
            )
        else:
            raise ValueError(f"stem must be 'auto', 'imagenet' or 'small', got {stem!r}")
        self.stem_type = stem
        stages = []
        in_planes = 64
        self.stage_channels: list[int] = []
        for index, (width, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks = []
            for b in range(count):
                stride = 2 if (b == 0 and index > 0) else 1
                blocks.append(block(in_planes, width, stride, activation))
                in_planes = width * block.expansion
            stages.append(nn.Sequential(*blocks))
            self.stage_channels.append(in_planes)
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_planes, num_classes))
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Outputs of every stage (after the stem), shallow to deep."""
        out = self.stem(x)
        features = []
        for stage in self.stages:
            out = stage(out)
            features.append(out)
        return features

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x)[-1])


def _resnet(
    block: type[BasicBlock] | type[Bottleneck],
    layers: Sequence[int],
    in_channels: int,
    num_classes: int,
    input_size: int,
    activation: str,
    stem: str,
) -> ResNet:
    return ResNet(
        block,
        layers,
        in_channels=in_channels,
        num_classes=num_classes,
        input_size=input_size,
        activation=activation,
        stem=stem,
    )


def resnet18(
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    activation: str = "relu",
    stem: str = "auto",
) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]).

    Architecture of He et al. 2016 (ResNet-18).
    """
    return _resnet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, input_size, activation, stem)


def resnet50(
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    activation: str = "relu",
    stem: str = "auto",
) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]).

    Architecture of He et al. 2016 (ResNet-50).
    """
    return _resnet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, input_size, activation, stem)


def resnet101(
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    activation: str = "relu",
    stem: str = "auto",
) -> ResNet:
    """ResNet-101 (Bottleneck, [3, 4, 23, 3]), the FPD paper's backbone.

    Architecture of He et al. 2016 (ResNet-101), used by Li et al. 2020 (paper 002), Table 2.
    """
    return _resnet(Bottleneck, (3, 4, 23, 3), in_channels, num_classes, input_size, activation, stem)


class PreActBlock(nn.Module):
    """Pre-activation block: BN-act-conv3x3-BN-act-conv3x3; the projection shortcut reads the pre-activated
    input."""

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 as in paper 003's reference model: stem conv3x3-BN-act, four stages of two PreAct
    blocks, global average pooling, linear. With ``normalize=(mean, std)`` the input is clamped to [0, 1] and
    standardised inside the model (the reference model does this for CIFAR-10), so attacks and defences see
    [0, 1] images.

    Architecture of He et al. 2016 ("Identity Mappings in Deep Residual Networks"), used by Jin & Rinard 2020
    (paper 003), Section 6.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: int = 32,
        activation: str = "relu",
        normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
        self.normalize = normalize is not None
        mean, std = normalize if normalize is not None else ((0.0,), (1.0,))
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=self.normalize
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=self.normalize
        )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            make_activation(activation),
        )
        stages, in_planes = [], 64
        for index, width in enumerate((64, 128, 256, 512)):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    PreActBlock(in_planes, width, stride, activation),
                    PreActBlock(width, width, 1, activation),
                )
            )
            in_planes = width
        self.stages = nn.ModuleList(stages)
        self.stage_channels = [64, 128, 256, 512]
        self.head = nn.Sequential(
            nn.BatchNorm2d(512),
            make_activation(activation),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(512, num_classes),
        )
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        if self.normalize:
            x = (x.clamp(0, 1) - self.mean) / self.std
        out = self.stem(x)
        for stage in self.stages:
            out = stage(out)
        return self.head(out)


def preact_resnet18(
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    activation: str = "relu",
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
) -> PreActResNet18:
    """PreAct ResNet-18 (paper 003).

    Architecture of He et al. 2016 ("Identity Mappings in Deep Residual Networks"), used by Jin & Rinard 2020
    (paper 003), Section 6 and Appendix B.
    """
    return PreActResNet18(in_channels, num_classes, input_size, activation, normalize)

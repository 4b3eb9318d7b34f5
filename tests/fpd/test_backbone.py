"""Users' own backbones: torchvision's ResNet layout (written here, torchvision is never imported), the user's
module left unchanged, and warnings where the protocol cannot see what the user's forward() does."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from art_manifold_defenses.fpd import (
    FeaturePyramidDecoder,
    TorchvisionResNetAdapter,
    adapt_backbone,
    functional_relu_calls,
)


class Block(nn.Module):
    """torchvision's BasicBlock, with its ReLU module (``relu``) used twice as torchvision does."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TorchvisionStyleResNet(nn.Module):
    """The attribute layout and forward() of torchvision.models.ResNet, small widths."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(Block(8, 8, 1))
        self.layer2 = nn.Sequential(Block(8, 16, 2))
        self.layer3 = nn.Sequential(Block(16, 16, 2))
        self.layer4 = nn.Sequential(Block(16, 32, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_torchvision_layout_is_adapted_and_the_user_module_is_unchanged() -> None:
    torch.manual_seed(0)
    user = TorchvisionStyleResNet()
    before, relus = _state(user), sum(isinstance(m, nn.ReLU) for m in user.modules())
    adapter = adapt_backbone(user)
    assert isinstance(adapter, TorchvisionResNetAdapter)
    x = torch.rand(3, 1, 32, 32)
    user.eval(), adapter.eval()
    torch.testing.assert_close(adapter(x), user(x))  # the adapter computes torchvision's forward
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a faithful layout raises no warning
        model = FeaturePyramidDecoder(user, input_size=32)
    assert model.stage_channels == [8, 16, 16, 32] and model.num_classes == 10
    restored, logits = model(x, return_restored=True)
    assert restored.shape == x.shape and logits.shape == (3, 10)
    logits.sum().backward()
    # the user's module: same weights, same ReLUs, no gradient, not shared with the FPD
    after = _state(user)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert sum(isinstance(m, nn.ReLU) for m in user.modules()) == relus
    assert not any(isinstance(m, nn.ELU) for m in user.modules())
    assert all(p.grad is None for p in user.parameters())
    assert not {id(p) for p in user.parameters()} & {id(p) for p in model.parameters()}
    torch.testing.assert_close(
        model.head.linear.weight, user.fc.weight
    )  # the fc weights start the tanh classifier


def test_zoo_backbone_is_unchanged_by_wrapping() -> None:
    from art_manifold_defenses.models import build_model

    backbone = build_model("resnet18", in_channels=1, input_size=32, stem="imagenet")
    before = _state(backbone)
    FeaturePyramidDecoder(backbone, input_size=32)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert any(isinstance(m, nn.ReLU) for m in backbone.modules()) and not any(
        isinstance(m, nn.ELU) for m in backbone.modules()
    )


class NormalisingResNet(TorchvisionStyleResNet):
    """forward() normalises the input first: FPD cannot see that step."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward((x - 0.5) / 0.25)


class FunctionalStage(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x))


class FunctionalBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.stages = nn.ModuleList([FunctionalStage()])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages[0](self.stem(x)))


def test_forward_that_does_more_than_the_protocol_warns() -> None:
    with pytest.warns(
        UserWarning, match=r"forward\(\) computes something other than head\(stages\(stem\(x\)\)\)"
    ):
        FeaturePyramidDecoder(NormalisingResNet(), input_size=32)


def test_functional_relu_is_reported_when_swapping_activations() -> None:
    with pytest.warns(UserWarning, match="1 functional ReLU call"):
        model = FeaturePyramidDecoder(FunctionalBackbone(), input_size=16)
    assert sum(isinstance(m, nn.ELU) for m in model.modules()) == 1  # the stem's nn.ReLU was swapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keeping ReLUs: nothing to report
        FeaturePyramidDecoder(FunctionalBackbone(), input_size=16, swap_activation=False)


def test_functional_relu_calls_counts_every_form() -> None:
    x = torch.randn(4)
    assert functional_relu_calls(lambda: (F.relu(x), torch.relu(x), x.relu(), nn.ELU()(x))) == 3


def test_other_layouts_get_a_clear_error() -> None:
    with pytest.raises(TypeError, match="torchvision's ResNet layout"):
        FeaturePyramidDecoder(nn.Sequential(nn.Conv2d(1, 4, 3)))

"""The small *backbone protocol* the Feature Pyramid Decoder needs, and the ReLU -> ELU swap.

A block-based CNN can be enhanced with FPD when it exposes

- ``stem``: an ``nn.Module`` mapping the image ``(N, C, H, W)`` to the first feature map;
- ``stages``: an ordered ``nn.ModuleList`` (or ``nn.Sequential``) of the blocks/stages applied after the stem,
  each mapping a 4-D feature map to a 4-D feature map (their outputs feed the restoration pyramid, shallow to
  deep);
- optionally ``head``: the classifier after the last stage; when it contains an ``nn.Linear`` whose input
  width is the last stage's channel count, that linear layer is reused (with its weights) inside the
  Lipschitz-constrained head; otherwise a new one is created and ``num_classes`` must be given;
- optionally ``stage_channels``: the output channels of each stage (checked against a probe run when present).

The zoo's ``resnet18/50/101`` follow it. A ResNet in torchvision's layout (``conv1, bn1, relu, maxpool,
layer1..4, avgpool, fc``, e.g. ``torchvision.models.resnet18()`` or a user's copy of it) is adapted
automatically by :func:`adapt_backbone` (:class:`TorchvisionResNetAdapter`; torchvision itself is never
imported). Any other network can be given the protocol by a small wrapper module that holds its layers as
``stem``/``stages``/``head``.

Activations must be ``nn.ReLU`` *modules* for the ELU swap to see them: functional ``F.relu`` / ``torch.relu``
calls inside the stem or stages cannot be swapped, and :func:`functional_relu_calls` counts them (the
:class:`~art_manifold_defenses.fpd.FeaturePyramidDecoder` warns when it finds any).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..activations import FUNCTIONAL_RELUS

__all__ = [
    "TORCHVISION_RESNET_LAYOUT",
    "TorchvisionResNetAdapter",
    "adapt_backbone",
    "check_backbone",
    "find_linear",
    "functional_relu_calls",
    "swap_relu_for_elu",
]

#: Attribute names of a torchvision-style ResNet, in the order its ``forward`` applies them.
TORCHVISION_RESNET_LAYOUT = (
    "conv1",
    "bn1",
    "relu",
    "maxpool",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
    "avgpool",
    "fc",
)


class TorchvisionResNetAdapter(nn.Module):
    """A torchvision-style ResNet seen through the backbone protocol, sharing its modules (no copy):
    ``stem = (conv1, bn1, relu, maxpool)``, ``stages = (layer1, ..., layer4)``,
    ``head = (avgpool, flatten, fc)``.

    ``forward`` computes what torchvision's ``ResNet.forward`` computes. Works for any module with the
    attributes of :data:`TORCHVISION_RESNET_LAYOUT` (torchvision is not imported).

    Paper: Li et al. 2020 (paper 002), Section 3 / Fig. 1 (the block-based CNN that FPD enhances; the authors'
    code uses torchvision's ResNet layout); an adapter.
    """

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        missing = [
            name
            for name in TORCHVISION_RESNET_LAYOUT
            if not isinstance(getattr(resnet, name, None), nn.Module)
        ]
        if missing:
            raise TypeError(f"resnet lacks the torchvision ResNet layout: missing module(s) {missing}")
        part = {name: getattr(resnet, name) for name in TORCHVISION_RESNET_LAYOUT}
        self.stem = nn.Sequential(part["conv1"], part["bn1"], part["relu"], part["maxpool"])
        self.stages = nn.ModuleList([part["layer1"], part["layer2"], part["layer3"], part["layer4"]])
        self.head = nn.Sequential(part["avgpool"], nn.Flatten(1), part["fc"])

    def forward(self, x: Tensor) -> Tensor:
        out = self.stem(x)
        for stage in self.stages:
            out = stage(out)
        return self.head(out)


def adapt_backbone(backbone: nn.Module) -> nn.Module:
    """``backbone`` itself when it follows the protocol (``stem`` and ``stages``), a
    :class:`TorchvisionResNetAdapter` when it has torchvision's ResNet layout; otherwise a ``TypeError``
    saying what the protocol needs.
    """
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
    if hasattr(backbone, "stem") or hasattr(backbone, "stages"):
        return backbone
    if all(isinstance(getattr(backbone, name, None), nn.Module) for name in TORCHVISION_RESNET_LAYOUT):
        return TorchvisionResNetAdapter(backbone)
    return backbone  # check_backbone names what is missing


class _ReluCallCounter(TorchFunctionMode):
    """Counts ReLU calls (``F.relu``, ``torch.relu``, ``Tensor.relu`` and their in-place forms)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in FUNCTIONAL_RELUS:
            self.calls += 1
        return func(*args, **(kwargs or {}))


def functional_relu_calls(run: Callable[[], Any]) -> int:
    """How many ReLU calls ``run()`` makes (``F.relu``, ``torch.relu``, ``Tensor.relu``, in-place forms; an
    ``nn.ReLU`` module counts too, since it calls ``F.relu``). After :func:`swap_relu_for_elu` every call left
    is a functional one that the swap could not see.
    """
    counter = _ReluCallCounter()
    with counter:
        run()
    return counter.calls


def check_backbone(backbone: nn.Module) -> tuple[nn.Module, Sequence[nn.Module]]:
    """Return ``(stem, stages)`` of a backbone, or raise ``TypeError`` naming what is missing.

    Paper: Li et al. 2020 (paper 002), Section 3.1 / Fig. 1 (a block-based CNN whose blocks carry the
    denoising layers); an input check.
    """
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
    stem = getattr(backbone, "stem", None)
    if not isinstance(stem, nn.Module):
        raise TypeError(
            f"backbone {type(backbone).__name__} must expose `stem` (an nn.Module from the image to the "
            "first feature "
            "map) and `stages` (an nn.ModuleList of blocks), or have torchvision's ResNet layout "
            f"({', '.join(TORCHVISION_RESNET_LAYOUT)}); see art_manifold_defenses.fpd.backbone"
        )
    stages = getattr(backbone, "stages", None)
    if not isinstance(stages, (nn.ModuleList, nn.Sequential)) or len(stages) == 0:
        raise TypeError(
            f"backbone {type(backbone).__name__} must expose `stages` as a non-empty nn.ModuleList or "
            "nn.Sequential, "
            f"got {type(stages).__name__}"
        )
    return stem, list(stages)


def find_linear(module: nn.Module | None) -> nn.Linear | None:
    """The last ``nn.Linear`` inside ``module`` (``None`` when there is none)."""
    if module is None:
        return None
    found = None
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            found = sub
    return found


def swap_relu_for_elu(module: nn.Module, *, alpha: float = 1.0) -> int:
    """Replace every ``nn.ReLU`` module inside ``module`` by ``nn.ELU(alpha)`` in place; return how many were
    swapped.

    Paper: Li et al. 2020 (paper 002), Section 3.3 and Table 1 (ELU instead of ReLU).

    The paper (Sec. 3.3, Table 1) swaps all ReLUs of the enhanced CNN for ELUs for a smoother decision
    boundary.
    """
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.ELU(alpha=alpha))
            count += 1
        else:
            count += swap_relu_for_elu(child, alpha=alpha)
    return count

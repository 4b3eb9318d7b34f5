"""Construction-time helpers of :class:`~.network.FeaturePyramidDecoder` (Li et al. 2020, paper 002,
Sec. 3.1: the FPD is built around a block-based backbone): the backbone's copy, the sizes read from it, and
the check that its own ``forward()`` is what the protocol's modules compute."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .backbone import adapt_backbone, check_backbone, find_linear


def _copy_backbone(
    backbone: nn.Module,
) -> tuple[nn.Module, nn.Module, nn.Module, Sequence[nn.Module], nn.Linear | None]:
    """``(original, adapted, stem, stages, head_linear)``: one deep copy of the user's ``backbone`` together
    with its protocol adapter (which keeps sharing the copy's layers; the user's module is never changed), the
    adapted copy's stem and stages, and the last ``nn.Linear`` of its head (``None`` when there is none).
    Checked before anything is copied."""
    adapted = adapt_backbone(backbone)
    check_backbone(adapted)  # fails before copying anything
    # one copy: the adapter keeps sharing the copy's layers
    original, backbone = copy.deepcopy((backbone, adapted))
    stem, stages = check_backbone(backbone)
    return original, backbone, stem, stages, find_linear(getattr(backbone, "head", None))


def _read_sizes(
    stem: nn.Module, head_linear: nn.Linear | None, in_channels: int | None, num_classes: int | None
) -> tuple[int, int]:
    """``in_channels`` and ``num_classes``, each read from the backbone where not given: the stem's first
    ``nn.Conv2d`` and the head's last ``nn.Linear``."""
    if in_channels is None:
        first_conv = next((m for m in stem.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            raise ValueError(
                "in_channels must be given: the backbone's stem has no nn.Conv2d to read it from"
            )
        in_channels = first_conv.in_channels
    if num_classes is None:
        if head_linear is None:
            raise ValueError(
                "num_classes must be given: the backbone has no `head` with an nn.Linear to read it from"
            )
        num_classes = head_linear.out_features
    return in_channels, num_classes


@torch.no_grad()
def _warn_if_forward_differs(
    backbone: nn.Module,
    head: nn.Module | None,
    stem: nn.Module,
    stages: Sequence[nn.Module],
    in_channels: int,
    input_size: int,
    device: torch.device,
) -> None:
    """Warn when ``backbone(x)`` is not ``head(stages(stem(x)))`` on a random image: FPD only sees the
    protocol's modules, so whatever else the backbone's ``forward()`` does would be silently dropped."""
    if not isinstance(head, nn.Module):
        return
    modes = [m.training for m in backbone.modules()]
    backbone.eval()
    try:
        x = torch.rand(2, in_channels, input_size, input_size, generator=torch.Generator().manual_seed(0)).to(
            device
        )
        own = backbone(x)
        out = stem(x)
        for stage in stages:
            out = stage(out)
        seen = head(out)
    except Exception:  # noqa: BLE001 -- a forward that cannot run here is checked by the probe run
        return
    finally:
        for module, mode in zip(backbone.modules(), modes, strict=True):
            module.training = mode
    if (
        not isinstance(own, Tensor)
        or own.shape != seen.shape
        or not torch.allclose(own, seen, rtol=1e-4, atol=1e-5)
    ):
        warnings.warn(
            f"{type(backbone).__name__}.forward() computes something other than head(stages(stem(x))); "
            "the Feature "
            "Pyramid Decoder uses only the stem, the stages and the head's last nn.Linear, so whatever "
            "else forward() "
            "does (an input normalisation, functional activations, extra layers) is not part of the FPD "
            "network. "
            "Wrap the network so that stem/stages/head hold all of it (see "
            "art_manifold_defenses.fpd.backbone)",
            UserWarning,
            stacklevel=3,
        )

"""The small *backbone protocol* the Feature Pyramid Decoder needs, and the ReLU -> ELU swap.

A block-based CNN can be enhanced with FPD when it exposes

- ``stem``: an ``nn.Module`` mapping the image ``(N, C, H, W)`` to the first feature map;
- ``stages``: an ordered ``nn.ModuleList`` (or ``nn.Sequential``) of the blocks/stages applied after the stem, each
  mapping a 4-D feature map to a 4-D feature map (their outputs feed the restoration pyramid, shallow to deep);
- optionally ``head``: the classifier after the last stage; when it contains an ``nn.Linear`` whose input width is the
  last stage's channel count, that linear layer is reused (with its weights) inside the Lipschitz-constrained head;
  otherwise a new one is created and ``num_classes`` must be given;
- optionally ``stage_channels``: the output channels of each stage (checked against a probe run when present).

The zoo's ``resnet18/50/101`` follow it. Activations must be ``nn.ReLU`` *modules* for the ELU swap to see them
(functional ``F.relu`` calls cannot be swapped).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["check_backbone", "find_linear", "swap_relu_for_elu"]


def check_backbone(backbone: nn.Module) -> tuple[nn.Module, Sequence[nn.Module]]:
    """Return ``(stem, stages)`` of a backbone, or raise ``TypeError`` naming what is missing.

    Paper: Li et al. 2020 (paper 002), Section 3.1 / Fig. 1 (a block-based CNN whose blocks carry the
    denoising layers); no equation: an input check.
    """
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
    stem = getattr(backbone, "stem", None)
    if not isinstance(stem, nn.Module):
        raise TypeError(
            f"backbone {type(backbone).__name__} must expose `stem` (an nn.Module from the image to the first feature "
            "map) and `stages` (an nn.ModuleList of blocks); see art_manifold_defenses.fpd.backbone"
        )
    stages = getattr(backbone, "stages", None)
    if not isinstance(stages, (nn.ModuleList, nn.Sequential)) or len(stages) == 0:
        raise TypeError(
            f"backbone {type(backbone).__name__} must expose `stages` as a non-empty nn.ModuleList or nn.Sequential, "
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
    """Replace every ``nn.ReLU`` module inside ``module`` by ``nn.ELU(alpha)`` in place; return how many were swapped.

    Paper: Li et al. 2020 (paper 002), Section 3.3 and Table 1 (ELU instead of ReLU).

    The paper (Sec. 3.3, Table 1) swaps all ReLUs of the enhanced CNN for ELUs for a smoother decision boundary.
    """
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.ELU(alpha=alpha))
            count += 1
        else:
            count += swap_relu_for_elu(child, alpha=alpha)
    return count

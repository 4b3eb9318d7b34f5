"""Feature Pyramid Decoder (paper 002: G. Li et al., "Enhancing Intrinsic Adversarial Robustness via Feature Pyramid
Decoder", CVPR 2020): non-local denoising layers, the FPD network around any block-based CNN that exposes ``stem`` and
``stages`` (see :mod:`art_manifold_defenses.fpd.backbone`), and the two-phase ART trainer (Algorithm 1).

Registers the checkpoint defence ``"fpd"``: its builder wraps the zoo backbone with
``FeaturePyramidDecoder(backbone, **params)``, ``params`` being :attr:`FeaturePyramidDecoder.config`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..checkpoint import register_defence
from .adversarial import fgsm_linf, pgd_linf
from .backbone import (
    TorchvisionResNetAdapter,
    adapt_backbone,
    check_backbone,
    functional_relu_calls,
    swap_relu_for_elu,
)
from .denoising import DENOISING_FORMS, InnerDenoisingLayer, MiddleDenoisingLayer, dot_product_non_local_mean
from .network import FeaturePyramidDecoder, LipschitzConstrainedClassifier
from .restoration import ImageRestorationModule
from .suite import paper_fpd_suite, register_paper_fpd_suite
from .trainer import FPDTrainer, find_fpd

__all__ = [
    "DENOISING_FORMS",
    "FPDTrainer",
    "FeaturePyramidDecoder",
    "ImageRestorationModule",
    "InnerDenoisingLayer",
    "LipschitzConstrainedClassifier",
    "MiddleDenoisingLayer",
    "TorchvisionResNetAdapter",
    "adapt_backbone",
    "build_fpd",
    "check_backbone",
    "dot_product_non_local_mean",
    "fgsm_linf",
    "find_fpd",
    "functional_relu_calls",
    "paper_fpd_suite",
    "pgd_linf",
    "register_paper_fpd_suite",
    "swap_relu_for_elu",
]


def build_fpd(base_model: nn.Module, params: dict[str, Any]) -> FeaturePyramidDecoder:
    """Checkpoint builder for defence ``"fpd"``: ``FeaturePyramidDecoder(base_model, **params)``.

    Paper: Li et al. 2020 (paper 002), Section 3 / Fig. 1 (the FPD-enhanced CNN); no equation: the checkpoint
    builder that re-creates it. A sidecar written before ``denoising_form`` existed describes the authors' form
    (``x + NL(x)``), so such checkpoints load as ``denoising_form="authors_code"``.
    """
    return FeaturePyramidDecoder(base_model, **{"denoising_form": "authors_code", **params})


register_defence("fpd", build_fpd)

"""Feature Pyramid Decoder (paper 002: G. Li et al., "Enhancing Intrinsic Adversarial Robustness via Feature
Pyramid Decoder", CVPR 2020): non-local denoising layers, the FPD network around any block-based CNN that
exposes ``stem`` and ``stages`` (see :mod:`art_manifold_defenses.fpd.backbone`), and the two-phase ART trainer
(Algorithm 1).

The defence record ``"fpd"`` is :data:`.defence.DEFENCE`: its checkpoint builder :func:`build_fpd` wraps the
zoo backbone with ``FeaturePyramidDecoder(backbone, **params)``, ``params`` being
:attr:`FeaturePyramidDecoder.config`. Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .adversarial import fgsm_linf, pgd_linf
    from .backbone import (
        TorchvisionResNetAdapter,
        adapt_backbone,
        check_backbone,
        functional_relu_calls,
        swap_relu_for_elu,
    )
    from .defence import build_fpd
    from .denoising import (
        DENOISING_FORMS,
        InnerDenoisingLayer,
        MiddleDenoisingLayer,
        dot_product_non_local_mean,
    )
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

#: Public name -> the submodule defining it, imported on first use: importing this package (and its torch-free
#: ``defence`` module, read by ``amd train --help``) loads no network library.
_LAZY: dict[str, str] = {
    "fgsm_linf": ".adversarial",
    "pgd_linf": ".adversarial",
    "TorchvisionResNetAdapter": ".backbone",
    "adapt_backbone": ".backbone",
    "check_backbone": ".backbone",
    "functional_relu_calls": ".backbone",
    "swap_relu_for_elu": ".backbone",
    "DENOISING_FORMS": ".denoising",
    "InnerDenoisingLayer": ".denoising",
    "MiddleDenoisingLayer": ".denoising",
    "dot_product_non_local_mean": ".denoising",
    "FeaturePyramidDecoder": ".network",
    "LipschitzConstrainedClassifier": ".network",
    "ImageRestorationModule": ".restoration",
    "paper_fpd_suite": ".suite",
    "register_paper_fpd_suite": ".suite",
    "FPDTrainer": ".trainer",
    "find_fpd": ".trainer",
    "build_fpd": ".defence",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, submodules=True)

"""Radial-basis feature mapping (paper 001: Taghanaki et al., "A Kernelized Manifold Mapping to Diminish the
Effect of Adversarial Perturbations", CVPR 2019).

- :class:`RadialBasisMapping`: the Mahalanobis-like RBF block (``variant="paper"`` or ``"authors_code"``);
- :func:`add_radial_mapping`: insert blocks into any CNN (concatenation as in the paper's Fig. 2);
- :class:`RadialMappingClassifierPyTorch`: the ART estimator built from a user's model plus the mapping
  options;
- :func:`train_radial_mapping`: end-to-end training with the shared loop;
- :func:`feature_analysis`: the paper's Table 2 cluster scores (:mod:`.features`);
- :mod:`.segmentation`: synthetic shapes task, Dice, the DAG attack, U-Net training.

The defence record (``amd train --defense radial-mapping``, checkpoint builder :func:`build_radial_mapping`)
is :data:`.defence.DEFENCE`. Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .block import VARIANTS, RadialBasisMapping, kmeans_centers
    from .defence import build_radial_mapping
    from .estimator import RadialMappingClassifierPyTorch
    from .features import extract_features, feature_analysis
    from .segmentation import (
        DenseAdversaryGeneration,
        dice_score,
        make_shapes_dataset,
        segmentation_dice,
        train_segmentation,
    )
    from .training import train_radial_mapping
    from .transform import (
        RadialMappingConcat,
        RadialMappingProjection,
        add_radial_mapping,
        mapping_blocks,
        mapping_points,
    )

__all__ = [
    "VARIANTS",
    "DenseAdversaryGeneration",
    "RadialBasisMapping",
    "RadialMappingClassifierPyTorch",
    "RadialMappingConcat",
    "RadialMappingProjection",
    "add_radial_mapping",
    "build_radial_mapping",
    "dice_score",
    "extract_features",
    "feature_analysis",
    "kmeans_centers",
    "make_shapes_dataset",
    "mapping_blocks",
    "mapping_points",
    "segmentation_dice",
    "train_radial_mapping",
    "train_segmentation",
]

#: Public name -> the submodule defining it, imported on first use: importing this package (and its torch-free
#: ``defence`` module, read by ``amd train --help``) loads no network library.
_LAZY: dict[str, str] = {
    "VARIANTS": ".block",
    "RadialBasisMapping": ".block",
    "kmeans_centers": ".block",
    "RadialMappingClassifierPyTorch": ".estimator",
    "extract_features": ".features",
    "feature_analysis": ".features",
    "DenseAdversaryGeneration": ".segmentation",
    "dice_score": ".segmentation",
    "make_shapes_dataset": ".segmentation",
    "segmentation_dice": ".segmentation",
    "train_segmentation": ".segmentation",
    "train_radial_mapping": ".training",
    "RadialMappingConcat": ".transform",
    "RadialMappingProjection": ".transform",
    "add_radial_mapping": ".transform",
    "mapping_blocks": ".transform",
    "mapping_points": ".transform",
    "build_radial_mapping": ".defence",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, submodules=True)

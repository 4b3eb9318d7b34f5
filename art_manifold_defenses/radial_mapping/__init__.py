"""Radial-basis feature mapping (paper 001: Taghanaki et al., "A Kernelized Manifold Mapping to Diminish the Effect of
Adversarial Perturbations", CVPR 2019).

- :class:`RadialBasisMapping`: the Mahalanobis-like RBF block (``variant="paper"`` or ``"authors_code"``);
- :func:`add_radial_mapping`: insert blocks into any CNN (concatenation as in the paper's Fig. 2);
- :class:`RadialMappingClassifierPyTorch`: the ART estimator built from a user's model plus the mapping options;
- :func:`train_radial_mapping`: end-to-end training with the shared loop;
- :func:`feature_analysis`: the paper's Table 2 cluster scores;
- :mod:`.segmentation`: synthetic shapes task, Dice, the DAG attack, U-Net training.

Importing this package registers the checkpoint builder ``"radial-mapping"``.
"""

from typing import Any

from torch import nn

from ..checkpoint import register_defence
from .block import VARIANTS, RadialBasisMapping, kmeans_centers
from .estimator import RadialMappingClassifierPyTorch
from .feature_analysis import extract_features, feature_analysis
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


def build_radial_mapping(base_model: nn.Module, params: dict[str, Any]) -> nn.Module:
    """Checkpoint builder: the base model with the stored mapping options (weights are loaded afterwards).

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.2 / Fig. 2 (mapping blocks placed in a CNN); no
    equation: the checkpoint builder that re-inserts the blocks.
    """
    options = {k: v for k, v in params.items() if k not in ("init", "init_data", "seed", "inplace")}
    return add_radial_mapping(base_model, **options, init="uniform", inplace=True)


register_defence("radial-mapping", build_radial_mapping)

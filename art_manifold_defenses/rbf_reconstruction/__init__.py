"""RBF-CNN (paper 000): Nandy, Hsu and Lee, "Approximate Manifold Defense Against Multiple Adversarial
Perturbations", arXiv:2004.02183.

- :class:`RBFFilterBank` -- the RBF layer (eq. 2); :func:`fit_rbf_filters` -- non-parametric hard EM (eq. 3).
- :class:`RBFReconstruction` -- the stochastic reconstruction layer (eq. 4) with the BPDA gradient inside forward.
- :class:`RBFReconstructionPyTorch` -- the same as an ART ``PreprocessorPyTorch``.
- :class:`RBFCNN` -- reconstruction + CNN with voting over m = 10 reconstructions (eq. 5); ``stochastic`` and
  ``static_model()`` for the evaluation harness (the BPDA gradient is inside forward).
- :class:`RBFCNNTrainer` -- rCNN / rCNN+ training (an ART ``Trainer``) on the shared training loop.

Importing the package registers the checkpoint builder of defence ``"rbf-cnn"``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..checkpoint import register_defence
from .classifier import RBFCNN, StaticRBFCNN
from .em import fit_rbf_filters
from .filter_bank import RBFFilterBank, extract_patches, match_scores
from .preprocessor import RBFReconstructionPyTorch
from .reconstruction import RBFReconstruction, compute_weights, draw_filter_samples, stitch_patches
from .trainer import RBFCNNTrainer, pgd_noise_bank, smoothed_targets

__all__ = [
    "DEFENCE_NAME",
    "RBFCNN",
    "RBFCNNTrainer",
    "RBFFilterBank",
    "RBFReconstruction",
    "RBFReconstructionPyTorch",
    "StaticRBFCNN",
    "build_rbf_cnn",
    "compute_weights",
    "draw_filter_samples",
    "extract_patches",
    "fit_rbf_filters",
    "match_scores",
    "pgd_noise_bank",
    "smoothed_targets",
    "stitch_patches",
]

#: Registry name of the defence in checkpoints (rCNN and rCNN+ are both "rbf-cnn"; ``params["variant"]`` tells them apart).
DEFENCE_NAME = "rbf-cnn"

_MODEL_KEYS = tuple(RBFCNN.params)  # the constructor options a checkpoint stores


def build_rbf_cnn(base_model: nn.Module, params: dict[str, Any]) -> RBFCNN:
    """Checkpoint builder: an :class:`RBFCNN` around ``base_model`` with an empty filter bank of the stored shape
    (``num_filters``, ``patch_size``, ``in_channels``); the state dict then restores the filter means/variances.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section III / Fig. 1 (RBF layer, reconstruction layer, CNN);
    no equation: the checkpoint builder that re-creates that pipeline.
    """
    missing = {"num_filters", "patch_size", "in_channels"} - set(params)
    if missing:
        raise ValueError(f"rbf-cnn checkpoint params lack {sorted(missing)}")
    bank = RBFFilterBank(
        num_filters=int(params["num_filters"]),
        patch_size=int(params["patch_size"]),
        in_channels=int(params["in_channels"]),
    )
    return RBFCNN(base_model, bank, **{k: params[k] for k in _MODEL_KEYS if k in params})


register_defence(DEFENCE_NAME, build_rbf_cnn)

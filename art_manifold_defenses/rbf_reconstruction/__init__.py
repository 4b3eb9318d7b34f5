"""RBF-CNN (paper 000): Nandy, Hsu and Lee, "Approximate Manifold Defense Against Multiple Adversarial
Perturbations", arXiv:2004.02183.

- :class:`RBFFilterBank` -- the RBF layer (eq. 2); :func:`fit_rbf_filters` -- non-parametric hard EM (eq. 3).
- :class:`RBFReconstruction` -- the stochastic reconstruction layer (eq. 4) with the BPDA gradient inside
  forward.
- :class:`RBFReconstructionPyTorch` -- the same as an ART ``PreprocessorPyTorch``.
- :class:`RBFCNN` -- reconstruction + CNN with voting over m = 10 reconstructions (eq. 5); ``stochastic`` and
  ``static_model()`` for the evaluation harness (the BPDA gradient is inside forward).
- :class:`RBFCNNTrainer` -- rCNN / rCNN+ training (an ART ``Trainer``) on the shared training loop.

The defence record (``amd train --defense rbf-cnn``, checkpoint builder :func:`build_rbf_cnn`) is
:data:`.defence.DEFENCE`. Names are imported on first use (no torch for ``import
art_manifold_defenses.rbf_reconstruction``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .classifier import RBFCNN, StaticRBFCNN
    from .defence import build_rbf_cnn
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

DEFENCE_NAME = "rbf-cnn"

#: Public name -> the submodule defining it, imported on first use: importing this package (and its torch-free
#: ``defence`` module, read by ``amd train --help``) loads no network library.
_LAZY: dict[str, str] = {
    "RBFCNN": ".classifier",
    "StaticRBFCNN": ".classifier",
    "fit_rbf_filters": ".em",
    "RBFFilterBank": ".filter_bank",
    "extract_patches": ".filter_bank",
    "match_scores": ".filter_bank",
    "RBFReconstructionPyTorch": ".preprocessor",
    "RBFReconstruction": ".reconstruction",
    "compute_weights": ".reconstruction",
    "draw_filter_samples": ".reconstruction",
    "stitch_patches": ".reconstruction",
    "RBFCNNTrainer": ".trainer",
    "pgd_noise_bank": ".trainer",
    "smoothed_targets": ".trainer",
    "build_rbf_cnn": ".defence",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, submodules=True)

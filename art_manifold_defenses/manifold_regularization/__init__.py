"""Manifold regularization (paper 003: Jin & Rinard, "Manifold Regularization for Locally Stable Deep Neural
Networks"): sparse intrinsic, Hamming and dense regularizers, the paper's schedules, an ART trainer, and the
empirical ReLU-stability measure.

The trained model is the plain network (no test-time component): the defence record ``"manifold-reg"``
(:data:`.defence.DEFENCE`) rebuilds it unchanged and records the regularizer hyper-parameters in its metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .manifold_regularizer import ManifoldRegularizer, RegularizerOutput
    from .perturbation import perturbed_pair, sample_maximal_perturbation
    from .regularizers import (
        BATCHING_MODES,
        HAMMING_FORMS,
        dense_intrinsic_regularizer,
        fused_hamming_layer_distances,
        fused_hamming_pair_distances,
        hamming_layer_distances,
        hamming_layer_terms,
        hamming_regularizer,
        hamming_relaxation,
        hamming_term_from_distances,
        heat_kernel_weights,
        intrinsic_regularizer,
        relu_pattern_disagreements,
        uses_batch_statistics,
    )
    from .relu_hooks import ReLURecorder, find_relu_modules
    from .schedules import (
        PRESET_MOMENTUM,
        ManifoldRegularizationSchedule,
        PiecewiseLinear,
        constant_schedule,
        paper_schedule,
        preset_momentum,
    )
    from .stability import relu_stability
    from .trainer import (
        ABLATIONS,
        LEGACY_READINGS,
        ManifoldRegularizationTrainer,
        manifold_regularization_step,
        stored_regularizer_params,
    )

__all__ = [
    "ABLATIONS",
    "BATCHING_MODES",
    "DEFENCE_NAME",
    "HAMMING_FORMS",
    "LEGACY_READINGS",
    "ManifoldRegularizationSchedule",
    "ManifoldRegularizationTrainer",
    "PRESET_MOMENTUM",
    "ManifoldRegularizer",
    "PiecewiseLinear",
    "ReLURecorder",
    "RegularizerOutput",
    "constant_schedule",
    "preset_momentum",
    "dense_intrinsic_regularizer",
    "find_relu_modules",
    "fused_hamming_layer_distances",
    "fused_hamming_pair_distances",
    "hamming_layer_distances",
    "hamming_layer_terms",
    "hamming_regularizer",
    "hamming_relaxation",
    "hamming_term_from_distances",
    "heat_kernel_weights",
    "intrinsic_regularizer",
    "manifold_regularization_step",
    "paper_schedule",
    "perturbed_pair",
    "relu_pattern_disagreements",
    "relu_stability",
    "sample_maximal_perturbation",
    "stored_regularizer_params",
    "uses_batch_statistics",
]

DEFENCE_NAME = "manifold-reg"

#: Public name -> the submodule defining it, imported on first use: importing this package (and its torch-free
#: ``defence`` module, read by ``amd train --help``) loads no network library.
_LAZY: dict[str, str] = {
    "perturbed_pair": ".perturbation",
    "sample_maximal_perturbation": ".perturbation",
    "BATCHING_MODES": ".regularizers",
    "HAMMING_FORMS": ".regularizers",
    "ManifoldRegularizer": ".manifold_regularizer",
    "RegularizerOutput": ".manifold_regularizer",
    "dense_intrinsic_regularizer": ".regularizers",
    "fused_hamming_layer_distances": ".regularizers",
    "fused_hamming_pair_distances": ".regularizers",
    "hamming_layer_distances": ".regularizers",
    "hamming_layer_terms": ".regularizers",
    "hamming_regularizer": ".regularizers",
    "hamming_relaxation": ".regularizers",
    "hamming_term_from_distances": ".regularizers",
    "heat_kernel_weights": ".regularizers",
    "intrinsic_regularizer": ".regularizers",
    "relu_pattern_disagreements": ".regularizers",
    "uses_batch_statistics": ".regularizers",
    "ReLURecorder": ".relu_hooks",
    "find_relu_modules": ".relu_hooks",
    "PRESET_MOMENTUM": ".schedules",
    "ManifoldRegularizationSchedule": ".schedules",
    "PiecewiseLinear": ".schedules",
    "constant_schedule": ".schedules",
    "paper_schedule": ".schedules",
    "preset_momentum": ".schedules",
    "relu_stability": ".stability",
    "ABLATIONS": ".trainer",
    "LEGACY_READINGS": ".trainer",
    "ManifoldRegularizationTrainer": ".trainer",
    "manifold_regularization_step": ".trainer",
    "stored_regularizer_params": ".trainer",
    "build_defended_model": ".defence",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, submodules=True)

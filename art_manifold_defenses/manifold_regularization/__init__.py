"""Manifold regularization (paper 003: Jin & Rinard, "Manifold Regularization for Locally Stable Deep Neural
Networks"): sparse intrinsic, Hamming and dense regularizers, the paper's schedules, an ART trainer, and the
empirical ReLU-stability measure.

The trained model is the plain network (no test-time component): the checkpoint registry entry ``"manifold-reg"``
rebuilds it unchanged and records the regularizer hyper-parameters in its metadata.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..checkpoint import register_defence
from .perturbation import perturbed_pair, sample_maximal_perturbation
from .regularizers import (
    BATCHING_MODES,
    HAMMING_FORMS,
    ManifoldRegularizer,
    RegularizerOutput,
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


def build_defended_model(base_model: nn.Module, params: dict[str, Any]) -> nn.Module:
    """Registry builder: manifold regularization changes only the training, so the model is the base model."""
    return base_model


register_defence(DEFENCE_NAME, build_defended_model)

"""Paper 004 (Li et al., NeurIPS 2019): Gaussian randomized smoothing certified with the Rényi-divergence bound,
side by side with Cohen et al. and PixelDP, and stability training with noise (STN).

Public API:

- bounds: :func:`renyi_radius`, :func:`cohen_radius`, :func:`pixeldp_radius`;
- confidence bounds: :func:`clopper_pearson_lower`, :func:`clopper_pearson_upper`, :func:`sison_glaz_intervals`,
  :func:`top_two_bounds`;
- :class:`RenyiSmoothingPyTorch` (ART estimator: certify, predict with abstention, fit with STN, EoT gradients);
- :class:`SmoothedClassifier` (``nn.Module`` view, ``stochastic = True``), :func:`train_stn`, :func:`stn_step`;
- outputs: :func:`certify_to_tsv`, :func:`summarize_certification`, :func:`plot_certified_accuracy`,
  :func:`plot_bound_comparison`;
- fewer forward passes: the decision mode (``certify(x, radius=r)``, :func:`decide_sequentially`, a confidence
  sequence over :func:`round_schedule`; Voráček & Hein 2024) and input-specific sample sizes
  (``certify(x, samples="adaptive")``, :func:`adaptive_sample_sizes`; Chen et al. 2022).

Registers the checkpoint defences ``"stn"`` and ``"smoothing"`` (a :class:`SmoothedClassifier` around the base model).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..checkpoint import register_defence
from .adaptive import adaptive_sample_sizes
from .bounds import cohen_radius, pixeldp_epsilon, pixeldp_radius, renyi_radius
from .certification import BOUNDS, CountCertificate, certify_batch, certify_from_counts
from .confidence import clopper_pearson_lower, clopper_pearson_upper, sison_glaz_intervals, top_two_bounds
from .estimator import RenyiSmoothingPyTorch
from .module import SmoothedClassifier
from .outputs import (
    DEFAULT_RADII,
    certified_accuracy,
    certify_to_tsv,
    plot_bound_comparison,
    plot_certified_accuracy,
    read_certify_fingerprint,
    read_certify_tsv,
    summarize_certification,
    write_cohen_tsv,
)
from .sequential import DecisionResult, decide_sequentially, round_schedule
from .stability import stability_loss, stn_step, train_stn

__all__ = [
    "BOUNDS",
    "DEFAULT_RADII",
    "CountCertificate",
    "DecisionResult",
    "RenyiSmoothingPyTorch",
    "SmoothedClassifier",
    "adaptive_sample_sizes",
    "build_smoothed_classifier",
    "certified_accuracy",
    "certify_batch",
    "certify_from_counts",
    "certify_to_tsv",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "cohen_radius",
    "decide_sequentially",
    "pixeldp_epsilon",
    "pixeldp_radius",
    "plot_bound_comparison",
    "plot_certified_accuracy",
    "read_certify_fingerprint",
    "read_certify_tsv",
    "renyi_radius",
    "round_schedule",
    "sison_glaz_intervals",
    "stability_loss",
    "stn_step",
    "summarize_certification",
    "write_cohen_tsv",
    "top_two_bounds",
    "train_stn",
]


def build_smoothed_classifier(base_model: nn.Module, params: dict[str, Any]) -> SmoothedClassifier:
    """Checkpoint builder: ``params`` needs ``sigma`` (other training hyper-parameters are kept only as metadata).

    Paper: Li et al. 2019 (paper 004), Algorithm 1 (Gaussian noise added to the input of the base classifier);
    no equation: the checkpoint builder.
    """
    if "sigma" not in params:
        raise ValueError("a smoothing/stn checkpoint needs the defence parameter 'sigma'")
    return SmoothedClassifier(base_model, float(params["sigma"]), samples=int(params.get("samples", 1)))


register_defence("stn", build_smoothed_classifier)
register_defence("smoothing", build_smoothed_classifier)

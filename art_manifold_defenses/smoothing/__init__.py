"""Paper 004 (Li et al., NeurIPS 2019): Gaussian randomized smoothing certified with the Rényi-divergence
bound, side by side with Cohen et al. and PixelDP, and stability training with noise (STN).

Public API:

- bounds: :func:`renyi_radius`, :func:`cohen_radius`, :func:`pixeldp_radius`;
- confidence bounds: :func:`clopper_pearson_lower`, :func:`clopper_pearson_upper`,
  :func:`sison_glaz_intervals`, :func:`top_two_bounds`;
- :class:`RenyiSmoothingPyTorch` (ART estimator: certify, predict with abstention, fit with STN, EoT
  gradients);
- :class:`SmoothedClassifier` (``nn.Module`` view, ``stochastic = True``), :func:`train_stn`,
  :func:`stn_step`;
- outputs: :func:`certify_to_tsv`, :func:`summarize_certification`, :func:`plot_certified_accuracy`,
  :func:`plot_bound_comparison`;
- fewer forward passes: the decision mode (``certify(x, radius=r)``, :func:`decide_sequentially`, a confidence
  sequence over :func:`round_schedule`; Voráček & Hein 2024) and input-specific sample sizes
  (``certify(x, samples="adaptive")``, :func:`adaptive_sample_sizes`; Chen et al. 2022).

The defence record ``"stn"`` (``"smoothing"`` in earlier checkpoints) is :data:`.defence.DEFENCE`; its
checkpoint builder :func:`build_smoothed_classifier` puts a :class:`SmoothedClassifier` around the base model.
Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .adaptive import adaptive_sample_sizes
    from .bounds import cohen_radius, pixeldp_epsilon, pixeldp_radius, renyi_radius
    from .certification import BOUNDS, CountCertificate, certify_batch, certify_from_counts
    from .confidence import clopper_pearson_lower, clopper_pearson_upper, sison_glaz_intervals, top_two_bounds
    from .defence import build_smoothed_classifier
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

#: Public name -> the submodule defining it, imported on first use: importing this package (and its torch-free
#: ``defence`` module, read by ``amd train --help``) loads no network library.
_LAZY: dict[str, str] = {
    "adaptive_sample_sizes": ".adaptive",
    "cohen_radius": ".bounds",
    "pixeldp_epsilon": ".bounds",
    "pixeldp_radius": ".bounds",
    "renyi_radius": ".bounds",
    "BOUNDS": ".certification",
    "CountCertificate": ".certification",
    "certify_batch": ".certification",
    "certify_from_counts": ".certification",
    "clopper_pearson_lower": ".confidence",
    "clopper_pearson_upper": ".confidence",
    "sison_glaz_intervals": ".confidence",
    "top_two_bounds": ".confidence",
    "RenyiSmoothingPyTorch": ".estimator",
    "SmoothedClassifier": ".module",
    "DEFAULT_RADII": ".outputs",
    "certified_accuracy": ".outputs",
    "certify_to_tsv": ".outputs",
    "plot_bound_comparison": ".outputs",
    "plot_certified_accuracy": ".outputs",
    "read_certify_fingerprint": ".outputs",
    "read_certify_tsv": ".outputs",
    "summarize_certification": ".outputs",
    "write_cohen_tsv": ".outputs",
    "DecisionResult": ".sequential",
    "decide_sequentially": ".sequential",
    "round_schedule": ".sequential",
    "stability_loss": ".stability",
    "stn_step": ".stability",
    "train_stn": ".stability",
    "build_smoothed_classifier": ".defence",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, submodules=True)

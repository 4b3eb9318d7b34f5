"""Exact verification of small ReLU networks under l-inf perturbations (the "verified accuracy" of paper 003).

* :func:`extract_network` -- a PyTorch ``nn.Sequential`` as an exact chain of sparse affine maps and ReLUs
  (BatchNorm folded in eval mode);
* :func:`interval_bounds`, :func:`linear_relaxation_bounds`, :func:`lp_bounds` -- IBP, CROWN-style and
  per-neuron LP pre-activation bounds;
* :func:`solve_margin`, :func:`minimum_margin` -- the big-M MILP (Tjeng et al. 2019) solved with scipy's
  HiGHS;
* :func:`verify` / :class:`Verifier` -- per-image verdicts (verified / falsified with a checked counterexample
  / timeout) with stable-ReLU counts;
* :func:`stable_relu_fraction`, :class:`StabilityMonitor` -- how many ReLUs are provably stable (training for
  verifiability);
* ``amd verify`` -- see :mod:`.cli`.

The names are imported on first use (PEP 562), so that ``amd verify --help`` does not load torch or scipy.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .attack import pgd_attack
    from .bounds import (
        NetworkBounds,
        input_box,
        interval_bounds,
        linear_relaxation_bounds,
        margin_lower_bounds,
    )
    from .choices import BOUND_METHODS
    from .lp_tightening import lp_bounds
    from .milp import MarginResult, minimum_margin, solve_margin
    from .network import AffineLayer, ReluNetwork, extract_network
    from .stability import StabilityMonitor, stable_relu_fraction
    from .verifier import ImageVerification, VerificationResult, Verifier, compute_bounds, verify

__all__ = [
    "BOUND_METHODS",
    "AffineLayer",
    "ImageVerification",
    "MarginResult",
    "NetworkBounds",
    "ReluNetwork",
    "StabilityMonitor",
    "VerificationResult",
    "Verifier",
    "compute_bounds",
    "extract_network",
    "input_box",
    "interval_bounds",
    "linear_relaxation_bounds",
    "lp_bounds",
    "margin_lower_bounds",
    "minimum_margin",
    "pgd_attack",
    "solve_margin",
    "stable_relu_fraction",
    "verify",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "pgd_attack": ".attack",
        **dict.fromkeys(
            (
                "NetworkBounds",
                "input_box",
                "interval_bounds",
                "linear_relaxation_bounds",
                "margin_lower_bounds",
            ),
            ".bounds",
        ),
        "BOUND_METHODS": ".choices",
        "lp_bounds": ".lp_tightening",
        **dict.fromkeys(("MarginResult", "minimum_margin", "solve_margin"), ".milp"),
        **dict.fromkeys(("AffineLayer", "ReluNetwork", "extract_network"), ".network"),
        **dict.fromkeys(("StabilityMonitor", "stable_relu_fraction"), ".stability"),
        **dict.fromkeys(
            ("ImageVerification", "VerificationResult", "Verifier", "compute_bounds", "verify"), ".verifier"
        ),
    },
)

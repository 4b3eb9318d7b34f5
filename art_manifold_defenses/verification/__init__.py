"""Exact verification of small ReLU networks under l-inf perturbations (the "verified accuracy" of paper 003).

* :func:`extract_network` -- a PyTorch ``nn.Sequential`` as an exact chain of sparse affine maps and ReLUs
  (BatchNorm folded in eval mode);
* :func:`interval_bounds`, :func:`linear_relaxation_bounds`, :func:`lp_bounds` -- IBP, CROWN-style and per-neuron LP
  pre-activation bounds;
* :func:`solve_margin`, :func:`minimum_margin` -- the big-M MILP (Tjeng et al. 2019) solved with scipy's HiGHS;
* :func:`verify` / :class:`Verifier` -- per-image verdicts (verified / falsified with a checked counterexample /
  timeout) with stable-ReLU counts;
* :func:`stable_relu_fraction`, :class:`StabilityMonitor` -- how many ReLUs are provably stable (training for
  verifiability);
* ``amd verify`` -- see :mod:`.cli`.
"""

from .attack import pgd_attack
from .bounds import NetworkBounds, input_box, interval_bounds, linear_relaxation_bounds, margin_lower_bounds
from .lp_tightening import lp_bounds
from .milp import MarginResult, minimum_margin, solve_margin
from .network import AffineLayer, ReluNetwork, extract_network
from .stability import StabilityMonitor, stable_relu_fraction
from .verifier import BOUND_METHODS, ImageVerification, VerificationResult, Verifier, compute_bounds, verify

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

"""Option names and defaults of certification, without importing numpy, scipy or torch: ``amd certify`` offers
them as choices and defaults when the ``amd`` command builds its parser. :mod:`.certification`,
:mod:`.confidence` and :mod:`.outputs` re-export them."""

from __future__ import annotations

__all__ = [
    "BOUNDS",
    "COHEN_SAMPLES",
    "DEFAULT_ALPHA",
    "DEFAULT_N0",
    "DEFAULT_RADII",
    "DEFAULT_SAMPLES",
    "INTERVALS",
]

#: Bound names accepted by ``certify(..., bound=...)``; ``"all"`` means all of them.
BOUNDS = ("renyi", "cohen", "pixeldp")
#: Names accepted by :func:`~.confidence.top_two_bounds`.
INTERVALS = ("clopper-pearson", "sison-glaz")
#: Radii at which summaries report certified accuracy (includes the paper's MNIST L values 0.5, 1.0, 1.4,
#: 1.58, 2.0).
DEFAULT_RADII: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.4, 1.5, 1.58, 1.75, 2.0, 2.5, 3.0)

# The defaults of every certification entry point (``RenyiSmoothingPyTorch.certify``,
# :func:`~.outputs.certify_to_tsv`, :func:`~.outputs.certify_sharded`, ``amd certify`` and the estimator's
# ``alpha``): one value each, defined here once.
#: Failure probability of each certificate: Cohen et al. 2019's and ART's 0.001 (Li et al. 2019 report 0.05).
DEFAULT_ALPHA = 0.001
#: Estimation samples ``n`` per image: small enough that 100 MNIST images finish in minutes on a laptop CPU
#: (``docs/costs.md``); :data:`COHEN_SAMPLES` is the published setting, one argument away
#: (``--samples 100000``).
DEFAULT_SAMPLES = 1_000
#: Cohen et al. 2019's ``n`` (their CERTIFY on MNIST/CIFAR-10/ImageNet).
COHEN_SAMPLES = 100_000
#: Selection samples ``n0`` per image (Cohen et al. 2019).
DEFAULT_N0 = 100

"""art-manifold-defenses: five research defences as Adversarial Robustness Toolbox (ART) plug-ins, with one
honest evaluation harness over ART, Foolbox, CleverHans and AutoAttack.

Public API (foundation): :func:`load_dataset`, :func:`build_model`, :func:`train`, :func:`save_checkpoint`,
:func:`load_checkpoint`, :func:`to_art_classifier`; :class:`TrainingCollapseWarning` (what :func:`train` warns
with when an epoch ends with the network at chance or predicting one class).

The names are imported on first use (PEP 562), so that importing the package -- e.g. for the ``amd`` command's
``--help`` -- does not load torch or ART.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .checkpoint import load_checkpoint, register_defence, save_checkpoint
    from .data import load_dataset
    from .estimator import to_art_classifier
    from .models import build_model
    from .training import TrainingCollapseWarning, evaluate_accuracy, predict_logits, train

__all__ = [
    "TrainingCollapseWarning",
    "__version__",
    "build_model",
    "evaluate_accuracy",
    "load_checkpoint",
    "load_dataset",
    "predict_logits",
    "register_defence",
    "save_checkpoint",
    "to_art_classifier",
    "train",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "load_checkpoint": ".checkpoint",
        "register_defence": ".checkpoint",
        "save_checkpoint": ".checkpoint",
        "load_dataset": ".data",
        "to_art_classifier": ".estimator",
        "build_model": ".models",
        "TrainingCollapseWarning": ".training",
        "evaluate_accuracy": ".training",
        "predict_logits": ".training",
        "train": ".training",
    },
)

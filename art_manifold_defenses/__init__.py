"""art-manifold-defenses: five research defences as Adversarial Robustness Toolbox (ART) plug-ins, with one honest
evaluation harness over ART, Foolbox, CleverHans and AutoAttack.

Public API (foundation): :func:`load_dataset`, :func:`build_model`, :func:`train`, :func:`save_checkpoint`,
:func:`load_checkpoint`, :func:`to_art_classifier`; :class:`TrainingCollapseWarning` (what :func:`train` warns with
when an epoch ends with the network at chance or predicting one class).
"""

from ._version import __version__
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

"""The shared training loop's check against silent collapse: after every epoch a fixed, seeded subset of at
most :data:`COLLAPSE_CHECK_IMAGES` training images is predicted, and :class:`TrainingCollapseWarning` is
raised when the accuracy is at chance or one class takes at least :data:`COLLAPSE_DOMINANT_SHARE` of the
predictions (:func:`collapse_statistics`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ._training_context import _epoch_seed
from ._training_predict import predict_logits

#: At most this many training images (a fixed, seeded subset) are predicted after every epoch by the collapse
#: check.
COLLAPSE_CHECK_IMAGES = 512
#: One class taking at least this share of the predictions counts as a collapse.
COLLAPSE_DOMINANT_SHARE = 0.9


class TrainingCollapseWarning(UserWarning):
    """A training epoch ended with the network at chance accuracy or predicting (almost) one class."""


def collapse_statistics(predictions: Any, labels: Any, num_classes: int) -> dict[str, Any]:
    """Accuracy and class spread of ``predictions`` (class indices) against ``labels``, and whether they look
    like a collapsed network: accuracy at chance (at most ``min(1.5 / K, 1 / K + 0.1)`` for
    ``K = num_classes``) or one class taking at least 90% of the predictions (unless the labels themselves are
    that unbalanced).

    Returns:
        ``{"accuracy", "predicted_classes", "dominant_class", "dominant_share", "chance_threshold",
        "at_chance", "one_class", "collapsed"}``.
    """
    pred = np.asarray(predictions, dtype=np.int64).reshape(-1)
    true = np.asarray(labels, dtype=np.int64).reshape(-1)
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(
            f"predictions and labels must be non-empty and of the same length, got {pred.size} and "
            f"{true.size}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    counts = np.bincount(pred, minlength=int(num_classes))
    dominant = int(counts.argmax())
    share = float(counts[dominant]) / pred.size
    accuracy = float((pred == true).mean())
    threshold = min(1.5 / num_classes, 1.0 / num_classes + 0.1)
    label_share = float((true == dominant).mean())
    at_chance = accuracy <= threshold
    one_class = share >= COLLAPSE_DOMINANT_SHARE and label_share < COLLAPSE_DOMINANT_SHARE
    return {
        "accuracy": accuracy,
        "predicted_classes": int((counts > 0).sum()),
        "dominant_class": dominant,
        "dominant_share": share,
        "chance_threshold": threshold,
        "at_chance": at_chance,
        "one_class": one_class,
        "collapsed": at_chance or one_class,
    }


def _collapse_subset(n: int, seed: int) -> np.ndarray:
    """The training images the collapse check predicts: a fixed, seeded subset of at most
    COLLAPSE_CHECK_IMAGES."""
    if n <= COLLAPSE_CHECK_IMAGES:
        return np.arange(n)
    pick = np.random.default_rng(_epoch_seed(seed, -1)).choice(n, COLLAPSE_CHECK_IMAGES, replace=False)
    return np.sort(pick)


def _check_collapse(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    record: dict[str, float],
    *,
    epoch: int,
    epochs: int,
    device: torch.device,
    warn: bool,
) -> None:
    """Predict ``x`` (the subset), add ``train_subset_accuracy`` and ``predicted_classes`` to ``record`` and
    warn (when ``warn``) if the network looks collapsed. Models whose output is not ``(N, classes)`` logits
    are skipped."""
    logits = predict_logits(model, x, device=device)
    if logits.ndim != 2 or logits.shape[0] != len(x) or logits.shape[1] < 2:
        return
    stats = collapse_statistics(logits.argmax(1), y, int(logits.shape[1]))
    record["train_subset_accuracy"] = stats["accuracy"]
    record["predicted_classes"] = float(stats["predicted_classes"])
    if warn and stats["collapsed"]:
        reasons = []
        if stats["at_chance"]:
            reasons.append(f"accuracy at chance (<= {stats['chance_threshold']:.1%})")
        if stats["one_class"]:
            reasons.append(f"one class takes >= {COLLAPSE_DOMINANT_SHARE:.0%} of the predictions")
        warnings.warn(
            f"training looks collapsed after epoch {epoch + 1}/{epochs}: accuracy {stats['accuracy']:.1%} on "
            f"{len(x)} "
            f"training images ({logits.shape[1]} classes, chance {1 / logits.shape[1]:.1%}); class "
            f"{stats['dominant_class']} "
            f"takes {stats['dominant_share']:.1%} of the predictions; {stats['predicted_classes']} distinct "
            "classes "
            f"predicted ({' and '.join(reasons)}). If it persists, the network is likely stuck (e.g. dead "
            "ReLUs, a "
            "constant output): check the loss weights, learning rate and initialisation "
            "(collapse_check=False turns "
            "this check off).",
            TrainingCollapseWarning,
            stacklevel=3,
        )

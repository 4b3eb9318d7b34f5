"""Glue to ART: wrap any PyTorch model as a ``PyTorchClassifier`` with the package's conventions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from torch import Tensor, nn

from .utils import art_device_type, check_nb_classes, check_positive_int, resolve_device

__all__ = [
    "ClassifierModule",
    "Float32Input",
    "PerSampleClassGradientClassifier",
    "is_identity_standardisation",
    "to_art_classifier",
]


def is_identity_standardisation(op: Any) -> bool:
    """Whether ``op`` is an ART mean/std standardisation with mean 0 and std 1 (ART's default
    ``preprocessing=(0, 1)``: ``(x - 0) / 1 == x`` exactly), which a module view can skip."""
    from art.preprocessing.standardisation_mean_std import (
        StandardisationMeanStd,
        StandardisationMeanStdPyTorch,
    )

    if not isinstance(op, (StandardisationMeanStd, StandardisationMeanStdPyTorch)):
        return False
    return bool(np.all(np.asarray(op.mean) == 0) and np.all(np.asarray(op.std) == 1))


class ClassifierModule(nn.Module):
    """An ART ``PyTorchClassifier`` as a plain module: the preprocessing operations that apply when fitting
    (``fit=True``: ``apply_fit``) or predicting (``apply_predict``), then the classifier's model -- what the
    harness attacks and what trainers back-propagate through. Identity standardisations are skipped (they
    change nothing).

    ``stochastic`` is set when a preprocessing operation or the model is stochastic (e.g. the RBF
    reconstruction).

    Raises:
        TypeError: naming ``name`` when an operation is not a ``PreprocessorPyTorch`` (a numpy preprocessing
            step has no gradient for the attacks or trainers to follow).
    """

    def __init__(self, classifier: Any, *, fit: bool, name: str = "classifier") -> None:
        super().__init__()
        self.net = classifier.model
        flag = "apply_fit" if fit else "apply_predict"
        operations = [
            op
            for op in getattr(classifier, "preprocessing_operations", None) or []
            if getattr(op, flag, True) and not is_identity_standardisation(op)
        ]
        for op in operations:
            if not callable(getattr(op, "forward", None)) or not hasattr(op, "estimate_forward"):
                raise TypeError(
                    f"{name}: its preprocessing {type(op).__name__} is not a PreprocessorPyTorch, so no "
                    "gradient can "
                    "pass through it; use PreprocessorPyTorch defences (or put the step inside the model)"
                )
        self.operations = operations  # a plain list: ART's operations are not modules
        if any(bool(getattr(op, "stochastic", False)) for op in operations) or getattr(
            self.net, "stochastic", False
        ):
            self.stochastic = True

    def forward(self, x: Tensor) -> Tensor:
        for op in self.operations:
            x, _ = op.forward(x)
        return self.net(x)  # type: ignore[no-any-return]


class Float32Input(nn.Module):
    """Casts inputs to float32 before the wrapped module (numpy 2 makes some ART attacks feed float64)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.float())


def _image_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a tuple of ints; ``ValueError`` unless it is ``(C, H, W)`` with positive sizes."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    return shape


def _classifier_arguments(
    model: nn.Module, shape: tuple[int, ...], nb_classes: int, loss: nn.Module | None
) -> dict[str, Any]:
    """The ``PyTorchClassifier`` arguments of the package's conventions: ``model`` behind
    :class:`Float32Input`, cross-entropy unless ``loss`` is given, and the input shape and number of
    classes."""
    return {
        "model": Float32Input(model),
        "loss": loss if loss is not None else nn.CrossEntropyLoss(),
        "input_shape": shape,
        "nb_classes": nb_classes,
    }


class PerSampleClassGradientClassifier(PyTorchClassifier):
    """A ``PyTorchClassifier`` whose ``class_gradient`` with one label per sample takes ONE backward pass.

    Known limitation: a model that mixes samples (e.g. BatchNorm using batch statistics) would get the
    gradient of the sum; so ``training_mode=True``, gradients at an intermediate layer, recurrent models and
    non-PyTorch preprocessing fall back to ART's per-label passes.
    """

    def class_gradient(
        self, x: Any, label: Any = None, training_mode: bool = False, **kwargs: Any
    ) -> np.ndarray:  # type: ignore[override]
        if isinstance(label, list):
            label = np.array(label)
        per_sample = (
            isinstance(label, np.ndarray) and label.ndim == 1 and len(label) == len(x) and len(label) > 1
        )
        if (
            not per_sample
            or training_mode
            or self.is_rnn
            or self._layer_idx_gradients >= 0
            or not self.all_framework_preprocessing
            or isinstance(x, torch.Tensor)
        ):
            return super().class_gradient(x, label=label, training_mode=training_mode, **kwargs)
        if label.min() < 0 or label.max() >= self.nb_classes:
            raise ValueError(
                f"labels must lie in [0, {self.nb_classes}), got values from {label.min()} to {label.max()}"
            )
        self._model.train(mode=False)
        x_grad = torch.from_numpy(np.asarray(x)).to(self._device).requires_grad_(True)
        x_input, _ = self._apply_preprocessing(x_grad, y=None, fit=False, no_grad=False)
        logits = self._model(x_input)[-1]
        index = torch.from_numpy(label.astype(np.int64)).to(logits.device)
        selected = logits.gather(1, index.unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(selected, x_grad)
        return grad.detach().cpu().numpy()[:, None]


def to_art_classifier(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    nb_classes: int,
    device: str | torch.device | None = "cpu",
    loss: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    preprocessing_defences: Any = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    per_sample_class_gradient: bool = False,
    **kwargs: Any,
) -> PyTorchClassifier:
    """An ART ``PyTorchClassifier`` for ``model`` with ``clip_values=(0, 1)``, cross-entropy loss, the right
    ``input_shape``/``nb_classes``, ART's ``device_type`` derived from ``device``, and float32 casting of
    inputs.

    The returned classifier's ``model`` is a :class:`Float32Input` around ``model`` (ART's ``ModelWrapper``
    adds its own layer on top); parameters are shared, so training through ART trains ``model``.
    ``per_sample_class_gradient=True`` returns a :class:`PerSampleClassGradientClassifier` (one backward pass
    per ``class_gradient`` call with per-sample labels; the evaluation harness uses it).

    Raises ``ValueError`` naming ``nb_classes`` when it is not the number of logits ``model`` returns on an
    input of ``input_shape`` (checked with one forward pass when there are no preprocessing defences), and
    naming ``input_shape`` when the model cannot run on it.
    """
    shape = _image_input_shape(input_shape)
    if not preprocessing_defences:  # one forward pass: nb_classes must be the model's number of logits
        check_nb_classes(nb_classes, model, shape, device=resolve_device(device))
    else:
        check_positive_int(nb_classes, "nb_classes", minimum=2)
    device_type = art_device_type(device)
    model.eval()
    cls = PerSampleClassGradientClassifier if per_sample_class_gradient else PyTorchClassifier
    return cls(
        **_classifier_arguments(model, shape, nb_classes, loss),
        optimizer=optimizer,
        clip_values=clip_values,
        preprocessing_defences=preprocessing_defences,
        device_type=device_type,
        **kwargs,
    )

"""The model under evaluation, for :func:`~.runner.evaluate`: unwrapping it to a plain ``nn.Module``, reading
its harness attributes (``stochastic``, ``bpda_surrogate``) through thin wrappers, naming it, and scoring it
(one pass, or a strict majority vote of stochastic passes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..utils import as_float_tensor, set_seed


def _as_module(model: Any, name: str) -> nn.Module:
    """A plain ``nn.Module`` for ``model`` (an ``nn.Module`` or an ART ``PyTorchClassifier``)."""
    if isinstance(model, nn.Module):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module):
        if getattr(model, "preprocessing_operations", None):
            from ..estimator import ClassifierModule

            return ClassifierModule(model, fit=False, name=name)
        return inner
    raise TypeError(
        f"{name} must be a torch.nn.Module or an ART PyTorchClassifier, got {type(model).__name__}"
    )


def _attribute(model: nn.Module, name: str, default: Any) -> Any:
    """Read a harness attribute from the model or from the module a thin wrapper (Float32Input, ART) holds."""
    frontier: list[Any] = [model]
    for _ in range(4):  # the model itself, then up to three levels of thin wrappers
        for candidate in frontier:
            if hasattr(candidate, name):
                return getattr(candidate, name)
        frontier = [
            inner
            for c in frontier
            for inner in (getattr(c, "module", None), getattr(c, "net", None))
            if isinstance(inner, nn.Module)
        ]
    return default


def _model_name(module: nn.Module) -> str:
    inner = getattr(module, "module", None)
    if type(module).__name__ == "Float32Input" and isinstance(inner, nn.Module):
        return type(inner).__name__
    return type(module).__name__


@torch.no_grad()
def _predict_classes(model: nn.Module, x: np.ndarray, *, device: torch.device, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(x), batch_size):
        out.append(
            model(as_float_tensor(x[start : start + batch_size], device)).float().argmax(1).cpu().numpy()
        )
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _score(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    votes: int,
    seed: int,
    device: torch.device,
    batch_size: int,
    num_classes: int,
) -> np.ndarray:
    """Per point: correct by one pass (``votes == 1``) or by strict majority of ``votes`` stochastic passes
    (the true class must get more votes than any other class; a tie counts as wrong)."""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    set_seed(seed)
    if votes == 1:
        return np.asarray(_predict_classes(model, x, device=device, batch_size=batch_size) == y, dtype=bool)
    counts = np.zeros((len(x), num_classes), dtype=np.int64)
    for _ in range(votes):
        pred = _predict_classes(model, x, device=device, batch_size=batch_size)
        counts[np.arange(len(x)), pred] += 1
    true_votes = counts[np.arange(len(x)), y]
    counts[np.arange(len(x)), y] = -1
    return np.asarray(true_votes > counts.max(axis=1), dtype=bool)

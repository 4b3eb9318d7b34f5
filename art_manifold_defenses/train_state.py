"""The training loop's checkpoint (``train_state.pt``): what it records, how a run resumes from it, and the
fingerprint that refuses to resume another run's state.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .fingerprint import arrays_hash, check_fingerprint, make_fingerprint, model_hash, overwrite_hint
from .utils import write_atomic

__all__ = ["TRAIN_STATE_FILE", "load_train_state", "resume_from", "save_train_state", "train_fingerprint"]

TRAIN_STATE_FILE = "train_state.pt"


def save_train_state(
    path: Path,
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: list[dict[str, float]],
    seed: int,
    fingerprint: dict[str, Any],
) -> None:
    """Write the state after ``epoch`` epochs through a ``.tmp`` sibling and ``os.replace`` (a run killed
    mid-write leaves the previous state intact)."""
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict()
        if scheduler is not None and hasattr(scheduler, "state_dict")
        else None,
        "history": history,
        "seed": seed,
        "fingerprint": fingerprint,
    }
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_train_state(path: Path, device: torch.device | str) -> dict[str, Any]:
    """A ``train_state.pt`` (tensors and plain values only): every failure is a ``ValueError`` naming the
    file."""
    hint = overwrite_hint("resume=False")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path} holds more than tensors (pickled code?); refusing to load it; {hint}"
        ) from exc
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a readable training state (empty or truncated by a crash?): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; {hint}"
        ) from exc
    if not isinstance(state, dict) or not {"epoch", "model", "optimizer", "history"} <= set(state):
        raise ValueError(
            f"{path} is not a training state of this package (missing epoch/model/optimizer/history); {hint}"
        )
    return state


def resume_from(
    state: dict[str, Any] | None,
    path: Path,
    fingerprint: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> tuple[int, list[dict[str, float]]]:
    """Load ``state`` (read from ``path``; ``None``: nothing to resume) into the model, optimizer and
    scheduler after checking that it was written by the same run; returns ``(epochs done, history)``."""
    if state is None:
        return 0, []
    check_fingerprint(state.get("fingerprint"), fingerprint, source=path, hint=overwrite_hint("resume=False"))
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None and hasattr(scheduler, "load_state_dict"):
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"]), list(state["history"])


def _optimizer_settings(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's class and the hyper-parameters of each parameter group, one field each
    (``optimizer.lr``, or ``optimizer[1].lr`` for a second group), so that a refusal names the one that
    differs."""
    fields: dict[str, Any] = {"optimizer": type(optimizer).__name__}
    single = len(optimizer.param_groups) == 1
    for i, group in enumerate(optimizer.param_groups):
        for key, value in sorted(group.items()):
            if key != "params":
                fields[f"optimizer.{key}" if single else f"optimizer[{i}].{key}"] = value
    return fields


def train_fingerprint(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step_fn: Any,
    extra: Mapping[str, Any] | None,
    **settings: Any,
) -> dict[str, Any]:
    """What a training state was computed from: the architecture, the data, the optimizer and every setting of
    :func:`~art_manifold_defenses.training.train` that changes the result, plus the caller's ``extra``
    fields."""
    step = None if step_fn is None else getattr(step_fn, "__qualname__", type(step_fn).__name__)
    return make_fingerprint(
        "train",
        architecture=model_hash(model, weights=False),
        data=arrays_hash(x, y),
        **_optimizer_settings(optimizer),
        scheduler=None if scheduler is None else type(scheduler).__name__,
        step_fn=step,
        **settings,
        **dict(extra or {}),
    )

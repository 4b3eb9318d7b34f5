"""Checkpoints: a ``torch.save`` of the state dict plus a JSON sidecar with everything needed to rebuild the model.

``model.pt`` holds tensors only and is loaded with ``weights_only=True`` (pickled code is refused).
``model.json`` holds the architecture (a zoo name and its arguments), the defence (its registered name and
hyper-parameters), the dataset and the package version. A defence package registers a builder with
:func:`register_defence` that turns ``(base model, defence params)`` back into the defended ``nn.Module``.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .models import build_model

__all__ = ["DefenceBuilder", "load_checkpoint", "read_metadata", "register_defence", "save_checkpoint", "sidecar_path"]

#: ``builder(base_model, params) -> defended model``; the state dict of the defended model is then loaded into it.
DefenceBuilder = Callable[[nn.Module, dict[str, Any]], nn.Module]
_BUILDERS: dict[str, DefenceBuilder] = {}
#: Defence name -> module that registers its builder on import (imported lazily when a checkpoint names it).
KNOWN_DEFENCE_MODULES: dict[str, str] = {
    "rbf-cnn": "art_manifold_defenses.rbf_reconstruction",
    "radial-mapping": "art_manifold_defenses.radial_mapping",
    "fpd": "art_manifold_defenses.fpd",
    "manifold-reg": "art_manifold_defenses.manifold_regularization",
    "stn": "art_manifold_defenses.smoothing",
    "smoothing": "art_manifold_defenses.smoothing",
}


def register_defence(name: str, builder: DefenceBuilder) -> None:
    """Register how to rebuild a defended model of defence ``name`` from its base model and hyper-parameters.

    No paper or equation: the defence registry used by :func:`load_checkpoint`.
    """
    _BUILDERS[name] = builder


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar next to a ``.pt`` checkpoint."""
    return Path(path).with_suffix(".json")


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    architecture: dict[str, Any],
    defence: dict[str, Any] | None = None,
    dataset: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``path`` (state dict) and its ``.json`` sidecar; return the path of the ``.pt`` file.

    No paper or equation: checkpoint I/O.

    Args:
        architecture: ``{"name": <zoo name>, "in_channels": ..., "num_classes": ..., "input_size": ..., ...}``;
            every key but ``name`` is passed to :func:`~art_manifold_defenses.models.build_model`.
        defence: ``{"name": <registered defence>, "params": {...}}`` or ``None`` for an undefended model.
        dataset: dataset name the model was trained on.
        extra: anything else JSON-serialisable (accuracy, training settings, seed).
    """
    if "name" not in architecture:
        raise ValueError("architecture must contain the zoo model 'name'")
    if defence is not None and "name" not in defence:
        raise ValueError("defence must contain its registered 'name'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    metadata = {
        "format": "art-manifold-defenses/1",
        "package_version": __version__,
        "torch_version": torch.__version__,
        "architecture": architecture,
        "defence": defence,
        "dataset": dataset,
        "extra": extra or {},
    }
    sidecar_path(path).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint sidecar")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint."""
    side = sidecar_path(path)
    if not side.is_file():
        raise FileNotFoundError(f"checkpoint sidecar {side} not found (every model.pt needs its model.json)")
    metadata = json.loads(side.read_text())
    if not isinstance(metadata, dict) or "architecture" not in metadata:
        raise ValueError(f"{side} is not a checkpoint sidecar: no 'architecture'")
    return metadata


def build_from_metadata(metadata: dict[str, Any]) -> nn.Module:
    """Rebuild the (possibly defended) model described by a sidecar, with freshly initialised weights."""
    arch = dict(metadata["architecture"])
    model = build_model(arch.pop("name"), **arch)
    defence = metadata.get("defence")
    if defence:
        name = defence["name"]
        if name not in _BUILDERS and name in KNOWN_DEFENCE_MODULES:
            importlib.import_module(KNOWN_DEFENCE_MODULES[name])
        if name not in _BUILDERS:
            raise ValueError(f"checkpoint uses defence {name!r}, which no installed module registers; known: {sorted(_BUILDERS)}")
        model = _BUILDERS[name](model, dict(defence.get("params", {})))
    return model


def load_checkpoint(
    path: str | os.PathLike[str], *, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint; return ``(model in eval mode on device, metadata)``.

    No paper or equation: checkpoint I/O (rebuilds defended models through :func:`register_defence`).

    With ``model=None`` the model is rebuilt from the sidecar. A given ``model`` must match the stored state dict.

    Raises:
        FileNotFoundError: ``path`` or its sidecar is missing.
        ValueError: the file holds pickled code, or the state dict does not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    metadata = read_metadata(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path} holds more than tensors (pickled code?); refusing to load it: {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    if model is None:
        model = build_from_metadata(metadata)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        arch = metadata["architecture"].get("name")
        raise ValueError(f"checkpoint {path} (architecture {arch!r}) does not match the model: {str(exc).splitlines()[0]}") from exc
    return model.to(device).eval(), metadata

"""Checkpoints: a ``torch.save`` of the state dict plus a JSON sidecar with everything needed to rebuild the
model.

``model.pt`` holds tensors only and is loaded with ``weights_only=True`` (pickled code is refused).
``model.json`` holds the architecture (a zoo name and its arguments), the defence (its registered name and
hyper-parameters), the dataset, the package version and the activation modules of the saved network. The
defended ``nn.Module`` is rebuilt from ``(base model, defence params)`` by the ``build`` of the defence's
record in :data:`art_manifold_defenses.defences.DEFENCES` (names of earlier versions through its ``ALIASES``),
or by a builder registered with :func:`register_defence` (a defence outside the package).

The sidecar is not trusted further than the weights confirm it: :func:`load_checkpoint` rebuilds the model it
describes and requires the same state-dict keys and shapes, the same activation modules as were saved
(sidecars of earlier versions do not record them) and finite weights. Every failure to read or match a
checkpoint is one :class:`CheckpointError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._version import __version__
from .defences import defence_names, get_defence
from .models import build_model
from .utils import write_atomic

__all__ = [
    "CheckpointError",
    "DefenceBuilder",
    "activation_counts",
    "check_checkpoint_fits_data",
    "load_checkpoint",
    "read_metadata",
    "register_defence",
    "save_checkpoint",
    "sidecar_path",
]


class CheckpointError(ValueError):
    """A checkpoint (``model.pt`` and its ``model.json``) that cannot be read, or whose parts do not match."""


#: ``builder(base_model, params) -> defended model``; the state dict of the defended model is then loaded into
#: it.
DefenceBuilder = Callable[[nn.Module, dict[str, Any]], nn.Module]
#: Builders registered with :func:`register_defence`; the package's own defences are in ``defences.DEFENCES``.
_BUILDERS: dict[str, DefenceBuilder] = {}
#: Activation modules recorded in a sidecar and checked on load (a subclass counts as the class it derives
#: from).
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.LogSigmoid,
    nn.Softsign,
)


def activation_counts(model: nn.Module) -> dict[str, int]:
    """How many activation modules of each kind ``model`` has, e.g. ``{"ReLU": 4}`` (stored in the sidecar:
    the activation is not visible in the weights, so a sidecar edited to another one would otherwise load
    silently)."""
    counts: Counter[str] = Counter()
    for module in model.modules():
        for kind in ACTIVATION_TYPES:
            if isinstance(module, kind):
                counts[kind.__name__] += 1
                break
    return dict(sorted(counts.items()))


def register_defence(name: str, builder: DefenceBuilder) -> None:
    """Register how to rebuild a defended model of defence ``name`` from its base model and hyper-parameters
    (a defence outside :data:`art_manifold_defenses.defences.DEFENCES`; a registered name takes precedence
    there).
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

    Args:
        architecture: ``{"name": <zoo name>, "in_channels": ..., "num_classes": ..., "input_size": ...,
            ...}``; every key but ``name`` is passed to :func:`~art_manifold_defenses.models.build_model`.
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
    write_atomic(path, lambda tmp: torch.save(state, tmp))
    metadata = {
        "format": "art-manifold-defenses/1",
        "package_version": __version__,
        "torch_version": torch.__version__,
        "architecture": architecture,
        "defence": defence,
        "dataset": dataset,
        "activations": activation_counts(model),
        "extra": extra or {},
    }
    sidecar_path(path).write_text(
        json.dumps(metadata, indent=2, sort_keys=True, default=_json_default) + "\n"
    )
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint sidecar")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint, checked for the fields :func:`load_checkpoint` needs.

    Raises:
        FileNotFoundError: no sidecar.
        CheckpointError: the sidecar is not JSON or misses / mistypes a field (the message names the file).
    """
    side = sidecar_path(path)
    if not side.is_file():
        raise FileNotFoundError(f"checkpoint sidecar {side} not found (every model.pt needs its model.json)")
    try:
        metadata = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint sidecar {side} is not readable JSON: {exc}") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("architecture"), dict):
        raise CheckpointError(f"{side} is not a checkpoint sidecar: no 'architecture' object")
    if not isinstance(metadata["architecture"].get("name"), str):
        raise CheckpointError(
            f"{side}: 'architecture' must name its zoo model in 'name', got "
            f"{metadata['architecture'].get('name')!r}"
        )
    defence = metadata.get("defence")
    if defence is not None and not (
        isinstance(defence, dict)
        and isinstance(defence.get("name"), str)
        and isinstance(defence.get("params", {}), dict)
    ):
        raise CheckpointError(
            f"{side}: 'defence' must be null or {{'name': str, 'params': {{...}}}}, got {defence!r}"
        )
    for key, kind in (("dataset", str), ("activations", dict), ("extra", dict)):
        if metadata.get(key) is not None and not isinstance(metadata[key], kind):
            raise CheckpointError(f"{side}: '{key}' must be a {kind.__name__} or null, got {metadata[key]!r}")
    return metadata


def build_from_metadata(metadata: dict[str, Any]) -> nn.Module:
    """Rebuild the (possibly defended) model described by a sidecar, with freshly initialised weights."""
    arch = dict(metadata["architecture"])
    model = build_model(arch.pop("name"), **arch)
    defence = metadata.get("defence")
    if defence:
        name = defence["name"]
        params = dict(defence.get("params", {}))
        if name in _BUILDERS:
            return _BUILDERS[name](model, params)
        try:
            record = get_defence(name)
        except KeyError:
            known = sorted({*defence_names(), *_BUILDERS})
            raise ValueError(
                f"checkpoint uses defence {name!r}, which no installed module registers; known: {known}"
            ) from None
        model = record.build(model, params)
    return model


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (tensors only, all finite)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds more than tensors (pickled objects, which could run code on load); "
            "refusing to load it"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint (empty, truncated or another format?): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{path} holds non-finite weights (NaN or Inf) in {', '.join(bad[:5])}"
            f"{' and more' if len(bad) > 5 else ''}: the training that wrote it diverged"
        )
    return state


def load_checkpoint(
    path: str | os.PathLike[str], *, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint; return ``(model in eval mode on device, metadata)``.

    With ``model=None`` the model is rebuilt from the sidecar. A given ``model`` must match the stored state
    dict. Either way the state dict must fit it exactly (keys and shapes), its activation modules must be the
    ones recorded at save time (when the sidecar records them) and every weight must be finite.

    Raises:
        FileNotFoundError: ``path`` or its sidecar is missing.
        CheckpointError: (a ``ValueError``) the file is empty, truncated or holds pickled code, a weight is
            NaN/Inf, the sidecar is malformed, or sidecar and weights do not match; the message names the
            file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    metadata = read_metadata(path)
    state = _read_state(path)
    arch = metadata["architecture"].get("name")
    if model is None:
        try:
            model = build_from_metadata(metadata)
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(
                f"cannot rebuild the model that {sidecar_path(path)} describes: {exc}"
            ) from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise CheckpointError(
            f"checkpoint {path} (architecture {arch!r}) does not match the model: "
            f"{str(exc).splitlines()[0]} {detail}".rstrip()
        ) from exc
    recorded = metadata.get("activations")
    if recorded is not None and recorded != activation_counts(model):
        raise CheckpointError(
            f"checkpoint {path}: the weights were saved from a network with activations {recorded}, but "
            f"{sidecar_path(path).name} describes one with {activation_counts(model)} (architecture "
            f"{metadata['architecture']}); the sidecar does not belong to these weights"
        )
    return model.to(device).eval(), metadata


def check_checkpoint_fits_data(
    model: nn.Module,
    metadata: dict[str, Any],
    x: Any,
    y: Any,
    *,
    checkpoint: str | os.PathLike[str],
    dataset: str,
    device: str | torch.device = "cpu",
) -> None:
    """Raise ``ValueError`` naming the checkpoint and the data set when the images do not have the channels
    and size the checkpoint's model expects (its sidecar, else its first convolution, else one forward pass)
    or the labels go beyond its outputs.
    """
    from .utils import model_input_channels, model_output_width

    arch = metadata.get("architecture") or {}
    shape = tuple(int(d) for d in x.shape[1:])
    channels = arch.get("in_channels") or model_input_channels(model)
    size = arch.get("input_size")
    if (channels is not None and shape[0] != channels) or (
        size is not None and tuple(shape[1:]) != (size, size)
    ):
        wanted = f"{channels if channels is not None else '?'}-channel" + (
            f" {size}x{size}" if size is not None else ""
        )
        raise ValueError(
            f"checkpoint {checkpoint} expects {wanted} images, but data set {dataset!r} has "
            f"{shape[0]}-channel {shape[1]}x{shape[2]} images; use --dataset with the data it was trained on"
        )
    width = model_output_width(model, shape, device=device, name=f"the images of data set {dataset!r}")
    top = int(np.max(y)) if len(y) else 0
    if top >= width:
        raise ValueError(
            f"data set {dataset!r} has labels up to {top}, but checkpoint {checkpoint} has only {width} "
            "outputs"
        )

"""Small helpers shared across the package: devices, seeds, input validation."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["as_float_tensor", "check_images", "check_labels", "resolve_device", "art_device_type", "set_seed"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available else CPU; ``"cuda"`` without a GPU raises a clear ``ValueError``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was requested but CUDA is not available on this machine; use device='cpu'")
    return dev


def art_device_type(device: str | torch.device | None) -> str:
    """ART's ``device_type`` string (``"cpu"`` or ``"gpu"``) for a torch device."""
    return "cpu" if resolve_device(device).type == "cpu" else "gpu"


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def check_images(x: Any, name: str = "x", *, clip_values: tuple[float, float] | None = (0.0, 1.0), ndim: int = 4) -> np.ndarray:
    """Validate an image batch and return it as a float32 numpy array.

    Raises ``ValueError`` naming ``name`` for a wrong rank, an empty batch, NaN/Inf values or values outside
    ``clip_values``; ``TypeError`` for non-numeric input.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds here
        raise TypeError(f"{name} must be an array of images, got {type(x).__name__}") from exc
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions (N, C, H, W), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape})")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    if clip_values is not None:
        low, high = clip_values
        if arr.min() < low - 1e-6 or arr.max() > high + 1e-6:
            raise ValueError(f"{name} must lie in [{low}, {high}], got values in [{arr.min():.4g}, {arr.max():.4g}]")
    return arr


def check_labels(y: Any, n: int, num_classes: int, name: str = "y") -> np.ndarray:
    """Validate labels (indices or one-hot) for ``n`` samples and return int64 indices."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == num_classes:
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be class indices of shape (N,) or one-hot (N, {num_classes}), got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} labels for {n} inputs")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices")
    arr = arr.astype(np.int64)
    if len(arr) and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got values in [{arr.min()}, {arr.max()}]")
    return arr


def as_float_tensor(x: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    """A float32 tensor on ``device`` from a numpy array or tensor."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)

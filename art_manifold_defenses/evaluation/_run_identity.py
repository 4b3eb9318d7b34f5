"""What identifies an evaluation run of :func:`~.runner.evaluate`: the seeds derived from the run's seed (per
batch, attack and repeat), the fingerprints of the model and the data that resume files carry, and the
library versions stored in the record.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ..fingerprint import arrays_hash


def _stable_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from ``(seed, *parts)``: the low bits of
    :func:`~art_manifold_defenses.distributed.derive_seed`."""
    from ..distributed import derive_seed

    return derive_seed(seed, *parts) & 0x7FFFFFFF


def _run_seed(seed: int, spec: Any, repeat: int, batch_index: int) -> int:
    """Seed of repeat ``repeat`` of attack ``spec`` on batch ``batch_index``: a function of these alone, so a
    batch gets the same seed whichever process attacks it and whatever the order of the suite."""
    return _stable_seed(seed, spec.to_dict(), repeat, "batch", batch_index)


def _fingerprint_arrays(*arrays: np.ndarray) -> str:
    return arrays_hash(*arrays, algorithm="sha1")  # sha1: the resume files of earlier versions stay valid


def _fingerprint_model(model: nn.Module) -> str:
    h = hashlib.sha1(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(
            tensor.detach().cpu().contiguous().numpy().tobytes()
            if tensor.dtype != torch.bfloat16
            else tensor.float().cpu().numpy().tobytes()
        )
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from .._version import __version__

    versions = {"art_manifold_defenses": __version__}
    for key, dist in (
        ("torch", "torch"),
        ("art", "adversarial-robustness-toolbox"),
        ("foolbox", "foolbox"),
        ("cleverhans", "cleverhans"),
        ("torchattacks", "torchattacks"),
        ("numpy", "numpy"),
    ):
        try:
            versions[key] = md.version(dist)
        except md.PackageNotFoundError:
            versions[key] = "not installed"
    return versions

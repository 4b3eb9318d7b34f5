"""Small building blocks shared by the zoo."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "elu")


def make_activation(activation: str) -> nn.Module:
    """A fresh activation module: ``"relu"`` -> ``nn.ReLU()``, ``"elu"`` -> ``nn.ELU()`` (never in-place, so
    hooks see inputs)."""
    if activation == "relu":
        return nn.ReLU()
    if activation == "elu":
        return nn.ELU()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling layer (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")

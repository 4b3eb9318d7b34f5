"""``amd train --defense manifold-reg``: flags (prefixed ``--mr-``) and the training entry point."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from ..defence_record import add_defence_arguments, train_from_namespace
from .defence import DEFENCE, resolve_preset

__all__ = ["add_train_arguments", "resolve_preset", "train_from_args"]


def add_train_arguments(group: Any) -> None:
    """Add the ``--mr-*`` flags to an argparse parser or argument group (generated from
    :class:`~.defence.ManifoldRegularizationConfig`)."""
    add_defence_arguments(group, DEFENCE)


def train_from_args(
    args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``architecture`` with manifold regularization as the flags say; return
    ``(model, defence metadata)`` (:func:`~.defence.train_manifold_regularization` with the flags' config)."""
    return train_from_namespace(DEFENCE, args, data, device, architecture)

"""``amd train --defense fpd``: flags (prefixed ``--fpd-``) and the training entry point."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from ..defence_record import add_defence_arguments, train_from_namespace
from .defence import DEFENCE, parse_positions

__all__ = ["add_train_arguments", "parse_positions", "train_from_args"]


def add_train_arguments(group: argparse._ActionsContainer) -> None:
    """Add the ``--fpd-*`` flags of ``amd train --defense fpd`` (defaults: the paper's MNIST settings),
    generated from :class:`~.defence.FPDConfig`."""
    add_defence_arguments(group, DEFENCE)


def train_from_args(
    args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the zoo backbone, wrap it with FPD, train it with :class:`FPDTrainer` (Adamax, ``args.lr``);
    return ``(model, {"name": "fpd", "params": model.config, "training": {...}})``
    (:func:`~.defence.train_fpd` with the flags' config)."""
    return train_from_namespace(DEFENCE, args, data, device, architecture)

"""Arguments shared by the parsers of ``amd train`` and ``amd evaluate`` (:mod:`.cli`, :mod:`._cli_evaluate`).
Imports no heavy library."""

from __future__ import annotations

import argparse

from .utils import device_arg

__all__ = ["add_root_device_seed_arguments"]


def add_root_device_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-root`` (the dataset files' folder), ``--device`` and ``--seed``."""
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding the dataset files (default: $AMD_DATA_DIR or ~/.cache)",
    )
    parser.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

"""What the ``defend_with_*.py`` examples share: their command line, set-up, data and closing summary.

Not part of the package: the examples import it from their own folder
(``python examples/defend_with_<x>.py``), so each script keeps only what is specific to its defence -- the
part a user adapts.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from art_manifold_defenses import load_dataset
from art_manifold_defenses.utils import resolve_device, set_seed


def example_parser(doc: str | None, *, epochs_help: str, n_help: str) -> argparse.ArgumentParser:
    """The options every example takes: ``--quick/--no-quick``, ``--epochs``, ``--n``, ``--device``,
    ``--seed``, ``--quiet``. Add defence-specific options to the returned parser before parsing."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=("tiny settings, about 2 minutes on one CPU core (default); --no-quick for real settings"),
    )
    parser.add_argument("--epochs", type=int, default=None, help=epochs_help)
    parser.add_argument("--n", type=int, default=None, help=n_help)
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Resolve the device (one CPU thread, as the quick timings assume) and seed everything."""
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    set_seed(args.seed)
    return device


def mnist(train_limit: int | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embedded MNIST: the first ``train_limit`` training images (all with ``None``) and the first ``n`` test
    images."""
    x_train, y_train = load_dataset("mnist-embedded", "train")
    x_test, y_test = load_dataset("mnist-embedded", "test")
    return x_train[:train_limit], y_train[:train_limit], x_test[:n], y_test[:n]


def summarize(result: Any, title: str, *, robust_label: str = "robust (worst case)") -> None:
    """Print the accuracy under each attack and the closing ``SUMMARY`` line of an evaluation result."""
    for label, acc in result.accuracy_per_attack.items():
        print(f"  {label}: {acc:.3f}")
    flags = [flag.code for flag in result.audit_flags]
    print(
        f"SUMMARY {title}: clean {result.clean_accuracy:.3f}, "
        f"{robust_label} {result.robust_accuracy:.3f}, audit flags {flags or 'none'}"
    )

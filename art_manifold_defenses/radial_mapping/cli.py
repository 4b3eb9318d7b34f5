"""``amd train --defense radial-mapping`` (flags ``--rbm-*``) and the ``amd feature-analysis`` subcommand."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..defence_record import add_defence_arguments, config_from_namespace, train_from_namespace
from ..utils import device_arg, positive_int_arg
from .defence import DEFENCE, DEFENCE_NAME, mapping_params

if TYPE_CHECKING:
    import torch
    from torch import nn

# torch and the feature analysis are imported by the functions that use them, so that building the ``amd``
# parser imports neither.

__all__ = [
    "DEFENCE_NAME",
    "add_subcommands",
    "add_train_arguments",
    "mapping_params_from_args",
    "train_from_args",
]


def add_train_arguments(group: Any) -> None:
    """Flags of ``amd train --defense radial-mapping``, generated from :class:`RadialMappingConfig`."""
    add_defence_arguments(group, DEFENCE)


def mapping_params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON-serialisable mapping options stored in the checkpoint's ``defence.params``."""
    return mapping_params(config_from_namespace(DEFENCE, args))  # type: ignore[arg-type]


def train_from_args(
    args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the zoo model, insert the mapping blocks and train everything end to end with the shared loop
    (:func:`~.defence.train_radial_mapping_defence` with the flags' config)."""
    return train_from_namespace(DEFENCE, args, data, device, architecture)


def _command_feature_analysis(args: argparse.Namespace) -> int:
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..utils import resolve_device
    from .features import feature_analysis

    device = resolve_device(args.device)
    model, metadata = load_checkpoint(args.checkpoint, device=device)
    dataset = args.dataset or metadata.get("dataset") or "mnist-embedded"
    x, y = load_dataset(dataset, "test", root=args.data_root)
    x, y = x[: args.n], y[: args.n]
    result = feature_analysis(
        model, x, y, layer=args.layer, device=device, seed=args.seed, verbose=not args.quiet
    )
    result.update({"checkpoint": str(args.checkpoint), "dataset": dataset})
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def add_subcommands(subparsers: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """``amd feature-analysis``: paper 001's Table 2 scores of a checkpoint's penultimate features."""
    parser = subparsers.add_parser(
        "feature-analysis", help="silhouette, Calinski-Harabasz, MI, homogeneity, completeness of features"
    )
    parser.add_argument("--checkpoint", required=True, help="model.pt of a trained model")
    parser.add_argument("--dataset", default=None, help="dataset (default: the checkpoint's)")
    parser.add_argument("--data-root", default=None, help="folder holding the dataset files")
    parser.add_argument(
        "--n", type=positive_int_arg, default=1000, help="number of test images (default: 1000)"
    )
    parser.add_argument(
        "--layer", default=None, help="module whose output to analyse (default: the input of the last Linear)"
    )
    parser.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="k-means seed")
    parser.add_argument("--out", default=None, help="write the JSON result here too")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"feature-analysis": _command_feature_analysis}

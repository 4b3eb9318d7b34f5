"""``amd train --defense radial-mapping`` (flags ``--rbm-*``) and the ``amd feature-analysis`` subcommand."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import build_model
from ..utils import device_arg, positive_float_arg, positive_int_arg
from .block import INITS, VARIANTS
from .feature_analysis import feature_analysis
from .training import train_radial_mapping
from .transform import MODES, add_radial_mapping

__all__ = [
    "DEFENCE_NAME",
    "add_subcommands",
    "add_train_arguments",
    "mapping_params_from_args",
    "train_from_args",
]

DEFENCE_NAME = "radial-mapping"


def add_train_arguments(group: Any) -> None:
    """Flags of ``amd train --defense radial-mapping``."""
    group.add_argument(
        "--rbm-variant", default="paper", choices=VARIANTS, help="block variant (default: paper)"
    )
    group.add_argument(
        "--rbm-centers",
        type=positive_int_arg,
        default=None,
        help="centres per block (default: the block's input channels)",
    )
    group.add_argument(
        "--rbm-out-channels",
        type=positive_int_arg,
        default=None,
        help="mapped channels per block (default: the number of centres)",
    )
    group.add_argument(
        "--rbm-after",
        default="all_conv",
        help="where to insert blocks: all_conv, blocks, or comma-separated module names (default: all_conv)",
    )
    group.add_argument(
        "--rbm-mode", default="auto", choices=MODES, help="concat (nn.Sequential), project, or auto (default)"
    )
    group.add_argument(
        "--rbm-init", default="uniform", choices=INITS, help="centre initialisation (default: uniform)"
    )
    group.add_argument(
        "--rbm-epsilon",
        type=positive_float_arg,
        default=1e-6,
        help="epsilon of M = A A^T + epsilon I (default: 1e-6)",
    )
    group.add_argument(
        "--rbm-beta-init", type=positive_float_arg, default=2.0, help="initial width beta (default: 2.0)"
    )


def mapping_params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON-serialisable mapping options stored in the checkpoint's ``defence.params``."""
    after_text = str(getattr(args, "rbm_after", "all_conv"))
    after: str | list[str] = (
        after_text
        if after_text in ("all_conv", "blocks")
        else [a.strip() for a in after_text.split(",") if a.strip()]
    )
    return {
        "after": after,
        "n_centers": getattr(args, "rbm_centers", None),
        "variant": getattr(args, "rbm_variant", "paper"),
        "out_channels": getattr(args, "rbm_out_channels", None),
        "mode": getattr(args, "rbm_mode", "auto"),
        "epsilon": float(getattr(args, "rbm_epsilon", 1e-6)),
        "beta_init": float(getattr(args, "rbm_beta_init", 2.0)),
    }


def train_from_args(
    args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the zoo model, insert the mapping blocks and train everything end to end with the shared loop."""
    arch = dict(architecture)
    base = build_model(arch.pop("name"), **arch)
    params = mapping_params_from_args(args)
    init = getattr(args, "rbm_init", "uniform")
    init_data = data["x_train"][:512] if init == "kmeans" else None
    model = add_radial_mapping(base, **params, init=init, init_data=init_data, seed=int(args.seed)).to(device)
    train_radial_mapping(
        model, data["x_train"], data["y_train"], epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        device=device, validation_data=(data["x_test"], data["y_test"]), checkpoint_dir=Path(args.out) / "train_state",
        seed=args.seed, verbose=not args.quiet,
    )  # fmt: skip
    return model, {"name": DEFENCE_NAME, "params": params}


def _command_feature_analysis(args: argparse.Namespace) -> int:
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..utils import resolve_device

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

"""Command-line hooks of RBF-CNN: ``amd train --defense rbf-cnn|rbf-cnn-plus`` and ``amd fit-rbf``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..defence_record import add_defence_arguments, train_from_namespace
from ..utils import device_arg, positive_int_arg
from .defence import DEFENCE, FILTERS_FILE, defence_metadata

if TYPE_CHECKING:
    import numpy as np
    import torch

# torch and the RBF-CNN code are imported by the functions that use them, so that building the ``amd`` parser
# imports neither.

__all__ = [
    "add_subcommands",
    "add_train_arguments",
    "build_demo_rcnn",
    "defence_metadata",
    "fit_rbf_command",
    "train_from_args",
]


def add_train_arguments(group: Any) -> None:
    """Flags of ``amd train --defense rbf-cnn`` (all prefixed ``--rbf-``), generated from
    :class:`RBFCNNConfig`."""
    add_defence_arguments(group, DEFENCE)


def train_from_args(
    args: argparse.Namespace, data: dict[str, np.ndarray], device: torch.device, architecture: dict[str, Any]
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fit or load the filter bank, build RBFCNN around the zoo model and train it as rCNN or rCNN+
    (:func:`~.defence.train_rbf_cnn` with the flags' config; ``--defense rbf-cnn-plus`` sets ``plus``)."""
    from ..defences import alias_overrides

    overrides = alias_overrides(str(getattr(args, "defense", DEFENCE.name)), DEFENCE.name)
    return train_from_namespace(DEFENCE, args, data, device, architecture, overrides)


def add_subcommands(subparsers: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``amd fit-rbf --dataset D --out DIR``; return ``{"fit-rbf": handler}``."""
    p = subparsers.add_parser("fit-rbf", help="learn the RBF-CNN filter bank by non-parametric EM")
    p.add_argument("--dataset", default="mnist-embedded", help="dataset name (default: mnist-embedded)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", required=True, help="output folder; writes filters.npz and filters.json")
    p.add_argument(
        "--train-limit", type=positive_int_arg, default=None, help="use only the first N training images"
    )
    p.add_argument("--patch-size", type=positive_int_arg, default=3, help="patch side k (default 3)")
    p.add_argument(
        "--desired-filters", type=int, default=10, help="EM desired filter count (MNIST 10, CIFAR-10 175)"
    )
    p.add_argument("--max-steps", type=positive_int_arg, default=500, help="number of M-steps (default 500)")
    p.add_argument(
        "--nonparametric-steps",
        type=int,
        default=250,
        help="M-steps that may create filters (default 250; -1: all)",
    )
    p.add_argument(
        "--init",
        default="paper",
        choices=["paper", "authors_code"],
        help="one random filter (paper) or none (code)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return {"fit-rbf": fit_rbf_command}


def fit_rbf_command(args: argparse.Namespace) -> int:
    """Handler of ``amd fit-rbf``."""
    from ..data import load_dataset
    from ..utils import resolve_device
    from .em import fit_rbf_filters

    device = resolve_device(args.device)
    x, _ = load_dataset(args.dataset, "train", root=args.data_root)
    if args.train_limit:
        x = x[: args.train_limit]
    started = time.perf_counter()
    bank = fit_rbf_filters(
        x,
        args.patch_size,
        desired_filters=args.desired_filters,
        max_steps=args.max_steps,
        nonparametric_steps=None if args.nonparametric_steps < 0 else args.nonparametric_steps,
        init=args.init,
        seed=args.seed,
        device=device,
        verbose=not args.quiet,
    )
    seconds = time.perf_counter() - started
    out = Path(args.out)
    bank.save(out / FILTERS_FILE)
    summary = {
        "dataset": args.dataset,
        "images": int(len(x)),
        **bank.config(),
        "seconds": seconds,
        "seed": args.seed,
        "desired_filters": args.desired_filters,
        "max_steps": args.max_steps,
        "nonparametric_steps": args.nonparametric_steps,
        "init": args.init,
        "variances": bank.variances.cpu().tolist(),
        "history": bank.fit_history,
    }
    (out / "filters.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{bank.num_filters} filters learned from {len(x)} {args.dataset} images in {seconds:.0f}s; saved "
        f"{out / FILTERS_FILE}"
    )
    return 0


def build_demo_rcnn(ctx: Any, *, em_steps: int = 150, votes: int = 1) -> torch.nn.Module:
    """``amd demo`` entry: EM filter bank (a shortened schedule, ``em_steps`` M-steps) on the demo's training
    images, then rCNN (``cw_mnist`` behind the reconstruction) trained ``ctx.epochs`` epochs. ``votes = 1``
    keeps the stochastic model cheap to attack with EoT on a CPU (the paper votes over m = 10). ``ctx`` has
    ``data``, ``device``, ``seed``, ``epochs``, ``verbose`` and ``work_dir``. The checkpoint's defence
    metadata is :func:`defence_metadata` of the returned model (its filter count is only known after EM)."""
    import torch

    from ..models import build_model
    from .classifier import RBFCNN
    from .em import fit_rbf_filters
    from .trainer import RBFCNNTrainer

    x, y = ctx.data["x_train"], ctx.data["y_train"]
    bank = fit_rbf_filters(
        x,
        max_steps=em_steps,
        nonparametric_steps=(2 * em_steps) // 3,
        seed=ctx.seed,
        device=ctx.device,
        verbose=ctx.verbose,
    )
    torch.manual_seed(ctx.seed)
    model = RBFCNN(build_model("cw_mnist"), bank, votes=votes, seed=ctx.seed, device=ctx.device)
    trainer = RBFCNNTrainer(
        model,
        variant="rcnn",
        input_shape=(int(x.shape[1]), int(x.shape[2]), int(x.shape[3])),
        device=ctx.device,
    )
    trainer.fit(
        x,
        y,
        nb_epochs=ctx.epochs,
        batch_size=128,
        checkpoint_dir=Path(ctx.work_dir) / "train_state",
        seed=ctx.seed,
        verbose=ctx.verbose,
    )
    return model.eval()

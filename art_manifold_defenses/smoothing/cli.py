"""Command-line glue: ``amd train --defense stn`` flags and the ``amd certify`` subcommand."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .certification import BOUNDS
from .confidence import INTERVALS
from .module import SmoothedClassifier
from .outputs import (
    DEFAULT_RADII,
    certify_sharded,
    plot_bound_comparison,
    plot_certified_accuracy,
    summarize_certification,
)
from .stability import STABILITY_TARGETS, train_stn

__all__ = ["add_subcommands", "add_train_arguments", "run_certify", "train_from_args"]


def add_train_arguments(group: Any) -> None:
    """Flags of ``amd train --defense stn``."""
    group.add_argument("--sigma", type=float, default=0.7, help="Gaussian noise std in [0,1] pixel units (default: 0.7, the paper's MNIST value)")
    group.add_argument("--stability-weight", type=float, default=1.0,
                       help="gamma of the stability loss (default: 1, the paper); 0 = plain Gaussian augmentation")  # fmt: skip
    group.add_argument("--stn-target", default="softmax", choices=list(STABILITY_TARGETS),
                       help="stability target: softmax of the clean prediction (paper) or raw logits (authors' code)")  # fmt: skip


def train_from_args(args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``architecture`` with STN; return the smoothed model (``SmoothedClassifier``) and its defence metadata."""
    from ..models import build_model

    sigma = float(getattr(args, "sigma", 0.7))
    weight = float(getattr(args, "stability_weight", 1.0))
    target = str(getattr(args, "stn_target", "softmax"))
    arch = dict(architecture)
    base = build_model(arch.pop("name"), **arch)
    out = getattr(args, "out", None)
    train_stn(
        base, data["x_train"], data["y_train"], sigma=sigma, stability_weight=weight, target=target, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, device=device, seed=args.seed, verbose=not getattr(args, "quiet", False),
        validation_data=(data["x_test"], data["y_test"]), checkpoint_dir=Path(out) / "train_state" if out else None,
    )  # fmt: skip
    model = SmoothedClassifier(base, sigma)
    return model, {"name": "stn", "params": {"sigma": sigma, "stability_weight": weight, "stn_target": target}}


def _add_certify_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("certify", help="certify a (smoothed) checkpoint with the Rényi, Cohen and PixelDP bounds")
    p.add_argument("--checkpoint", required=True, help="path of model.pt (its model.json sidecar beside it)")
    p.add_argument("--dataset", default="mnist-embedded", help="dataset name (default: mnist-embedded)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    p.add_argument("--n", "--num-images", dest="n", type=int, default=100,
                   help="number of test images (default: 100); spell it --num-images after torchrun, whose own parser rejects --n")
    p.add_argument("--skip", type=int, default=1, help="certify every SKIP-th test image (default: 1)")
    p.add_argument("--sigma", type=float, default=None, help="noise std (default: the checkpoint's sigma)")
    p.add_argument("--samples", type=int, default=100, help="estimation samples n per image (default: 100, the paper)")
    p.add_argument("--n0", type=int, default=100, help="selection samples per image; 0 = select from the n samples (default: 100)")
    p.add_argument("--alpha", type=float, default=0.05, help="failure probability (default: 0.05, the paper's 95%%)")
    p.add_argument("--bound", default="all", choices=[*BOUNDS, "all"], help="bound(s) to compute (default: all)")
    p.add_argument("--interval", default="clopper-pearson", choices=list(INTERVALS), help="(p1, p2) confidence bounds (default: clopper-pearson)")
    p.add_argument("--batch-size", type=int, default=1000, help="noisy samples per forward pass (default: 1000)")
    p.add_argument("--radii", default=",".join(f"{r:g}" for r in DEFAULT_RADII), help="comma-separated radii for summary.json")
    p.add_argument("--out", required=True, help="output folder (certify.tsv, summary.json, *.png)")
    p.add_argument("--no-resume", action="store_true", help="start certify.tsv afresh instead of resuming it")
    p.add_argument("--max-images", type=int, default=None,
                   help="each process stops after certifying this many new images (a time budget; rerun to continue)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_certify(args: argparse.Namespace) -> int:
    """``amd certify``: writes ``OUT/certify.tsv``, ``OUT/summary.json``, ``OUT/certified_accuracy.png`` and
    ``OUT/bound_comparison.png``; prints the summary.

    Under ``torchrun`` the images are sharded over the processes (each on its own device, ``cuda:LOCAL_RANK`` for
    ``--device cuda``) and rank 0 writes the same files as a single process (:func:`.outputs.certify_sharded`)."""
    from .. import distributed

    info = distributed.init_distributed(args.device)
    try:
        return _certify(args, info.device, is_main=info.is_main)
    finally:
        distributed.destroy_distributed(info)


def _certify(args: argparse.Namespace, device: torch.device, *, is_main: bool) -> int:
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from .estimator import RenyiSmoothingPyTorch

    max_images = getattr(args, "max_images", None)
    if max_images is not None and max_images < 1:
        raise ValueError(f"--max-images must be >= 1, got {max_images}")
    model, metadata = load_checkpoint(args.checkpoint, device=device)
    defence = metadata.get("defence") or {}
    sigma = args.sigma
    base: nn.Module = model
    if isinstance(model, SmoothedClassifier):
        base = model.base
        sigma = float(model.sigma) if sigma is None else sigma
    elif sigma is None:
        sigma = defence.get("params", {}).get("sigma")
    if sigma is None:
        raise ValueError("--sigma is required for a checkpoint without a smoothing defence")
    radii = [float(r) for r in str(args.radii).split(",") if r.strip()]
    x, y = load_dataset(args.dataset, "test", root=args.data_root)
    if args.n < 1 or args.skip < 1:
        raise ValueError(f"--n and --skip must be positive, got {args.n} and {args.skip}")
    idx = np.arange(0, len(x), args.skip)[: args.n]
    arch = metadata["architecture"]
    estimator = RenyiSmoothingPyTorch(
        base, nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=int(arch.get("num_classes", int(y.max()) + 1)),
        clip_values=(0.0, 1.0), device_type="cpu" if device.type == "cpu" else "gpu", scale=float(sigma), alpha=args.alpha,
        seed=args.seed,
    )  # fmt: skip
    out = Path(args.out)
    tsv = certify_sharded(
        estimator, x[idx], y[idx], out, n=args.samples, n0=args.n0, alpha=args.alpha, bound=args.bound,
        interval=args.interval, batch_size=args.batch_size, seed=args.seed, indices=idx, resume=not args.no_resume,
        verbose=not args.quiet, max_images=max_images,
    )  # fmt: skip
    if not is_main:
        return 0
    summary = summarize_certification(tsv, radii)
    summary["checkpoint"] = str(args.checkpoint)
    summary["dataset"] = args.dataset
    summary["device"] = str(device)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_certified_accuracy({f"sigma={sigma:g}": tsv}, out / "certified_accuracy.png", title=f"{args.dataset}, n={args.samples}")
    plot_bound_comparison(out / "bound_comparison.png", sigma=float(sigma))
    print(json.dumps({k: summary[k] for k in ("images", "smoothed_accuracy", "abstain_rate", "certified_accuracy")}, indent=2))
    return 0


def add_subcommands(subparsers: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``certify`` to the ``amd`` subparsers; return ``{"certify": run_certify}``."""
    _add_certify_parser(subparsers)
    return {"certify": run_certify}

"""Command-line hooks of RBF-CNN: ``amd train --defense rbf-cnn|rbf-cnn-plus`` and ``amd fit-rbf``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..utils import device_arg, positive_int_arg

__all__ = [
    "add_subcommands",
    "add_train_arguments",
    "build_demo_rcnn",
    "defence_metadata",
    "fit_rbf_command",
    "train_from_args",
]

FILTERS_FILE = "filters.npz"


def add_train_arguments(group: Any) -> None:
    """Flags of ``amd train --defense rbf-cnn`` (all prefixed ``--rbf-``)."""
    group.add_argument(
        "--rbf-plus", action="store_true", help="train rCNN+ (Gaussian + PGD-noise images) instead of rCNN"
    )
    group.add_argument(
        "--rbf-filters",
        default=None,
        help="filter bank .npz from `amd fit-rbf` (default: fit one by EM on the training set)",
    )
    group.add_argument(
        "--rbf-desired-filters", type=int, default=10, help="EM desired filter count (MNIST 10, CIFAR-10 175)"
    )
    group.add_argument(
        "--rbf-em-steps", type=int, default=500, help="EM M-steps when fitting the bank here (default 500)"
    )
    group.add_argument(
        "--rbf-beta1", type=float, default=25.0, help="test-time weight sharpness beta1 (default 25)"
    )
    group.add_argument(
        "--rbf-train-beta1", type=float, default=125.0, help="training beta1 (authors' code: 125)"
    )
    group.add_argument(
        "--rbf-beta2", type=float, default=1.75, help="test-time noise level beta2 (default 1.75)"
    )
    group.add_argument(
        "--rbf-votes", type=int, default=10, help="reconstructions averaged per prediction, m (default 10)"
    )
    group.add_argument(
        "--rbf-noise-draw",
        default="per_image",
        choices=["per_image", "fixed"],
        help="fresh noise per image, or fixed per copy (authors)",
    )
    group.add_argument(
        "--rbf-noise-std",
        default="authors_code",
        choices=["authors_code", "paper"],
        help="noise std beta2*sigma^2 (code) or beta2*sigma",
    )
    group.add_argument(
        "--rbf-weighting",
        default="base2",
        choices=["base2", "exp"],
        help="2^(beta1 v) (code) or exp(beta1 v) (paper)",
    )
    group.add_argument(
        "--rbf-gaussian-std", type=float, default=0.35, help="rCNN+ Gaussian noise std (MNIST 0.35)"
    )
    group.add_argument(
        "--rbf-linf-window",
        type=float,
        default=0.3,
        help="rCNN+ l-inf clip window of the noise images (MNIST 0.3)",
    )
    group.add_argument(
        "--rbf-noise-bank-epoch",
        type=int,
        default=25,
        help="rCNN+: epoch at which the PGD noise bank is computed (default 25)",
    )
    group.add_argument(
        "--rbf-noise-bank-eps",
        type=float,
        default=0.3,
        help="rCNN+: l-inf eps of the PGD noise bank (default 0.3)",
    )
    group.add_argument(
        "--rbf-noise-bank-size",
        type=int,
        default=None,
        help="rCNN+: attack only this many training images for the bank",
    )


def _load_or_fit_bank(args: argparse.Namespace, x_train: np.ndarray, device: torch.device) -> Any:
    from .em import fit_rbf_filters
    from .filter_bank import RBFFilterBank

    if args.rbf_filters:
        path = Path(args.rbf_filters)
        if path.is_dir():
            path = path / FILTERS_FILE
        return RBFFilterBank.load(path, device=device)
    return fit_rbf_filters(
        x_train, desired_filters=args.rbf_desired_filters, max_steps=args.rbf_em_steps,
        nonparametric_steps=args.rbf_em_steps // 2, seed=args.seed, device=device, verbose=not args.quiet,
    )  # fmt: skip


def train_from_args(
    args: argparse.Namespace, data: dict[str, np.ndarray], device: torch.device, architecture: dict[str, Any]
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fit or load the filter bank, build RBFCNN around the zoo model and train it as rCNN or rCNN+."""
    from ..models import build_model
    from .classifier import RBFCNN
    from .trainer import RBFCNNTrainer

    plus = bool(getattr(args, "rbf_plus", False)) or getattr(args, "defense", "") == "rbf-cnn-plus"
    variant: Literal["rcnn", "rcnn_plus"] = "rcnn_plus" if plus else "rcnn"
    bank = _load_or_fit_bank(args, data["x_train"], device)
    arch = dict(architecture)
    base = build_model(arch.pop("name"), **arch)
    model = RBFCNN(
        base, bank, beta1=args.rbf_beta1, beta2=args.rbf_beta2, train_beta1=args.rbf_train_beta1, votes=args.rbf_votes,
        weighting=args.rbf_weighting, noise_std=args.rbf_noise_std, noise_draw=args.rbf_noise_draw, seed=args.seed, device=device,
    )  # fmt: skip
    shape = (int(data["x_train"].shape[1]), int(data["x_train"].shape[2]), int(data["x_train"].shape[3]))
    trainer = RBFCNNTrainer(
        model, variant=variant, gaussian_std=args.rbf_gaussian_std, linf_window=args.rbf_linf_window,
        noise_bank_epoch=args.rbf_noise_bank_epoch, noise_bank_eps=args.rbf_noise_bank_eps,
        noise_bank_size=args.rbf_noise_bank_size, lr=args.lr, input_shape=shape, device=device,
    )  # fmt: skip
    checkpoint_dir = Path(args.out) / "train_state" if getattr(args, "out", None) else None
    trainer.fit(
        data["x_train"], data["y_train"], validation_data=None, batch_size=args.batch_size, nb_epochs=args.epochs,
        checkpoint_dir=checkpoint_dir, seed=args.seed, verbose=not args.quiet,
    )  # fmt: skip
    return model.eval(), defence_metadata(model, variant=variant, filters_source=args.rbf_filters or "em")


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
        x, args.patch_size, desired_filters=args.desired_filters, max_steps=args.max_steps,
        nonparametric_steps=None if args.nonparametric_steps < 0 else args.nonparametric_steps, init=args.init,
        seed=args.seed, device=device, verbose=not args.quiet,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    out = Path(args.out)
    bank.save(out / FILTERS_FILE)
    summary = {
        "dataset": args.dataset, "images": int(len(x)), **bank.config(), "seconds": seconds, "seed": args.seed,
        "desired_filters": args.desired_filters, "max_steps": args.max_steps, "nonparametric_steps": args.nonparametric_steps,
        "init": args.init, "variances": bank.variances.cpu().tolist(), "history": bank.fit_history,
    }  # fmt: skip
    (out / "filters.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{bank.num_filters} filters learned from {len(x)} {args.dataset} images in {seconds:.0f}s; saved {out / FILTERS_FILE}"
    )
    return 0


def build_demo_rcnn(ctx: Any, *, em_steps: int = 150, votes: int = 1) -> torch.nn.Module:
    """``amd demo`` entry: EM filter bank (a shortened schedule, ``em_steps`` M-steps) on the demo's training images,
    then rCNN (``cw_mnist`` behind the reconstruction) trained ``ctx.epochs`` epochs. ``votes = 1`` keeps the
    stochastic model cheap to attack with EoT on a CPU (the paper votes over m = 10). ``ctx`` has ``data``,
    ``device``, ``seed``, ``epochs``, ``verbose`` and ``work_dir``. The checkpoint's defence metadata is
    :func:`defence_metadata` of the returned model (its filter count is only known after EM)."""
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


def defence_metadata(model: torch.nn.Module, **extra: Any) -> dict[str, Any]:
    """The checkpoint ``defence`` entry of an RBFCNN: ``{"name": "rbf-cnn", "params": model.config() + extra}``."""
    from .classifier import RBFCNN

    if not isinstance(model, RBFCNN):
        raise TypeError(f"model must be an RBFCNN, got {type(model).__name__}")
    return {"name": "rbf-cnn", "params": {**model.config(), **extra}}

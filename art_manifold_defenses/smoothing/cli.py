"""Command-line glue: ``amd train --defense stn`` flags and the ``amd certify`` subcommand."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..defence_record import add_defence_arguments, train_from_namespace
from ..utils import (
    device_arg,
    float_list_arg,
    non_negative_float_arg,
    non_negative_int_arg,
    output_dir,
    positive_float_arg,
    positive_int_arg,
    probability_arg,
)
from .choices import (
    BOUNDS,
    COHEN_SAMPLES,
    DEFAULT_ALPHA,
    DEFAULT_N0,
    DEFAULT_RADII,
    DEFAULT_SAMPLES,
    INTERVALS,
)
from .defence import DEFENCE

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

    from .estimator import RenyiSmoothingPyTorch

# numpy, torch and the certification code are imported by the handler, so that building the ``amd`` parser
# imports none of them.

__all__ = ["add_subcommands", "add_train_arguments", "run_certify", "train_from_args"]


def add_train_arguments(group: Any) -> None:
    """Flags of ``amd train --defense stn``, generated from :class:`~.defence.STNConfig`."""
    add_defence_arguments(group, DEFENCE)


def train_from_args(
    args: argparse.Namespace, data: dict[str, Any], device: torch.device, architecture: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``architecture`` with STN; return the smoothed model (``SmoothedClassifier``) and its defence
    metadata (:func:`~.defence.train_stn_defence` with the flags' config)."""
    return train_from_namespace(DEFENCE, args, data, device, architecture)


def _add_certify_parser(subparsers: Any) -> None:
    """The ``amd certify`` subparser, its options added group by group."""
    p = subparsers.add_parser(
        "certify", help="certify a (smoothed) checkpoint with the Rényi, Cohen and PixelDP bounds"
    )
    _add_input_options(p)
    _add_mode_options(p)
    _add_statistics_options(p)
    _add_output_options(p)


def _add_input_options(p: argparse.ArgumentParser) -> None:
    """``amd certify``: the checkpoint, the data set and its images, the device, the noise and its samples."""
    p.add_argument("--checkpoint", required=True, help="path of model.pt (its model.json sidecar beside it)")
    p.add_argument("--dataset", default="mnist-embedded", help="dataset name (default: mnist-embedded)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    p.add_argument(
        "--n",
        "--num-images",
        dest="n",
        type=positive_int_arg,
        default=100,
        help=(
            "number of test images (default: 100); spell it --num-images after torchrun, whose own parser "
            "rejects --n"
        ),
    )
    p.add_argument(
        "--skip", type=positive_int_arg, default=1, help="certify every SKIP-th test image (default: 1)"
    )
    p.add_argument(
        "--sigma", type=positive_float_arg, default=None, help="noise std (default: the checkpoint's sigma)"
    )
    p.add_argument(
        "--samples",
        type=positive_int_arg,
        default=DEFAULT_SAMPLES,
        help=f"estimation samples n per image (default: {DEFAULT_SAMPLES}, minutes for 100 MNIST images on "
        "a CPU; "
        f"Cohen et al.: --samples {COHEN_SAMPLES}, the paper: 100); the largest size with --adaptive, the "
        "cap n_max "
        "with --radius",
    )


def _add_mode_options(p: argparse.ArgumentParser) -> None:
    """``amd certify``: the certification modes (``--radius``, ``--adaptive``) and their settings."""
    mode = p.add_argument_group("modes (default: the same --samples for every image, CERTIFY)")
    exclusive = mode.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--radius",
        type=non_negative_float_arg,
        default=None,
        help="decision mode: answer certified / not certified / abstain at this l2 radius, sampling "
        "in rounds and stopping as soon as a confidence sequence decides (at most --samples)",
    )
    exclusive.add_argument(
        "--adaptive",
        action="store_true",
        help="input-specific sample sizes (at most --samples) chosen from the --n0 selection samples",
    )
    mode.add_argument(
        "--max-radius-loss",
        type=non_negative_float_arg,
        default=0.05,
        help="--adaptive: bound on the typical radius given up relative to --samples (default: 0.05)",
    )
    mode.add_argument(
        "--first-round",
        type=positive_int_arg,
        default=100,
        help="--radius: samples of the first round; --adaptive: the smallest size (default: 100)",
    )
    mode.add_argument(
        "--growth",
        type=positive_float_arg,
        default=2.0,
        help="--radius: ratio of consecutive cumulative round sizes, > 1 (default: 2)",
    )


def _add_statistics_options(p: argparse.ArgumentParser) -> None:
    """``amd certify``: selection samples, failure probability, bounds, intervals and batch size."""
    p.add_argument(
        "--n0",
        type=non_negative_int_arg,
        default=DEFAULT_N0,
        help=f"selection samples per image; 0 = select from the n samples (default: {DEFAULT_N0})",
    )
    p.add_argument(
        "--alpha",
        type=probability_arg,
        default=DEFAULT_ALPHA,
        help=f"failure probability (default: {DEFAULT_ALPHA}, Cohen et al. and ART; the paper: 0.05)",
    )
    p.add_argument(
        "--bound",
        default=None,
        choices=[*BOUNDS, "all"],
        help="bound(s) to compute (default: all; with --radius one bound, default cohen)",
    )
    p.add_argument(
        "--interval",
        default="clopper-pearson",
        choices=list(INTERVALS),
        help="(p1, p2) confidence bounds (default: clopper-pearson)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int_arg,
        default=1000,
        help="noisy samples per forward pass (default: 1000)",
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """``amd certify``: the summary's radii, the output folder, resuming and the budget of images."""
    p.add_argument(
        "--radii",
        type=float_list_arg,
        default=list(DEFAULT_RADII),
        help="comma-separated radii for summary.json",
    )
    p.add_argument("--out", required=True, help="output folder (certify.tsv, summary.json, *.png)")
    p.add_argument(
        "--overwrite",
        "--no-resume",
        dest="overwrite",
        action="store_true",
        help="start certify.tsv afresh instead of resuming it (a folder holding another run's rows is "
        "refused "
        "without it)",
    )
    p.add_argument(
        "--max-images",
        type=positive_int_arg,
        default=None,
        help="each process stops after certifying this many new images (a time budget; rerun to continue)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_certify(args: argparse.Namespace) -> int:
    """``amd certify`` (fixed ``--samples``, ``--adaptive`` or ``--radius R``, see
    :func:`~.outputs.certify_to_tsv`): writes ``OUT/certify.tsv``, ``OUT/certify_cohen.tsv`` (Cohen et al.'s
    format, when the Cohen bound ran), ``OUT/summary.json``, ``OUT/certified_accuracy.png`` and
    ``OUT/bound_comparison.png``; prints the summary.

    ``certify.tsv`` carries its fingerprint (the model's hash and every setting that changes a row) and a hash
    of every row's image: a rerun with the same ``--out`` resumes only its own run and refuses another
    model's, data set's or settings' rows (``--overwrite`` starts afresh).

    Under ``torchrun`` the images are sharded over the processes (each on its own device, ``cuda:LOCAL_RANK``
    for ``--device cuda``) and rank 0 writes the same files as a single process
    (:func:`.outputs.certify_sharded`)."""
    from .. import distributed

    info = distributed.init_distributed(args.device)
    try:
        return _certify(args, info.device, is_main=info.is_main)
    finally:
        distributed.destroy_distributed(info)


def _certify(args: argparse.Namespace, device: torch.device, *, is_main: bool) -> int:
    from .outputs import certify_sharded

    out = output_dir(args.out)
    base, metadata, sigma = _load_base(args, device)
    radii = [float(r) for r in args.radii]
    x, y, idx = _test_images(args, base, metadata, device)
    estimator = _make_estimator(args, base, metadata, x, y, sigma, device)
    tsv = certify_sharded(
        estimator,
        x[idx],
        y[idx],
        out,
        n=args.samples,
        n0=args.n0,
        alpha=args.alpha,
        bound=args.bound,
        interval=args.interval,
        batch_size=args.batch_size,
        seed=args.seed,
        indices=idx,
        resume=not args.overwrite,
        verbose=not args.quiet,
        max_images=args.max_images,
        radius=args.radius,
        samples="adaptive" if args.adaptive else "fixed",
        max_radius_loss=args.max_radius_loss,
        first_round=args.first_round,
        growth=args.growth,
    )
    if not is_main:
        return 0
    summary = _write_outputs(args, out, tsv, radii, sigma, device)
    _print_summary(summary)
    return 0


def _load_base(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, dict[str, Any], float]:
    """The checkpoint's base classifier (inside its ``SmoothedClassifier``, if any), its metadata and the
    noise sigma (``--sigma``, else the checkpoint's)."""
    from ..checkpoint import load_checkpoint
    from .module import SmoothedClassifier

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
    return base, metadata, sigma


def _test_images(
    args: argparse.Namespace, base: nn.Module, metadata: dict[str, Any], device: torch.device
) -> tuple[Any, Any, Any]:
    """The test set ``(x, y)`` and the positions of the images to certify (every ``--skip``-th, ``--n`` of
    them), checked against the checkpoint."""
    import numpy as np

    from ..checkpoint import check_checkpoint_fits_data
    from ..data import load_dataset

    x, y = load_dataset(args.dataset, "test", root=args.data_root)
    idx = np.arange(0, len(x), args.skip)[: args.n]
    if len(idx) < args.n:
        raise ValueError(
            f"--n {args.n} with --skip {args.skip} asks for more test images than data set "
            f"{args.dataset!r} has ({len(x)} images, so --n at most {len(np.arange(0, len(x), args.skip))})"
        )
    check_checkpoint_fits_data(
        base, metadata, x[idx], y[idx], checkpoint=args.checkpoint, dataset=args.dataset, device=device
    )
    return x, y, idx


def _make_estimator(
    args: argparse.Namespace,
    base: nn.Module,
    metadata: dict[str, Any],
    x: Any,
    y: Any,
    sigma: float,
    device: torch.device,
) -> RenyiSmoothingPyTorch:
    """The smoothing estimator around ``base`` with the run's sigma, alpha and seed."""
    from torch import nn

    from .estimator import RenyiSmoothingPyTorch

    arch = metadata["architecture"]
    return RenyiSmoothingPyTorch(
        base,
        nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=int(arch.get("num_classes", int(y.max()) + 1)),
        clip_values=(0.0, 1.0),
        device_type="cpu" if device.type == "cpu" else "gpu",
        scale=float(sigma),
        alpha=args.alpha,
        seed=args.seed,
    )


def _write_outputs(
    args: argparse.Namespace, out: Path, tsv: Path, radii: list[float], sigma: float, device: torch.device
) -> dict[str, Any]:
    """Rank 0: ``summary.json``, Cohen et al.'s TSV (when the Cohen bound ran) and the two figures; returns
    the summary."""
    from .outputs import (
        plot_bound_comparison,
        plot_certified_accuracy,
        summarize_certification,
        write_cohen_tsv,
    )

    summary = summarize_certification(tsv, radii)
    summary["checkpoint"] = str(args.checkpoint)
    summary["dataset"] = args.dataset
    summary["device"] = str(device)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if "cohen" in summary["certified_accuracy"]:  # Cohen et al.'s format too, for their analyze.py
        write_cohen_tsv(tsv, out / "certify_cohen.tsv")
    plot_certified_accuracy(
        {f"sigma={sigma:g}": tsv}, out / "certified_accuracy.png", title=f"{args.dataset}, n={args.samples}"
    )
    plot_bound_comparison(out / "bound_comparison.png", sigma=float(sigma))
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    """Print the settings used (defaults included) and the main figures of the summary."""
    keys = (
        "images",
        "mode",
        "smoothed_accuracy",
        "abstain_rate",
        "samples_per_image",
        "fixed_samples_per_image",
        "seconds_per_image",
        "certified_accuracy",
        "decision",
    )
    settings = summary.get("settings") or {}
    used: dict[str, Any] = {"mode": summary["mode"]}
    used.update(
        {
            k: settings[k]
            for k in ("n", "n0", "alpha", "sigma", "bounds", "interval", "radius")
            if k in settings
        }
    )
    print("settings: " + ", ".join(f"{k}={v}" for k, v in used.items()))  # what was used, defaults included
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))


def add_subcommands(subparsers: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``certify`` to the ``amd`` subparsers; return ``{"certify": run_certify}``."""
    _add_certify_parser(subparsers)
    return {"certify": run_certify}

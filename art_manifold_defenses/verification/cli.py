"""``amd verify``: exact verification of a checkpoint on test images, with PGD and clean accuracy side by
side.

Writes ``OUT/verification.tsv`` (one row per image, flushed as it goes; a rerun with the same ``--out``
resumes after the rows already there) and ``OUT/summary.json`` + ``OUT/summary.md`` (verified / PGD / clean
accuracy as in paper 003's Table 2, timeouts, seconds per image, unstable ReLUs).

``verification.tsv`` starts with its fingerprint line (the model's hash and every setting that changes a row:
eps, bounds, time limits, attack steps, seed; see :mod:`art_manifold_defenses.fingerprint`) and every row
holds a hash of its image, so a rerun resumes only its own run: another model's, eps's or data set's rows are
refused with a message naming what differs (``--overwrite`` starts afresh). A last line cut by a crash is
dropped before rows are appended.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..utils import (
    device_arg,
    non_negative_int_arg,
    output_dir,
    positive_float_arg,
    positive_int_arg,
    unit_interval_arg,
)
from .choices import BOUND_METHODS

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from .verifier import ImageVerification, Verifier

# numpy, torch, scipy and the verifier are imported by the functions that use them, so that building the
# ``amd`` parser (``add_verify_arguments``) imports none of them.

__all__ = [
    "SCALES",
    "TSV_COLUMNS",
    "add_subcommands",
    "add_verify_arguments",
    "command_verify",
    "read_verification_tsv",
    "resolve_scale",
    "summarize_rows",
]

TSV_COLUMNS = [
    "idx",
    "label",
    "prediction",
    "status",
    "method",
    "pgd_correct",
    "seconds",
    "relus",
    "unstable",
    "stable_active",
    "stable_inactive",
    "bounds_seconds",
    "milp_seconds",
    "milp_classes",
    "counterexample_prediction",
    "margin_lower_bound",
    "image_hash",
]
#: Settings that change a row of ``verification.tsv`` (with the model's hash, its fingerprint).
FINGERPRINT_SETTINGS = (
    "eps",
    "bounds",
    "time_limit",
    "neuron_time_limit",
    "attack_steps",
    "pgd_steps",
    "pgd_restarts",
    "seed",
)


#: ``--scale`` presets of the image count and the per-image time limit (explicit ``--n`` / ``--time-limit``
#: win): ``quick`` (the default) finishes in minutes on a laptop CPU (worst case 20 x 10 s); ``paper`` is
#: paper 003's setup (Xiao et al. 2019's: 120 s per image on the whole 10,000-image test set, i.e. up to 333
#: hours on one core). Measured costs: ``docs/costs.md``.
SCALES: dict[str, dict[str, Any]] = {
    "quick": {"n": 20, "time_limit": 10.0},
    "paper": {"n": 10_000, "time_limit": 120.0},
}


def resolve_scale(args: argparse.Namespace) -> argparse.Namespace:
    """Fill ``args.n`` and ``args.time_limit`` left at ``None`` from the ``--scale`` preset (default
    ``quick``; a namespace without ``scale``, built by a script, counts as ``quick``); returns ``args``."""
    preset = SCALES[getattr(args, "scale", None) or "quick"]
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``amd verify``."""
    parser.add_argument(
        "--checkpoint", required=True, help="model.pt written by `amd train` (with its model.json)"
    )
    parser.add_argument(
        "--eps",
        type=unit_interval_arg,
        required=True,
        help="l-inf radius in [0, 1] pixel units (Xiao et al. MNIST: 0.1; paper 003 CIFAR-10: 8/255)",
    )
    parser.add_argument(
        "--scale",
        choices=list(SCALES),
        default="quick",
        help="presets of --n and --time-limit: quick = 20 images x 10 s (minutes on a laptop CPU; the "
        "default), "
        "paper = 10000 images x 120 s (paper 003 / Xiao et al.; hundreds of CPU hours)",
    )
    parser.add_argument(
        "--n",
        type=positive_int_arg,
        default=None,
        help="number of test images, from --start (default: --scale's)",
    )
    parser.add_argument(
        "--start", type=non_negative_int_arg, default=0, help="index of the first test image (default: 0)"
    )
    parser.add_argument(
        "--out", required=True, help="output folder (verification.tsv, summary.json, summary.md)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start verification.tsv afresh (a folder holding another run's rows is refused without it)",
    )
    parser.add_argument("--dataset", default=None, help="dataset (default: the checkpoint's)")
    parser.add_argument("--data-root", default=None, help="folder holding the dataset files")
    parser.add_argument(
        "--time-limit",
        type=positive_float_arg,
        default=None,
        help="seconds per image for all its work, PGD, bounds and MILP (default: --scale's, 10; paper: 120)",
    )
    parser.add_argument(
        "--bounds", default="lp", choices=BOUND_METHODS, help="bound tightening before the MILP (default: lp)"
    )
    parser.add_argument(
        "--neuron-time-limit",
        type=positive_float_arg,
        default=5.0,
        help="seconds per LP of the lp tightening (default: 5)",
    )
    parser.add_argument(
        "--attack-steps",
        type=non_negative_int_arg,
        default=20,
        help="PGD steps tried before the MILP, 0 = none (default: 20)",
    )
    parser.add_argument(
        "--pgd-steps",
        type=positive_int_arg,
        default=20,
        help="steps of the reported PGD accuracy (paper: 20)",
    )
    parser.add_argument(
        "--pgd-restarts",
        type=positive_int_arg,
        default=10,
        help="restarts of the reported PGD accuracy (paper: 10)",
    )
    parser.add_argument(
        "--device", default="cpu", type=device_arg, help="device of the forward passes and PGD (default: cpu)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def read_verification_tsv(path: str | Path) -> list[dict[str, str]]:
    """The complete rows of a ``verification.tsv`` (the fingerprint line skipped, a line cut by a crash
    ignored)."""
    from ..fingerprint import read_tsv

    return read_tsv(path)[2]


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary of TSV rows: shares of verified / falsified / timeouts, PGD and clean accuracy, timing,
    instability."""
    import numpy as np

    n = len(rows)
    if n == 0:
        return {"n": 0}

    def share(predicate: Callable[[dict[str, Any]], bool]) -> float:
        return sum(1 for r in rows if predicate(r)) / n

    seconds = np.array([float(r["seconds"]) for r in rows])
    bounded = [int(r["unstable"]) for r in rows if r["method"] in ("bounds", "milp")]
    return {
        "n": n,
        "verified_accuracy": share(lambda r: r["status"] == "verified"),
        "pgd_accuracy": share(lambda r: str(r["pgd_correct"]) in ("1", "True")),
        "clean_accuracy": share(lambda r: str(r["label"]) == str(r["prediction"])),
        "falsified": share(lambda r: r["status"] == "falsified"),
        "timeouts": share(lambda r: r["status"] == "timeout"),
        "inconclusive": share(lambda r: r["status"] == "inconclusive"),
        "decided_by": {
            m: sum(1 for r in rows if r["method"] == m) / n for m in ("clean", "pgd", "bounds", "milp")
        },
        "seconds_per_image": float(seconds.mean()),
        "median_seconds": float(np.median(seconds)),
        "mean_unstable_relus": float(np.mean(bounded)) if bounded else None,
        "relus": int(rows[0]["relus"]),
        # a verified image that PGD breaks would be a soundness bug; it must stay 0
        "verified_but_pgd_broken": sum(
            1 for r in rows if r["status"] == "verified" and str(r["pgd_correct"]) in ("0", "False")
        ),
    }


def _markdown(summary: dict[str, Any], settings: dict[str, Any]) -> str:
    def pct(value: float) -> str:
        return f"{100 * value:.2f}%"

    lines = [
        f"# Exact verification: {settings['checkpoint']}",
        "",
        f"l-inf eps = {settings['eps']}, {summary['n']} {settings['dataset']} test images from index "
        f"{settings['start']}, "
        f"bounds = {settings['bounds']}, time limit {settings['time_limit']} s per image, HiGHS (scipy "
        f"{settings['scipy']}).",
        "",
        (
            "| verified | PGD-{}x{} | clean | falsified | timeouts | s / image (mean, median) | unstable "
            "ReLUs / "
            "{} |"
        ).format(settings["pgd_steps"], settings["pgd_restarts"], summary["relus"]),
        "|---|---|---|---|---|---|---|",
        f"| {pct(summary['verified_accuracy'])} | {pct(summary['pgd_accuracy'])} | "
        f"{pct(summary['clean_accuracy'])} | "
        f"{pct(summary['falsified'])} | {pct(summary['timeouts'])} | {summary['seconds_per_image']:.2f}, "
        f"{summary['median_seconds']:.2f} | "
        f"{'-' if summary['mean_unstable_relus'] is None else round(summary['mean_unstable_relus'], 1)} |",
        "",
        "Decided by: "
        + ", ".join(f"{k} {pct(v)}" for k, v in summary["decided_by"].items())
        + f"; verified but broken by PGD: {summary['verified_but_pgd_broken']} (must be 0).",
        "",
    ]
    return "\n".join(lines)


def command_verify(args: argparse.Namespace) -> int:
    """Run ``amd verify``; returns the exit status."""
    from ..utils import resolve_device, set_seed
    from .verifier import Verifier

    resolve_scale(args)
    if not 0 <= args.eps <= 1:
        raise ValueError(f"--eps must be in [0, 1], got {args.eps}")
    if args.n < 1 or args.start < 0:
        raise ValueError(f"--n must be >= 1 and --start >= 0, got n={args.n}, start={args.start}")
    out = output_dir(args.out)
    device = resolve_device(args.device)
    set_seed(args.seed)
    model, metadata, dataset, x_all, y_all, positions = _load_model_and_images(args, device)
    tsv = out / "verification.tsv"
    rows, hashes = _resume_rows(args, tsv, model, dataset, x_all, y_all, positions)
    done = {int(r["idx"]) for r in rows}
    todo = [i for i in positions if i not in done]
    verifier = Verifier(
        model,
        input_shape=x_all.shape[1:],
        eps=float(args.eps),
        time_limit=args.time_limit,
        bounds=args.bounds,
        neuron_time_limit=args.neuron_time_limit,
        attack_steps=args.attack_steps,
        device=device,
        seed=args.seed,
        verbose=not args.quiet,
    )
    if todo:
        _verify_and_append(args, tsv, verifier, x_all[todo], y_all[todo], todo, hashes, rows, device)
    rows = [r for r in rows if args.start <= int(r["idx"]) < args.start + args.n]
    summary = summarize_rows(rows)
    settings = _settings(args, dataset, device, metadata)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "settings": settings}, indent=2) + "\n")
    (out / "summary.md").write_text(_markdown(summary, settings))
    print(
        f"verified {summary['verified_accuracy']:.4f} | PGD {summary['pgd_accuracy']:.4f} | clean "
        f"{summary['clean_accuracy']:.4f} | timeouts {summary['timeouts']:.4f} | "
        f"{summary['seconds_per_image']:.2f} s/image "
        f"({summary['n']} images) -> {out}"
    )
    if summary["verified_but_pgd_broken"]:
        print(
            f"amd verify: warning: {summary['verified_but_pgd_broken']} verified images broken by PGD",
            file=sys.stderr,
        )
        return 1
    return 0


def _load_model_and_images(
    args: argparse.Namespace, device: torch.device
) -> tuple[nn.Module, dict[str, Any], str, np.ndarray, np.ndarray, list[int]]:
    """The checkpoint, its metadata, the data set's name, its test images and labels, and the positions
    ``--start``.. ``--start + --n`` (checked to exist and to fit the model)."""
    from ..checkpoint import check_checkpoint_fits_data, load_checkpoint
    from ..data import load_dataset

    model, metadata = load_checkpoint(args.checkpoint, device=device)
    dataset = args.dataset or metadata.get("dataset") or "mnist-embedded"
    x_all, y_all = load_dataset(dataset, "test", root=args.data_root)
    stop = args.start + args.n
    if stop > len(x_all):
        raise ValueError(
            f"--start {args.start} --n {args.n} asks for test images up to index {stop - 1}, but data set "
            f"{dataset!r} has {len(x_all)} (indices 0 to {len(x_all) - 1})"
        )
    positions = list(range(args.start, stop))
    check_checkpoint_fits_data(
        model,
        metadata,
        x_all[positions],
        y_all[positions],
        checkpoint=args.checkpoint,
        dataset=dataset,
        device=device,
    )
    return model, metadata, dataset, x_all, y_all, positions


def _resume_rows(
    args: argparse.Namespace,
    tsv: Path,
    model: nn.Module,
    dataset: str,
    x_all: np.ndarray,
    y_all: np.ndarray,
    positions: list[int],
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The rows ``verification.tsv`` already holds for this run (refusing another run's, see the module
    docstring) and the hash of every image at ``positions``."""
    from ..fingerprint import image_hashes, make_fingerprint, model_hash, overwrite_hint, resume_tsv

    fingerprint = make_fingerprint(
        "verify",
        model=model_hash(model),
        dataset=dataset,
        **{k: getattr(args, k) for k in FINGERPRINT_SETTINGS},
    )
    hashes = dict(zip(positions, image_hashes(x_all[positions]), strict=True))
    rows = resume_tsv(
        tsv,
        fingerprint,
        TSV_COLUMNS,
        resume=not args.overwrite,
        hint=overwrite_hint(None),
        expected={i: (int(y_all[i]), hashes[i]) for i in positions},
    )
    return rows, hashes


def _verify_and_append(
    args: argparse.Namespace,
    tsv: Path,
    verifier: Verifier,
    x: np.ndarray,
    y: np.ndarray,
    todo: list[int],
    hashes: dict[int, str],
    rows: list[dict[str, Any]],
    device: torch.device,
) -> None:
    """The reported PGD attack on the images ``x`` (named ``todo``), then their exact verification, each
    verdict appended to ``tsv`` (flushed) and to ``rows`` as it comes."""
    import torch

    from .attack import pgd_attack

    model = verifier.model
    generator = torch.Generator().manual_seed(args.seed)
    model.eval()
    _, fooled = pgd_attack(
        model,
        torch.as_tensor(x, device=device),
        torch.as_tensor(y, device=device),
        float(args.eps),
        steps=args.pgd_steps,
        restarts=args.pgd_restarts,
        generator=generator,
    )
    pgd_correct = {i: int(not f) for i, f in zip(todo, fooled.cpu().numpy(), strict=True)}
    with tsv.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TSV_COLUMNS, delimiter="\t", lineterminator="\n")

        def write(result: ImageVerification) -> None:
            row = result.to_row()
            row["pgd_correct"] = pgd_correct[result.index]
            row["image_hash"] = hashes[result.index]
            writer.writerow({k: row[k] for k in TSV_COLUMNS})
            handle.flush()
            rows.append({k: str(row[k]) for k in TSV_COLUMNS})

        verifier.verify(x, y, indices=todo, callback=write)


def _settings(
    args: argparse.Namespace, dataset: str, device: Any, metadata: dict[str, Any]
) -> dict[str, Any]:
    """The settings recorded in ``summary.json`` (and shown by ``summary.md``)."""
    import scipy
    import torch

    return {
        "checkpoint": str(args.checkpoint),
        "dataset": dataset,
        "eps": args.eps,
        "scale": getattr(args, "scale", None),
        "start": args.start,
        "n": args.n,
        "bounds": args.bounds,
        "time_limit": args.time_limit,
        "neuron_time_limit": args.neuron_time_limit,
        "attack_steps": args.attack_steps,
        "pgd_steps": args.pgd_steps,
        "pgd_restarts": args.pgd_restarts,
        "seed": args.seed,
        "device": str(device),
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "architecture": metadata.get("architecture"),
        "defence": metadata.get("defence"),
    }


def add_subcommands(subparsers: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Register ``verify`` on ``amd``'s subparsers; return ``{"verify": command_verify}``."""
    parser = subparsers.add_parser(
        "verify", help="exact MILP verification of a checkpoint (verified/PGD/clean accuracy)"
    )
    add_verify_arguments(parser)
    return {"verify": command_verify}

"""The ``amd`` command.

Subcommands: ``train`` (a zoo model, optionally with a defence), ``info`` (versions and devices). Defences plug into
``amd train --defense NAME`` through :data:`DEFENCE_TRAINERS`: a module that provides
``add_train_arguments(group)`` and ``train_from_args(args, data, device) -> (model, defence_metadata)``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__

#: ``--defense`` name -> module path providing ``add_train_arguments`` and ``train_from_args``.
DEFENCE_TRAINERS: dict[str, str] = {}


def _add_common_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist-embedded", help="dataset name (default: mnist-embedded)")
    parser.add_argument("--data-root", default=None, help="folder holding the dataset files (default: $AMD_DATA_DIR or ~/.cache)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def _build_parser() -> argparse.ArgumentParser:
    from .models import model_names

    parser = argparse.ArgumentParser(prog="amd", description="art-manifold-defenses: defences as ART plug-ins, evaluated honestly.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a zoo model (optionally with a defence) and save a checkpoint")
    _add_common_data_arguments(train)
    train.add_argument("--model", default="cw_mnist", choices=model_names(), help="zoo architecture (default: cw_mnist)")
    train.add_argument("--defense", default="none", choices=["none", *sorted(DEFENCE_TRAINERS)], help="defence to train with")
    train.add_argument("--epochs", type=int, default=10, help="number of epochs (default: 10)")
    train.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    train.add_argument("--activation", default=None, choices=["relu", "elu"], help="activation (default: the model's own)")
    train.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    train.add_argument("--out", required=True, help="output folder for model.pt and model.json")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    for name, module in sorted(DEFENCE_TRAINERS.items()):
        group = train.add_argument_group(f"--defense {name}")
        importlib.import_module(module).add_train_arguments(group)

    sub.add_parser("info", help="print package, library and device information")
    return parser


def _load_data(args: argparse.Namespace) -> dict[str, Any]:
    from .data import load_dataset

    x_train, y_train = load_dataset(args.dataset, "train", root=args.data_root)
    x_test, y_test = load_dataset(args.dataset, "test", root=args.data_root)
    if getattr(args, "train_limit", None):
        x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _command_train(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import save_checkpoint
    from .models import build_model
    from .training import evaluate_accuracy, train
    from .utils import resolve_device, set_seed

    device = resolve_device(args.device)
    set_seed(args.seed)
    data = _load_data(args)
    channels, size = data["x_train"].shape[1], data["x_train"].shape[2]
    num_classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    architecture: dict[str, Any] = {"name": args.model, "in_channels": int(channels), "num_classes": num_classes, "input_size": int(size)}
    if args.activation:
        architecture["activation"] = args.activation
    out = Path(args.out)
    started = time.perf_counter()
    defence_meta = None
    if args.defense == "none":
        arch = dict(architecture)
        model = build_model(arch.pop("name"), **arch)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        train(
            model, data["x_train"], data["y_train"], epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
            device=device, validation_data=(data["x_test"], data["y_test"]), checkpoint_dir=out / "train_state", seed=args.seed,
            verbose=not args.quiet,
        )  # fmt: skip
    else:
        module = importlib.import_module(DEFENCE_TRAINERS[args.defense])
        model, defence_meta = module.train_from_args(args, data, device, architecture)
    seconds = time.perf_counter() - started
    accuracy = evaluate_accuracy(model, data["x_test"], data["y_test"], device=device)
    save_checkpoint(
        model, out / "model.pt", architecture=architecture, defence=defence_meta, dataset=args.dataset,
        extra={"test_accuracy": accuracy, "epochs": args.epochs, "seed": args.seed, "train_seconds": seconds,
               "batch_size": args.batch_size, "lr": args.lr},
    )  # fmt: skip
    print(f"test accuracy: {accuracy:.4f} ({len(data['y_test'])} images, {args.dataset}); saved {out / 'model.pt'} in {seconds:.0f}s")
    return 0


def _command_info(args: argparse.Namespace) -> int:
    import importlib.metadata as md

    import torch

    info: dict[str, Any] = {"art_manifold_defenses": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("torch", "adversarial-robustness-toolbox", "foolbox", "cleverhans", "torchattacks", "numpy", "scipy"):
        try:
            info[dist] = md.version(dist)
        except md.PackageNotFoundError:
            info[dist] = "not installed"
    info["cuda_available"] = torch.cuda.is_available()
    info["devices"] = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    info["cpu_threads"] = torch.get_num_threads()
    print(json.dumps(info, indent=2))
    return 0


COMMANDS = {"train": _command_train, "info": _command_info}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``amd`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"amd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

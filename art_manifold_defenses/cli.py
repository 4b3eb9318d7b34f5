"""The ``amd`` command.

Subcommands: ``train`` (a zoo model, optionally with a defence), ``evaluate`` (a checkpoint under an attack
suite), ``demo`` (the baseline and the five defences, see :mod:`art_manifold_defenses.demo`), ``reproduce``
(the papers' reproductions, see :mod:`art_manifold_defenses.reproduce`), ``info`` (versions and devices).
``amd train --defense NAME`` reads :data:`art_manifold_defenses.defences.DEFENCES`: its choices are their
names and aliases, its flags are generated from each defence's ``Config`` dataclass, and it trains through the
record's ``train``; ``amd demo`` trains its models the same way
(:data:`art_manifold_defenses.demo.DEMO_ENTRIES`). The steps of ``amd train`` live in ``_cli_train`` and
those of ``amd evaluate`` in ``_cli_evaluate`` (importable from here).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._cli_common import add_root_device_seed_arguments
from ._cli_evaluate import _add_evaluate_parser as _add_evaluate_parser
from ._cli_evaluate import _evaluate as _evaluate
from ._cli_evaluate import _transfer_spec as _transfer_spec
from ._cli_train import _NOT_IN_TRAIN_FINGERPRINT as _NOT_IN_TRAIN_FINGERPRINT
from ._cli_train import _TRAIN_FINGERPRINT_FILE as _TRAIN_FINGERPRINT_FILE
from ._cli_train import _check_train_output as _check_train_output
from ._cli_train import _load_data as _load_data
from ._cli_train import _read_json_object as _read_json_object
from ._cli_train import _train as _train
from ._cli_train import _train_fingerprint as _train_fingerprint
from ._version import __version__
from .defence_record import add_defence_arguments
from .defence_trainers import DEFENCE_TRAINERS as DEFENCE_TRAINERS  # deprecated, see below
from .defences import DEFENCES, defence_names, get_defence
from .utils import positive_float_arg, positive_int_arg

if TYPE_CHECKING:
    from .evaluation.suites import PAPER_SUITES as PAPER_SUITES
    from .evaluation.suites import register_paper_suite as register_paper_suite

# Importable from here, where they used to be defined: ``DEFENCE_TRAINERS`` (deprecated: ``--defense`` name ->
# the defence's ``cli`` module, derived from ``defences.DEFENCES``;
# :mod:`art_manifold_defenses.defence_trainers`) and ``PAPER_SUITES`` / ``register_paper_suite`` (paper suite
# name -> ``module:function`` that registers it; :mod:`art_manifold_defenses.evaluation.suites`, where
# ``get_suite`` resolves the names without this module; read through ``__getattr__`` below).
#
# Building the parser imports no torch, ART or other heavy library (``amd --help`` and a bad flag answer at
# once): the modules imported at the top of this file and the modules that add arguments are light, and every
# handler imports what it needs when it runs.

#: Modules adding subcommands through ``add_subcommands(subparsers) -> {name: handler}``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "art_manifold_defenses.rbf_reconstruction.cli",  # fit-rbf
    "art_manifold_defenses.radial_mapping.cli",  # feature-analysis
    "art_manifold_defenses.smoothing.cli",  # certify
    "art_manifold_defenses.verification.cli",  # verify
    "art_manifold_defenses.reproduce",  # reproduce
)


def _add_common_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist-embedded", help="dataset name (default: mnist-embedded)")
    add_root_device_seed_arguments(parser)


def __getattr__(name: str) -> Any:
    """``PAPER_SUITES`` and ``register_paper_suite`` of :mod:`.evaluation.suites`, imported when first
    read."""
    if name in ("PAPER_SUITES", "register_paper_suite"):
        from .evaluation import suites

        return getattr(suites, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_parser() -> argparse.ArgumentParser:
    from .models.names import ZOO_NAMES

    parser = argparse.ArgumentParser(
        prog="amd", description="art-manifold-defenses: defences as ART plug-ins, evaluated honestly."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train a zoo model (optionally with a defence) and save a checkpoint"
    )
    _add_common_data_arguments(train)
    train.add_argument(
        "--model", default="cw_mnist", choices=ZOO_NAMES, help="zoo architecture (default: cw_mnist)"
    )
    train.add_argument(
        "--defense",
        "--defence",
        dest="defense",
        default="none",
        choices=["none", *defence_names()],
        help="defence to train with",
    )
    train.add_argument("--epochs", type=positive_int_arg, default=10, help="number of epochs (default: 10)")
    train.add_argument("--batch-size", type=positive_int_arg, default=128, help="batch size (default: 128)")
    train.add_argument(
        "--lr", type=positive_float_arg, default=1e-3, help="Adam learning rate (default: 1e-3)"
    )
    train.add_argument(
        "--activation", default=None, choices=["relu", "elu"], help="activation (default: the model's own)"
    )
    train.add_argument(
        "--train-limit", type=positive_int_arg, default=None, help="use only the first N training images"
    )
    train.add_argument("--out", required=True, help="output folder for model.pt and model.json")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help=(
            "discard OUT/train_state and OUT/model.pt of an earlier run instead of resuming (or refusing) it"
        ),
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    for defence in DEFENCES.values():  # flags generated from each defence's Config dataclass
        names = ", ".join(n for n in defence_names() if get_defence(n) is defence)
        add_defence_arguments(train.add_argument_group(f"--defense {names}"), defence)

    _add_evaluate_parser(sub)
    _add_demo_parser(sub)
    for module in SUBCOMMAND_MODULES:
        COMMANDS.update(importlib.import_module(module).add_subcommands(sub))
    sub.add_parser("info", help="print package, library and device information")
    return parser


def _add_demo_parser(sub: Any) -> None:
    from .demo import add_demo_arguments

    demo = sub.add_parser(
        "demo",
        help="the baseline and the five defences on mnist-embedded: train, attack, certify, one report",
    )
    add_demo_arguments(demo)


def _command_train(args: argparse.Namespace) -> int:
    """``amd train``; under ``torchrun`` the shared training loop runs DistributedDataParallel (see
    :func:`.training.train`) and rank 0 writes the checkpoint."""
    from . import distributed

    info = distributed.init_distributed(args.device)
    try:
        return _train(args, info.device, is_main=info.is_main)
    finally:
        distributed.destroy_distributed(info)


def _command_info(args: argparse.Namespace) -> int:
    import importlib.metadata as md

    import torch

    info: dict[str, Any] = {
        "art_manifold_defenses": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for dist in (
        "torch",
        "adversarial-robustness-toolbox",
        "foolbox",
        "cleverhans",
        "torchattacks",
        "numpy",
        "scipy",
    ):
        try:
            info[dist] = md.version(dist)
        except md.PackageNotFoundError:
            info[dist] = "not installed"
    info["cuda_available"] = torch.cuda.is_available()
    info["devices"] = ["cpu"] + [
        f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
    ]
    info["cpu_threads"] = torch.get_num_threads()
    print(json.dumps(info, indent=2))
    return 0


def _command_evaluate(args: argparse.Namespace) -> int:
    """``amd evaluate``; under ``torchrun`` the batches are sharded over the processes (see
    :mod:`.distributed`) and rank 0 writes the same files as a single process."""
    from . import distributed

    info = distributed.init_distributed(args.device)
    try:
        return _evaluate(args, info.device, is_main=info.is_main)
    finally:
        distributed.destroy_distributed(info)


def _command_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


COMMANDS: dict[str, Any] = {
    "train": _command_train,
    "evaluate": _command_evaluate,
    "demo": _command_demo,
    "info": _command_info,
}


#: Exceptions that are the user's input, files or environment (one error line, exit 2), not a bug of the
#: package.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``amd`` console script.

    Returns 0 on success, 2 for an expected failure (one ``amd <command>: error: ...`` line on stderr), 1 for
    an unexpected exception (its traceback and a line saying it is a bug); a bad flag exits with status 2 when
    parsed.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except EXPECTED_ERRORS as exc:
        message = (
            " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        )
        print(f"amd {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - reported as a bug, with its traceback
        traceback.print_exc()
        print(
            f"amd {args.command}: internal error: this is a bug in art-manifold-defenses {__version__}; "
            "please report "
            "it with the traceback above",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

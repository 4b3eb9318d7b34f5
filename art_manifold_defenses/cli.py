"""The ``amd`` command.

Subcommands: ``train`` (a zoo model, optionally with a defence), ``evaluate`` (a checkpoint under an attack
suite), ``demo`` (the baseline and the five defences, see :mod:`art_manifold_defenses.demo`), ``reproduce``
(the papers' reproductions, see :mod:`art_manifold_defenses.reproduce`), ``info`` (versions and devices).
``amd train --defense NAME`` reads :data:`art_manifold_defenses.defences.DEFENCES`: its choices are their
names and aliases, its flags are generated from each defence's ``Config`` dataclass, and it trains through the
record's ``train``; ``amd demo`` trains its models the same way
(:data:`art_manifold_defenses.demo.DEMO_ENTRIES`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .defence_record import add_defence_arguments, train_from_namespace
from .defence_trainers import DEFENCE_TRAINERS as DEFENCE_TRAINERS  # deprecated, see below
from .defences import DEFENCES, defence_names, get_defence, resolve_defence
from .utils import device_arg, non_negative_float_arg, output_dir, positive_float_arg, positive_int_arg

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
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding the dataset files (default: $AMD_DATA_DIR or ~/.cache)",
    )
    parser.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


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


def _add_evaluate_parser(sub: Any) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="evaluate a checkpoint under an attack suite (JSON, Markdown, curves)"
    )
    evaluate.add_argument(
        "--checkpoint", required=True, help="model.pt written by `amd train` (its model.json beside it)"
    )
    evaluate.add_argument(
        "--dataset", default=None, help="dataset name (default: the checkpoint's, else mnist-embedded)"
    )
    evaluate.add_argument(
        "--data-root",
        default=None,
        help="folder holding the dataset files (default: $AMD_DATA_DIR or ~/.cache)",
    )
    evaluate.add_argument(
        "--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default: cpu)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    evaluate.add_argument(
        "--n",
        "--num-images",
        dest="n",
        type=positive_int_arg,
        default=1000,
        help=(
            "evaluate the first N test images (default: 1000); spell it --num-images after torchrun, whose "
            "own parser rejects --n"
        ),
    )
    evaluate.add_argument(
        "--suite",
        default="quick",
        help="attack suite: quick, linf, l2, l1, autoattack, full or a registered one",
    )
    evaluate.add_argument(
        "--norm", default=None, choices=["linf", "l2", "l1"], help="threat model (default: the suite's)"
    )
    evaluate.add_argument(
        "--eps", type=non_negative_float_arg, default=None, help="budget (default: linf 0.3, l2 2.0, l1 15.0)"
    )
    evaluate.add_argument(
        "--batch-size",
        type=positive_int_arg,
        default=128,
        help="batch size of attacks and predictions (default: 128)",
    )
    evaluate.add_argument(
        "--eot-samples",
        type=positive_int_arg,
        default=None,
        help="EoT passes for a stochastic model (default: 16)",
    )
    evaluate.add_argument(
        "--votes",
        type=positive_int_arg,
        default=None,
        help="majority-vote passes for a stochastic model (default: 9)",
    )
    evaluate.add_argument(
        "--repeats",
        type=positive_int_arg,
        default=None,
        help="attack repeats, worst kept (default: 3 stochastic, 1 otherwise)",
    )
    evaluate.add_argument(
        "--surrogate",
        default=None,
        help=(
            "checkpoint of a source model: adds a transfer attack (the suite's first iterative attack, "
            "crafted on it)"
        ),
    )
    evaluate.add_argument(
        "--reported", type=float, default=None, help="the paper's robust accuracy in percent (stored only)"
    )
    evaluate.add_argument(
        "--out", required=True, help="output folder for results.json, results.md, curves.png"
    )
    evaluate.add_argument(
        "--overwrite",
        action="store_true",
        help="discard the files of an earlier evaluation in OUT instead of resuming (or refusing) them",
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_demo_parser(sub: Any) -> None:
    from .demo import add_demo_arguments

    demo = sub.add_parser(
        "demo",
        help="the baseline and the five defences on mnist-embedded: train, attack, certify, one report",
    )
    add_demo_arguments(demo)


def _load_data(args: argparse.Namespace) -> dict[str, Any]:
    from .data import load_dataset

    x_train, y_train = load_dataset(args.dataset, "train", root=args.data_root)
    x_test, y_test = load_dataset(args.dataset, "test", root=args.data_root)
    limit = getattr(args, "train_limit", None)
    if limit is not None:
        if limit > len(x_train):
            raise ValueError(
                f"--train-limit {limit} is more than the {len(x_train)} training images of {args.dataset!r}"
            )
        x_train, y_train = x_train[:limit], y_train[:limit]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


#: ``amd train`` flags that do not change the trained model (left out of its fingerprint).
_NOT_IN_TRAIN_FINGERPRINT = frozenset({"command", "out", "quiet", "device", "data_root", "overwrite"})
_TRAIN_FINGERPRINT_FILE = "fingerprint.json"


def _train_fingerprint(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of an ``amd train`` run: every flag that changes the model, and hashes of the data."""
    from .fingerprint import arrays_hash, make_fingerprint

    flags = {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_IN_TRAIN_FINGERPRINT}
    return make_fingerprint(
        "train",
        train_data=arrays_hash(data["x_train"], data["y_train"]),
        validation_data=arrays_hash(data["x_test"], data["y_test"]),
        **flags,
    )


def _check_train_output(out: Path, fingerprint: dict[str, Any], *, overwrite: bool, is_main: bool) -> None:
    """Refuse (or with ``overwrite`` clear) an ``amd train`` output folder holding another run: a
    ``train_state/`` whose recorded fingerprint differs or is missing, or a ``model.pt`` whose ``model.json``
    records another one."""
    from . import distributed
    from .fingerprint import check_fingerprint, overwrite_hint

    state_dir, model_path = out / "train_state", out / "model.pt"
    if overwrite and is_main:
        shutil.rmtree(state_dir, ignore_errors=True)
        for stale in (model_path, model_path.with_suffix(".json")):
            stale.unlink(missing_ok=True)
    distributed.barrier()
    hint = overwrite_hint(None)
    record = state_dir / _TRAIN_FINGERPRINT_FILE
    if state_dir.is_dir() and any(p.name != _TRAIN_FINGERPRINT_FILE for p in state_dir.iterdir()):
        check_fingerprint(_read_json_object(record), fingerprint, source=state_dir, hint=hint)
    if model_path.exists():
        sidecar = _read_json_object(model_path.with_suffix(".json")) or {}
        check_fingerprint(
            (sidecar.get("extra") or {}).get("fingerprint"), fingerprint, source=model_path, hint=hint
        )
    distributed.barrier()  # every rank has checked before rank 0 writes
    if is_main:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(record.name + ".tmp")
        tmp.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
        tmp.replace(record)


def _read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _command_train(args: argparse.Namespace) -> int:
    """``amd train``; under ``torchrun`` the shared training loop runs DistributedDataParallel (see
    :func:`.training.train`) and rank 0 writes the checkpoint."""
    from . import distributed

    info = distributed.init_distributed(args.device)
    try:
        return _train(args, info.device, is_main=info.is_main)
    finally:
        distributed.destroy_distributed(info)


def _train(args: argparse.Namespace, device: Any, *, is_main: bool) -> int:
    import torch

    from .checkpoint import save_checkpoint
    from .models import build_model
    from .training import evaluate_accuracy, train
    from .utils import set_seed

    set_seed(args.seed)
    out = output_dir(args.out)
    data = _load_data(args)
    fingerprint = _train_fingerprint(args, data)
    _check_train_output(out, fingerprint, overwrite=args.overwrite, is_main=is_main)
    channels, size = data["x_train"].shape[1], data["x_train"].shape[2]
    num_classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    architecture: dict[str, Any] = {
        "name": args.model,
        "in_channels": int(channels),
        "num_classes": num_classes,
        "input_size": int(size),
    }
    if args.activation:
        architecture["activation"] = args.activation
    started = time.perf_counter()
    defence_meta = None
    if args.defense == "none":
        arch = dict(architecture)
        model = build_model(arch.pop("name"), **arch)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        train(
            model,
            data["x_train"],
            data["y_train"],
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=optimizer,
            device=device,
            validation_data=(data["x_test"], data["y_test"]),
            checkpoint_dir=out / "train_state",
            seed=args.seed,
            verbose=not args.quiet,
        )
    else:
        defence, overrides = resolve_defence(args.defense)
        model, defence_meta = train_from_namespace(defence, args, data, device, architecture, overrides)
    seconds = time.perf_counter() - started
    if not is_main:
        return 0
    accuracy = evaluate_accuracy(model, data["x_test"], data["y_test"], device=device)
    save_checkpoint(
        model,
        out / "model.pt",
        architecture=architecture,
        defence=defence_meta,
        dataset=args.dataset,
        extra={
            "test_accuracy": accuracy,
            "epochs": args.epochs,
            "seed": args.seed,
            "train_seconds": seconds,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "fingerprint": fingerprint,
        },
    )
    print(
        f"test accuracy: {accuracy:.4f} ({len(data['y_test'])} images, {args.dataset}); saved "
        f"{out / 'model.pt'} in {seconds:.0f}s"
    )
    return 0


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


def _transfer_spec(suite: list[Any]) -> Any:
    """A transfer attack that repeats the suite's first bounded iterative white-box attack on the surrogate
    (ART PGD with 40 steps if the suite has none)."""
    from .evaluation import AttackSpec

    for spec in suite:
        if (
            not (spec.one_step or spec.gradient_free or spec.minimisation)
            and spec.eps is not None
            and spec.library != "autoattack"
        ):
            base = {"library": spec.library, "attack": spec.attack, "params": dict(spec.params)}
            return AttackSpec("transfer", "transfer", spec.norm, spec.eps, {"base": base})
    first = suite[0]
    eps = first.eps if first.eps is not None else 0.3
    return AttackSpec(
        "transfer",
        "transfer",
        first.norm,
        eps,
        {"base": {"library": "art", "attack": "pgd", "params": {"max_iter": 40}}},
    )


def _command_evaluate(args: argparse.Namespace) -> int:
    """``amd evaluate``; under ``torchrun`` the batches are sharded over the processes (see
    :mod:`.distributed`) and rank 0 writes the same files as a single process."""
    from . import distributed

    info = distributed.init_distributed(args.device)
    try:
        return _evaluate(args, info.device, is_main=info.is_main)
    finally:
        distributed.destroy_distributed(info)


def _evaluate(args: argparse.Namespace, device: Any, *, is_main: bool) -> int:
    from .checkpoint import check_checkpoint_fits_data, load_checkpoint
    from .data import load_dataset
    from .evaluation import evaluate, get_suite
    from .evaluation.suites import register_paper_suite

    out = output_dir(args.out)
    model, metadata = load_checkpoint(args.checkpoint, device=device)
    dataset = args.dataset or metadata.get("dataset") or "mnist-embedded"
    register_paper_suite(args.suite)
    suite = get_suite(args.suite, norm=args.norm, eps=args.eps)
    surrogate = None
    if args.surrogate:
        surrogate, _ = load_checkpoint(args.surrogate, device=device)
        suite.append(_transfer_spec(suite))
    x_test, y_test = load_dataset(dataset, "test", root=args.data_root)
    if args.n > len(x_test):
        raise ValueError(f"--n {args.n} is more than the {len(x_test)} test images of data set {dataset!r}")
    x, y = x_test[: args.n], y_test[: args.n]
    check_checkpoint_fits_data(
        model, metadata, x, y, checkpoint=args.checkpoint, dataset=dataset, device=device
    )
    defence = metadata.get("defence") or {}
    name = metadata["architecture"]["name"] + (f" + {defence['name']}" if defence.get("name") else "")
    result = evaluate(
        model,
        x,
        y,
        suite,
        device=device,
        seed=args.seed,
        batch_size=args.batch_size,
        out_dir=out,
        surrogate_model=surrogate,
        eot_samples=args.eot_samples,
        votes=args.votes,
        repeats=args.repeats,
        verbose=not args.quiet,
        model_name=name,
        dataset=dataset,
        reported=args.reported,
        overwrite=args.overwrite,
    )
    if not is_main:
        return 0
    print(
        f"clean accuracy {result.clean_accuracy:.4f}, robust accuracy {result.robust_accuracy:.4f} "
        f"({len(y)} images, {args.suite}); {len(result.audit_flags)} audit flag(s); wrote "
        f"{Path(args.out) / 'results.json'}"
    )
    for flag in result.audit_flags:
        print(f"  audit: {flag.code}: {flag.message}")
    return 0


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

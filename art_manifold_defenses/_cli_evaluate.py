"""``amd evaluate``'s parser (:func:`_add_evaluate_parser`), its transfer attack (:func:`_transfer_spec`)
and its run (:func:`_evaluate`: load a checkpoint and its test data, attack it with a suite, write the
results). Building the parser imports no heavy library; :func:`_evaluate` imports them when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._cli_common import add_root_device_seed_arguments
from .utils import non_negative_float_arg, output_dir, positive_int_arg


def _add_evaluate_parser(sub: Any) -> None:
    """``amd evaluate``: the checkpoint and its test data, the attacks, and the output."""
    evaluate = sub.add_parser(
        "evaluate", help="evaluate a checkpoint under an attack suite (JSON, Markdown, curves)"
    )
    _add_evaluate_data_arguments(evaluate)
    _add_evaluate_attack_arguments(evaluate)
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


def _add_evaluate_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``amd evaluate``'s checkpoint, test data, device, seed and number of images."""
    parser.add_argument(
        "--checkpoint", required=True, help="model.pt written by `amd train` (its model.json beside it)"
    )
    parser.add_argument(
        "--dataset", default=None, help="dataset name (default: the checkpoint's, else mnist-embedded)"
    )
    add_root_device_seed_arguments(parser)
    parser.add_argument(
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


def _add_evaluate_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """``amd evaluate``'s attack suite and budget, batch size, EoT, votes, repeats and transfer surrogate."""
    parser.add_argument(
        "--suite",
        default="quick",
        help="attack suite: quick, linf, l2, l1, autoattack, full or a registered one",
    )
    parser.add_argument(
        "--norm", default=None, choices=["linf", "l2", "l1"], help="threat model (default: the suite's)"
    )
    parser.add_argument(
        "--eps", type=non_negative_float_arg, default=None, help="budget (default: linf 0.3, l2 2.0, l1 15.0)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int_arg,
        default=128,
        help="batch size of attacks and predictions (default: 128)",
    )
    parser.add_argument(
        "--eot-samples",
        type=positive_int_arg,
        default=None,
        help="EoT passes for a stochastic model (default: 16)",
    )
    parser.add_argument(
        "--votes",
        type=positive_int_arg,
        default=None,
        help="majority-vote passes for a stochastic model (default: 9)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int_arg,
        default=None,
        help="attack repeats, worst kept (default: 3 stochastic, 1 otherwise)",
    )
    parser.add_argument(
        "--surrogate",
        default=None,
        help=(
            "checkpoint of a source model: adds a transfer attack (the suite's first iterative attack, "
            "crafted on it)"
        ),
    )


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

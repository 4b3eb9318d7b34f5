"""The ``amd`` command.

Subcommands: ``train`` (a zoo model, optionally with a defence), ``evaluate`` (a checkpoint under an attack suite),
``demo`` (train and evaluate the models of :data:`DEMO_ENTRIES`), ``info`` (versions and devices). Defences plug into
``amd train --defense NAME`` through :data:`DEFENCE_TRAINERS`: a module that provides
``add_train_arguments(group)`` and ``train_from_args(args, data, device) -> (model, defence_metadata)``, and into
``amd demo`` through :data:`DEMO_ENTRIES`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__

#: ``--defense`` name -> module path providing ``add_train_arguments`` and ``train_from_args``.
DEFENCE_TRAINERS: dict[str, str] = {
    "rbf-cnn": "art_manifold_defenses.rbf_reconstruction.cli",
    "rbf-cnn-plus": "art_manifold_defenses.rbf_reconstruction.cli",
    "radial-mapping": "art_manifold_defenses.radial_mapping.cli",
    "fpd": "art_manifold_defenses.fpd.cli",
    "manifold-reg": "art_manifold_defenses.manifold_regularization.cli",
    "stn": "art_manifold_defenses.smoothing.cli",
}
#: Modules adding subcommands through ``add_subcommands(subparsers) -> {name: handler}``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "art_manifold_defenses.rbf_reconstruction.cli",  # fit-rbf
    "art_manifold_defenses.radial_mapping.cli",  # feature-analysis
    "art_manifold_defenses.smoothing.cli",  # certify
    "art_manifold_defenses.verification.cli",  # verify
)
#: Paper suites (``amd evaluate --suite NAME``) -> ``module:function`` that registers them.
PAPER_SUITES: dict[str, str] = {
    "paper-radial-mapping": "art_manifold_defenses.radial_mapping.suite:register_paper_suite",
    "paper-fpd": "art_manifold_defenses.fpd.suite:register_paper_fpd_suite",
    "paper-rbf-cnn": "art_manifold_defenses.rbf_reconstruction.suite:register_paper_suite",
    "paper-manifold-reg": "art_manifold_defenses.manifold_regularization.suite:register_paper_suite",
}


def register_paper_suite(name: str) -> None:
    """Import the defence module that registers paper suite ``name`` (no-op for other names)."""
    if name in PAPER_SUITES:
        module, function = PAPER_SUITES[name].split(":")
        getattr(importlib.import_module(module), function)()


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
    for module in sorted(set(DEFENCE_TRAINERS.values())):
        names = ", ".join(n for n, m in sorted(DEFENCE_TRAINERS.items()) if m == module)
        importlib.import_module(module).add_train_arguments(train.add_argument_group(f"--defense {names}"))

    _add_evaluate_parser(sub)
    _add_demo_parser(sub)
    for module in SUBCOMMAND_MODULES:
        COMMANDS.update(importlib.import_module(module).add_subcommands(sub))
    sub.add_parser("info", help="print package, library and device information")
    return parser


def _add_evaluate_parser(sub: Any) -> None:
    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint under an attack suite (JSON, Markdown, curves)")
    evaluate.add_argument("--checkpoint", required=True, help="model.pt written by `amd train` (its model.json beside it)")
    evaluate.add_argument("--dataset", default=None, help="dataset name (default: the checkpoint's, else mnist-embedded)")
    evaluate.add_argument("--data-root", default=None, help="folder holding the dataset files (default: $AMD_DATA_DIR or ~/.cache)")
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    evaluate.add_argument("--n", type=int, default=1000, help="evaluate the first N test images (default: 1000)")
    evaluate.add_argument("--suite", default="quick", help="attack suite: quick, linf, l2, l1, autoattack, full or a registered one")
    evaluate.add_argument("--norm", default=None, choices=["linf", "l2", "l1"], help="threat model (default: the suite's)")
    evaluate.add_argument("--eps", type=float, default=None, help="budget (default: linf 0.3, l2 2.0, l1 15.0)")
    evaluate.add_argument("--batch-size", type=int, default=128, help="batch size of attacks and predictions (default: 128)")
    evaluate.add_argument("--eot-samples", type=int, default=None, help="EoT passes for a stochastic model (default: 16)")
    evaluate.add_argument("--votes", type=int, default=None, help="majority-vote passes for a stochastic model (default: 9)")
    evaluate.add_argument("--repeats", type=int, default=None, help="attack repeats, worst kept (default: 3 stochastic, 1 otherwise)")
    evaluate.add_argument("--surrogate", default=None,
                          help="checkpoint of a source model: adds a transfer attack (the suite's first iterative attack, crafted on it)")
    evaluate.add_argument("--reported", type=float, default=None, help="the paper's robust accuracy in percent (stored only)")
    evaluate.add_argument("--out", required=True, help="output folder for results.json, results.md, curves.png")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_demo_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="train the demo models briefly on mnist-embedded and evaluate them with `quick`")
    demo.add_argument("--out", required=True, help="output folder (report.md, results.json, one folder per model)")
    demo.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--n", type=int, default=200, help="test images to evaluate (default: 200)")
    demo.add_argument("--epochs", type=int, default=6, help="training epochs per model (default: 6)")
    demo.add_argument("--data-root", default=None, help="folder for the embedded MNIST cache (default: ~/.cache)")
    demo.add_argument("--suite", default="quick", help="attack suite (default: quick)")
    demo.add_argument("--only", action="append", default=None, help="run only this demo entry (repeatable)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")


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


def _transfer_spec(suite: list[Any]) -> Any:
    """A transfer attack that repeats the suite's first bounded iterative white-box attack on the surrogate
    (ART PGD with 40 steps if the suite has none)."""
    from .evaluation import AttackSpec

    for spec in suite:
        if not (spec.one_step or spec.gradient_free or spec.minimisation) and spec.eps is not None and spec.library != "autoattack":
            base = {"library": spec.library, "attack": spec.attack, "params": dict(spec.params)}
            return AttackSpec("transfer", "transfer", spec.norm, spec.eps, {"base": base})
    first = suite[0]
    eps = first.eps if first.eps is not None else 0.3
    return AttackSpec("transfer", "transfer", first.norm, eps, {"base": {"library": "art", "attack": "pgd", "params": {"max_iter": 40}}})


def _command_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .data import load_dataset
    from .evaluation import evaluate, get_suite
    from .utils import resolve_device

    device = resolve_device(args.device)
    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    model, metadata = load_checkpoint(args.checkpoint, device=device)
    dataset = args.dataset or metadata.get("dataset") or "mnist-embedded"
    register_paper_suite(args.suite)
    suite = get_suite(args.suite, norm=args.norm, eps=args.eps)
    surrogate = None
    if args.surrogate:
        surrogate, _ = load_checkpoint(args.surrogate, device=device)
        suite.append(_transfer_spec(suite))
    x_test, y_test = load_dataset(dataset, "test", root=args.data_root)
    x, y = x_test[: args.n], y_test[: args.n]
    defence = metadata.get("defence") or {}
    name = metadata["architecture"]["name"] + (f" + {defence['name']}" if defence.get("name") else "")
    result = evaluate(
        model, x, y, suite, device=device, seed=args.seed, batch_size=args.batch_size, out_dir=args.out,
        surrogate_model=surrogate, eot_samples=args.eot_samples, votes=args.votes, repeats=args.repeats,
        verbose=not args.quiet, model_name=name, dataset=dataset, reported=args.reported,
    )  # fmt: skip
    print(f"clean accuracy {result.clean_accuracy:.4f}, robust accuracy {result.robust_accuracy:.4f} "
          f"({len(y)} images, {args.suite}); {len(result.audit_flags)} audit flag(s); wrote {Path(args.out) / 'results.json'}")  # fmt: skip
    for flag in result.audit_flags:
        print(f"  audit: {flag.code}: {flag.message}")
    return 0


@dataclass(frozen=True)
class DemoContext:
    """What a demo entry's build function gets: the data (``x_train``, ``y_train``, ``x_test``, ``y_test``), the
    device, the seed, the number of epochs, whether to show progress, and a folder for its training state."""

    data: dict[str, Any]
    device: Any
    seed: int
    epochs: int
    verbose: bool
    work_dir: Path


@dataclass(frozen=True)
class DemoEntry:
    """One model of ``amd demo``: ``build(context) -> trained nn.Module`` (defended models carry their
    ``stochastic``/``bpda_surrogate`` attributes) and the checkpoint description ``architecture``/``defence``."""

    name: str
    description: str
    build: Callable[[DemoContext], Any]
    architecture: dict[str, Any]
    defence: dict[str, Any] | None = None


def _demo_baseline(ctx: DemoContext) -> Any:
    import torch

    from .models import build_model
    from .training import train

    torch.manual_seed(ctx.seed)
    model = build_model("cw_mnist")
    train(model, ctx.data["x_train"], ctx.data["y_train"], epochs=ctx.epochs, batch_size=128,
          optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), device=ctx.device,
          checkpoint_dir=ctx.work_dir / "train_state", seed=ctx.seed, verbose=ctx.verbose, desc="baseline cw_mnist")  # fmt: skip
    return model


#: The models ``amd demo`` trains and evaluates, in order. Each defence issue appends its entry.
DEMO_ENTRIES: list[DemoEntry] = [
    DemoEntry("baseline", "undefended cw_mnist (Carlini & Wagner 2017 MNIST net), Adam 1e-3", _demo_baseline,
              {"name": "cw_mnist", "in_channels": 1, "num_classes": 10, "input_size": 28}),  # fmt: skip
]


def _command_demo(args: argparse.Namespace) -> int:
    from .checkpoint import save_checkpoint
    from .data import load_dataset
    from .evaluation import evaluate, get_suite
    from .evaluation.report import combined_markdown
    from .training import evaluate_accuracy
    from .utils import resolve_device, set_seed

    device = resolve_device(args.device)
    if args.n < 1 or args.epochs < 1:
        raise ValueError(f"--n and --epochs must be >= 1, got {args.n} and {args.epochs}")
    suite = get_suite(args.suite)
    entries = DEMO_ENTRIES if not args.only else [e for e in DEMO_ENTRIES if e.name in args.only]
    if not entries:
        raise ValueError(f"--only {args.only} matches no demo entry; entries: {[e.name for e in DEMO_ENTRIES]}")
    started = time.perf_counter()
    x_train, y_train = load_dataset("mnist-embedded", "train", root=args.data_root)
    x_test, y_test = load_dataset("mnist-embedded", "test", root=args.data_root)
    data = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    out = Path(args.out)
    sections, summary = [], []
    for entry in entries:
        folder = out / entry.name
        set_seed(args.seed)
        t0 = time.perf_counter()
        model = entry.build(DemoContext(data, device, args.seed, args.epochs, not args.quiet, folder))
        train_seconds = time.perf_counter() - t0
        accuracy = evaluate_accuracy(model, x_test, y_test, device=device)
        save_checkpoint(model, folder / "model.pt", architecture=entry.architecture, defence=entry.defence,
                        dataset="mnist-embedded", extra={"test_accuracy": accuracy, "epochs": args.epochs,
                                                         "seed": args.seed, "train_seconds": train_seconds})  # fmt: skip
        result = evaluate(model, x_test[: args.n], y_test[: args.n], suite, device=device, seed=args.seed,
                          out_dir=folder, verbose=not args.quiet, model_name=entry.name, dataset="mnist-embedded")  # fmt: skip
        record = result.to_dict()
        sections.append((entry.name, record, f"{entry.name}/curves.png"))
        summary.append({"name": entry.name, "description": entry.description, "results": f"{entry.name}/results.json",
                        "checkpoint": f"{entry.name}/model.pt", "test_accuracy_full": accuracy,
                        "train_seconds": train_seconds, "evaluation_seconds": result.seconds,
                        "clean_accuracy": result.clean_accuracy, "robust_accuracy": result.robust_accuracy,
                        "audit_flags": [f.code for f in result.audit_flags]})  # fmt: skip
        print(f"{entry.name}: test accuracy {accuracy:.4f} (all {len(y_test)}), on {args.n}: clean {result.clean_accuracy:.4f}, "
              f"robust {result.robust_accuracy:.4f}, {len(result.audit_flags)} audit flag(s)")  # fmt: skip
    seconds = time.perf_counter() - started
    preamble = (f"`amd demo --out {args.out} --device {args.device} --seed {args.seed} --n {args.n} --epochs {args.epochs} "
                f"--suite {args.suite}`: "
                f"models trained {args.epochs} epochs on the 4,000 embedded MNIST training images, evaluated with the "
                f"`{args.suite}` suite on the first {args.n} test images; {seconds:.0f} s in all.")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(combined_markdown(sections, title="art-manifold-defenses demo", preamble=preamble))
    (out / "results.json").write_text(json.dumps({"format": "art-manifold-defenses/demo/1", "seconds": seconds,
                                                  "entries": summary}, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out / 'report.md'} in {seconds:.0f}s")
    return 0


COMMANDS: dict[str, Any] = {"train": _command_train, "evaluate": _command_evaluate, "demo": _command_demo, "info": _command_info}


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

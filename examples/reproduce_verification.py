"""Exact verification of paper 003's small verification CNN (``wong_small``) with and without manifold
regularization.

Paper 003 (Jin & Rinard, Table 2) reports verified accuracy from an exact MILP verifier (MIPVerify + Gurobi,
the Xiao et al. 2019 setup: per-neuron LP tightening, 120 s per image) for a small CNN trained with manifold
regularization, beside its PGD and clean accuracy. This script trains ``wong_small`` on MNIST twice -- plainly
(Adam) and with the manifold regularizers of ``art_manifold_defenses.manifold_regularization`` -- measures the
share of provably stable ReLUs in the l-inf ball, and runs ``amd verify`` (MILP with scipy's HiGHS; PGD-20 x
10 restarts and clean accuracy alongside) at eps = 0.1 on the first ``n`` test images. The table goes to
``examples/results/verification.md``.

    python examples/reproduce_verification.py --scale smoke # a few minutes: 10 images, 20 s per image python
    examples/reproduce_verification.py --scale quick # ~30 min: 200 images, 20 s per image python
    examples/reproduce_verification.py --scale full # 200 images, 120 s per image, 100 epochs (hours)

Every scale trains with the paper's ``verification`` preset (appendix B: gamma_I 0.4 -> 4, gamma_H 9000 ->
90000, compressed to the scale's epochs) and eq. 13's squared Hamming distance, with eps = 0.1. An earlier
version of the package used the unsquared distance, under which this ramp killed every ReLU in 5 epochs (8.4%
accuracy), and the short scales then used constant weights (gamma_I 0.4, gamma_H 1000) with Adam;
``--schedule constant`` still runs those (with the unsquared reading they were chosen under).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from art_manifold_defenses import __version__
from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.data import load_dataset
from art_manifold_defenses.estimator import to_art_classifier
from art_manifold_defenses.manifold_regularization import (
    LEGACY_READINGS,
    ManifoldRegularizationTrainer,
    constant_schedule,
    paper_schedule,
    stored_regularizer_params,
)
from art_manifold_defenses.models import build_model
from art_manifold_defenses.reproduce import not_testable, write_summary
from art_manifold_defenses.training import evaluate_accuracy, train
from art_manifold_defenses.utils import set_seed
from art_manifold_defenses.verification import stable_relu_fraction
from art_manifold_defenses.verification.cli import command_verify

SCALES: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "mnist-embedded",
        "epochs": 5,
        "n": 10,
        "time_limit": 20.0,
        "stability_images": 20,
        "schedule": "paper",
    },
    "quick": {
        "dataset": "mnist",
        "train_limit": 20000,
        "epochs": 10,
        "n": 200,
        "time_limit": 20.0,
        "stability_images": 100,
        "schedule": "paper",
    },
    "full": {
        "dataset": "mnist",
        "epochs": 100,
        "n": 200,
        "time_limit": 120.0,
        "stability_images": 200,
        "schedule": "paper",
    },
}
ARCHITECTURE = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
EPS = 0.1


def _train_plain(x: Any, y: Any, epochs: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("wong_small")
    train(
        model,
        x,
        y,
        epochs=epochs,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        seed=seed,
        desc="plain",
    )
    return model.eval()


def _reading(schedule_name: str) -> dict[str, Any]:
    """The reading of eqs. 11 and 13 a schedule trains with: the paper's (squared Hamming distance, intrinsic
    x 1/2) for the paper's schedule; the package's earlier one (unsquared, x1) for the constant weights chosen
    under it."""
    if schedule_name == "paper":
        return {"hamming_form": "squared", "intrinsic_scale": 0.5}
    return dict(LEGACY_READINGS)


def _train_manifold(
    x: Any, y: Any, epochs: int, seed: int, schedule_name: str
) -> tuple[torch.nn.Module, dict[str, Any]]:
    torch.manual_seed(seed)
    model = build_model("wong_small")
    classifier = to_art_classifier(model, input_shape=(1, 28, 28), nb_classes=10)
    if schedule_name == "paper":
        schedule = paper_schedule("verification", epochs=epochs, epsilon=EPS)
        trainer = ManifoldRegularizationTrainer(
            classifier, schedule=schedule, seed=seed, **_reading(schedule_name)
        )
        settings = {"schedule": "paper verification preset, eps 0.1", "optimizer": "SGD (paper schedule)"}
    else:
        schedule = constant_schedule(epsilon=EPS, gamma_intrinsic=0.4, gamma_hamming=1000.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        # these weights were chosen under the package's earlier reading (unsquared Hamming distance, no 1/2 on
        # the intrinsic term); with eq. 13's squared distance gamma_H 1000 would leave the Hamming term
        # without effect
        trainer = ManifoldRegularizationTrainer(
            classifier, schedule=schedule, optimizer=optimizer, seed=seed, **_reading(schedule_name)
        )
        settings = {"schedule": "constant gamma_I 0.4, gamma_H 1000, eps 0.1", "optimizer": "Adam 1e-3"}
    trainer.fit(x, y, nb_epochs=epochs, batch_size=128)
    return model.eval(), {**settings, **_reading(schedule_name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="smoke", choices=sorted(SCALES))
    parser.add_argument(
        "--data-root", default="/work/shared/data", help="folder with MNIST/raw (for quick/full)"
    )
    parser.add_argument("--out", default="runs/verification", help="checkpoints and verification TSVs")
    parser.add_argument("--results", default="examples/results/verification.md")
    parser.add_argument("--n", type=int, default=None, help="override the number of verified test images")
    parser.add_argument("--time-limit", type=float, default=None, help="override the seconds per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--schedule",
        default=None,
        choices=["paper", "constant"],
        help="regularizer weights: the paper's verification preset (default) or the earlier constant "
        "weights (gamma_I 0.4, gamma_H 1000, Adam, unsquared Hamming distance)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = dict(SCALES[args.scale])
    if args.schedule is not None:
        scale["schedule"] = args.schedule
    n = args.n or scale["n"]
    time_limit = args.time_limit or scale["time_limit"]
    set_seed(args.seed)
    root = None if scale["dataset"] == "mnist-embedded" else args.data_root
    x_train, y_train = load_dataset(scale["dataset"], "train", root=root)
    x_test, y_test = load_dataset(scale["dataset"], "test", root=root)
    if scale.get("train_limit"):
        x_train, y_train = x_train[: scale["train_limit"]], y_train[: scale["train_limit"]]
    out = Path(args.out) / args.scale
    rows = []
    run_started = time.time()
    for name in ("plain", "manifold-reg"):
        started = time.perf_counter()
        path = out / name / "model.pt"
        reading = None if name == "plain" else _reading(scale["schedule"])
        trained = _trained_earlier(path, epochs=scale["epochs"], seed=args.seed, reading=reading)
        if (
            trained is not None
        ):  # resume: the verifier's TSV rows belong to this model, so never retrain under them
            model, metadata = trained
            settings = (metadata.get("defence") or {}).get("params") or {"optimizer": "Adam 1e-3"}
            train_seconds = float(metadata["extra"].get("train_seconds", 0.0))
            print(f"{name}: reusing {path}")
        else:
            if name == "plain":
                model, settings = (
                    _train_plain(x_train, y_train, scale["epochs"], args.seed),
                    {"optimizer": "Adam 1e-3"},
                )
            else:
                model, settings = _train_manifold(
                    x_train, y_train, scale["epochs"], args.seed, scale["schedule"]
                )
            train_seconds = time.perf_counter() - started
        accuracy = evaluate_accuracy(model, x_test, y_test)
        if trained is None:
            save_checkpoint(
                model,
                path,
                architecture=ARCHITECTURE,
                defence=None if name == "plain" else {"name": "manifold-reg", "params": settings},
                dataset=scale["dataset"],
                extra={
                    "test_accuracy": accuracy,
                    "epochs": scale["epochs"],
                    "seed": args.seed,
                    "train_seconds": train_seconds,
                },
            )
        stability = stable_relu_fraction(model, x_test[: scale["stability_images"]], EPS, bounds="crown")
        verify_args = argparse.Namespace(
            checkpoint=str(path),
            eps=EPS,
            n=n,
            start=0,
            out=str(out / name / "verify"),
            dataset=scale["dataset"],
            data_root=root,
            time_limit=time_limit,
            bounds="lp",
            neuron_time_limit=5.0,
            attack_steps=20,
            pgd_steps=20,
            pgd_restarts=10,
            device="cpu",
            seed=args.seed,
            quiet=False,
            overwrite=False,
        )
        command_verify(verify_args)
        summary = json.loads((out / name / "verify" / "summary.json").read_text())["summary"]
        rows.append(
            {
                "model": name,
                "settings": settings,
                "test_accuracy": accuracy,
                "train_seconds": train_seconds,
                "stability": stability,
                **summary,
            }
        )

    command = (
        f"python examples/reproduce_verification.py --scale {args.scale}"
        + (f" --n {args.n}" if args.n else "")
        + (f" --time-limit {args.time_limit:g}" if args.time_limit else "")
    )

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    lines = [
        "# Exact verification of `wong_small` (paper 003, Table 2 setting) -- MNIST, l-inf eps = 0.1",
        "",
        f"Scale `{args.scale}`: {scale['dataset']}, {scale['epochs']} epochs, {n} test images verified, "
        f"{time_limit:g} s per image (bounds + MILP), bounds = IBP -> CROWN -> per-neuron LP, MILP with "
        "scipy HiGHS, "
        f"PGD-20 x 10 restarts (step 2.5 eps/20). Seed {args.seed}.",
        "",
        f"Command: `{command}`",
        "",
        (
            f"Versions: art-manifold-defenses {__version__}, torch {torch.__version__}, python "
            f"{platform.python_version()}."
        ),
        "",
        "| model | training | test acc. (all) | clean (n) | PGD-20x10 | verified | falsified | timeouts | s "
        "/ image | "
        "provably stable ReLUs (CROWN) | unstable ReLUs / image (verifier) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unstable = (
            "-" if r["mean_unstable_relus"] is None else f"{r['mean_unstable_relus']:.0f} / {r['relus']}"
        )
        lines.append(
            f"| {r['model']} | {', '.join(f'{v}' for v in r['settings'].values())} | "
            f"{pct(r['test_accuracy'])} | "
            f"{pct(r['clean_accuracy'])} | {pct(r['pgd_accuracy'])} | {pct(r['verified_accuracy'])} | "
            f"{pct(r['falsified'])} | {pct(r['timeouts'])} | {r['seconds_per_image']:.1f} | "
            f"{pct(r['stability']['stable'])} ({r['stability']['images']} images) | {unstable} |"
        )
    lines += [
        "",
        "Paper 003, Table 2 (CIFAR-10, eps 8/255, 120 s per image with Gurobi): verified 21.04%, PGD 25.56%, "
        "clean 36.66% (Xiao et al.: 20.27 / 26.78 / 40.45). It reports no MNIST verification numbers; this "
        "table is "
        "the MNIST eps 0.1 setting of Xiao et al. with a package-trained model, not a reproduction of those "
        "numbers.",
        "",
        "Timeouts count as not verified. Every falsified image carries a counterexample checked by a float32 "
        "forward pass. Verified images broken by PGD (a soundness bug if not 0): "
        + ", ".join(f"{r['model']} {r['verified_but_pgd_broken']}" for r in rows)
        + f". Per-image TSVs and summaries: `{out}/<model>/verify/`.",
        "",
    ]
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text("\n".join(lines))
    print("\n".join(lines))
    write_summary(
        Path(args.results).parent,
        paper="003",
        scale=args.scale,
        seed=args.seed,
        seconds=time.time() - run_started,
        command=command,
        rows=summary_rows(rows),
        details=Path(args.results).name,
        baselines={"manifold-reg": "plain"},
        verdicts=[
            not_testable(
                ("Table 2: verified 21.04%, PGD 25.56%, clean 36.66% (CIFAR-10, 8/255, 120 s per image)"),
                "data: the paper verifies CIFAR-10 only; this run verifies "
                f"{scale['dataset']} "
                f"at l-inf {EPS}, which the paper reports no number for",
            )
        ],
        notes=[
            (f"{n} MNIST test images at l-inf {EPS}, {time_limit:g} s per image (bounds + MILP with HiGHS)."),
            "Paper 003 reports verification on CIFAR-10 only (Table 2: verified 21.04%, PGD "
            "25.56%, clean 36.66% "
            "at 8/255); these MNIST rows have no paper number beside them.",
            "'ours (paper's attack)' is PGD-20 x 10 restarts; 'ours (strongest)' is the smaller "
            "of that and the "
            "exact verifier's upper bound (images not falsified: verified or timed out); the "
            "verified row is the "
            "proven lower bound, so the true robust accuracy lies between the two.",
        ],
    )


def _trained_earlier(
    path: Path, *, epochs: int, seed: int, reading: dict[str, Any] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]] | None:
    """The checkpoint a previous run of the same scale and seed saved at ``path``, or None. ``reading``: the
    ``hamming_form`` / ``intrinsic_scale`` this run trains with; a checkpoint trained with another one is
    refused (its sidecar without those fields means the earlier reading, see
    ``stored_regularizer_params``)."""
    if not path.is_file():
        return None
    model, metadata = load_checkpoint(path)
    if reading is not None:
        stored = stored_regularizer_params((metadata.get("defence") or {}).get("params"))
        stored_reading = {key: stored[key] for key in reading}
        if stored_reading != reading:
            raise SystemExit(
                f"{path} was trained with {stored_reading}, this run uses {reading}: delete {path.parent} "
                "(its verification rows belong to that model) or use another --out"
            )
    extra = metadata.get("extra", {})
    return (model, metadata) if extra.get("epochs") == epochs and extra.get("seed") == seed else None


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``amd reproduce``'s rows: clean, PGD (with the verifier's upper bound as the strongest) and verified
    accuracy, all on the same ``n`` verified test images of each model."""
    out: list[dict[str, Any]] = []
    for r in rows:
        upper = r["verified_accuracy"] + r["timeouts"] + r.get("inconclusive", 0.0)
        out += [
            {
                "model": r["model"],
                "metric": f"clean ({r['n']} images)",
                "paper": None,
                "ours": 100 * r["clean_accuracy"],
                "strongest": None,
                "flags": [],
                "n": r["n"],
            },
            {
                "model": r["model"],
                "metric": f"PGD-20x10 linf {EPS}",
                "paper": None,
                "ours": 100 * r["pgd_accuracy"],
                "strongest": 100 * min(upper, r["pgd_accuracy"]),
                "flags": [],
                "n": r["n"],
            },
            {
                "model": r["model"],
                "metric": f"verified linf {EPS} (timeouts {100 * r['timeouts']:.1f}%)",
                "paper": None,
                "ours": 100 * r["verified_accuracy"],
                "strongest": None,
                "flags": [],
                "n": r["n"],
            },
        ]
    return out


if __name__ == "__main__":
    main()

"""Reproduce paper 001 (radial-basis feature mapping, Taghanaki et al. CVPR 2019), Table 1 and Table 2, on
MNIST.

Trains the CleverHans 3-layer CNN (ORIG) and the mapped network (PROP, both block variants) with the paper's
settings (Adam 1e-3, batch 128), evaluates Table 1's attacks plus AutoAttack at 0.3 and 0.1 with the package's
harness (per-point worst case, gradient-masking audit), computes Table 2's feature scores, and writes
examples/results/radial_mapping.md beside the paper's numbers.

    python examples/reproduce_radial_mapping.py --scale smoke # minutes: 1,000 images, 1 epoch, 100 test
    points python examples/reproduce_radial_mapping.py --scale quick # the paper's training, 200 test points:
    ~2 h on a CPU python examples/reproduce_radial_mapping.py --scale full # full MNIST, 12 epochs, 1,000 test
    points (GPU)
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from art_manifold_defenses.data import load_dataset
from art_manifold_defenses.models import build_model
from art_manifold_defenses.radial_mapping import add_radial_mapping, feature_analysis, train_radial_mapping
from art_manifold_defenses.radial_mapping.suite import paper_suite, register_paper_suite
from art_manifold_defenses.reproduce import row_verdicts, strongest_accuracy, write_summary
from art_manifold_defenses.training import evaluate_accuracy
from art_manifold_defenses.utils import resolve_device, set_seed

SCALES = {
    "smoke": {
        "dataset": "mnist-embedded",
        "train_limit": 1000,
        "epochs": 1,
        "n_eval": 100,
        "n_features": 500,
    },
    "quick": {"dataset": "mnist", "train_limit": None, "epochs": 12, "n_eval": 200, "n_features": 1000},
    "full": {"dataset": "mnist", "train_limit": None, "epochs": 12, "n_eval": 1000, "n_features": 10000},
}
PAPER_TABLE1 = {  # clean, C&W, GN, FGSM, BIM, MIM, PGD, SPSA
    "ORIG": [0.9930, 0.1808, 0.7227, 0.0968, 0.0070, 0.0051, 0.1365, 0.3200],
    "PROP": [0.9942, 0.9879, 0.7506, 0.8582, 0.7887, 0.6425, 0.8157, 0.7092],
}
PAPER_TABLE2 = {
    "ORIG": [0.2612, 1658.20, 0.9695, 0.9696, 0.9721],
    "PROP": [0.4284, 2570.42, 0.9720, 0.9721, 0.9815],
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="examples/results")
    parser.add_argument("--work", default="runs/reproduce_radial_mapping")
    parser.add_argument(
        "--gn-eps", type=float, default=4.0, help="l2 budget of the Gaussian-noise attack (see suite.py)"
    )
    parser.add_argument(
        "--n-eval", type=int, default=None, help="number of test points attacked (default: the scale's)"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        choices=["ORIG", "PROP (paper)", "PROP (authors_code)"],
        help="train and evaluate only these rows (default: all three)",
    )
    parser.add_argument("--no-attacks", action="store_true", help="train and score features only")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="attack nothing: rebuild the report from each model's finished evaluation "
        "(WORK/<model>/eval/results.json; models without one are listed as not evaluated)",
    )
    parser.add_argument("--no-autoattack", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    scale = dict(SCALES[args.scale])
    if args.n_eval is not None:
        scale["n_eval"] = args.n_eval
    run_started = time.time()
    device = resolve_device(args.device)
    set_seed(args.seed)
    verbose = not args.quiet
    x_train, y_train = load_dataset(scale["dataset"], "train", root=args.data_root)
    x_test, y_test = load_dataset(scale["dataset"], "test", root=args.data_root)
    if scale["train_limit"]:
        x_train, y_train = x_train[: scale["train_limit"]], y_train[: scale["train_limit"]]
    work = Path(args.work) / args.scale
    models = {
        "ORIG": lambda: build_model("cleverhans_cnn"),
        "PROP (paper)": lambda: add_radial_mapping(
            build_model("cleverhans_cnn"), variant="paper", seed=args.seed
        ),
        "PROP (authors_code)": lambda: add_radial_mapping(
            build_model("cleverhans_cnn"), variant="authors_code", seed=args.seed
        ),
    }
    if args.models:
        models = {name: make for name, make in models.items() if name in args.models}
    register_paper_suite()
    rows: dict[str, dict] = {}
    for name, make in models.items():
        torch.manual_seed(args.seed)
        model = make()
        slug = name.replace(" ", "_").replace("(", "").replace(")", "")
        started = time.perf_counter()
        train_radial_mapping(
            model,
            x_train,
            y_train,
            epochs=scale["epochs"],
            batch_size=128,
            learning_rate=1e-3,
            device=device,
            checkpoint_dir=work / slug,
            seed=args.seed,
            verbose=verbose,
        )
        row: dict = {
            "train_seconds": time.perf_counter() - started,
            "clean_full_test": evaluate_accuracy(model, x_test, y_test, device=device),
        }
        n_feat = scale["n_features"]
        row["features"] = feature_analysis(
            model, x_test[:n_feat], y_test[:n_feat], device=device, seed=args.seed
        )
        finished = work / slug / "eval" / "results.json"
        if args.report_only and finished.is_file():
            record = json.loads(finished.read_text())
            row["clean_eval"] = record["clean_accuracy"]
            row["attacks"] = {
                a["label"]: float(a["accuracy"]) for a in record["attacks"] if a.get("error") is None
            }
            row["worst_case"] = record["robust_accuracy"]
            row["audit"] = [f["code"] for f in record["audit"]["flags"]]
            row["evaluation_created"] = record.get("created")
            row["evaluation_seconds"] = record.get("seconds")
        elif not args.no_attacks and not args.report_only:
            from art_manifold_defenses.evaluation import evaluate

            suite = paper_suite(gaussian_noise_l2=args.gn_eps, autoattack=not args.no_autoattack)
            n = scale["n_eval"]
            result = evaluate(
                model.eval(),
                x_test[:n],
                y_test[:n],
                suite,
                device=device,
                seed=args.seed,
                out_dir=work / slug / "eval",
                verbose=verbose,
                model_name=name,
                dataset=scale["dataset"],
            )
            row["clean_eval"] = result.clean_accuracy
            row["attacks"] = {a.spec.label: float(a.accuracy) for a in result.attacks}
            row["worst_case"] = result.robust_accuracy
            row["audit"] = [f.code for f in result.audit_flags]
            row["evaluation_seconds"] = result.attack_seconds
        rows[name] = row
        print(json.dumps({name: {k: v for k, v in row.items() if k != "features"}}, default=float))
    write_markdown(Path(args.out) / "radial_mapping.md", rows, args, scale)
    (Path(args.out) / "radial_mapping.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    # a resumed run reads cached models and attacks: report the compute they took, not only this call's wall
    # time
    compute = sum(row["train_seconds"] + float(row.get("evaluation_seconds") or 0.0) for row in rows.values())
    summary = summary_rows(rows, work, clean_n=len(y_test))
    summarised = [name for name in rows if any(r["model"] == name for r in summary)]  # evaluation finished
    baselines = {name: "ORIG" for name in summarised if name != "ORIG"} if "ORIG" in summarised else {}
    write_summary(
        args.out,
        paper="001",
        scale=args.scale,
        seed=args.seed,
        seconds=max(time.time() - run_started, compute),
        command=shlex.join(["python", *sys.argv]),
        rows=summary,
        details="radial_mapping.md",
        baselines=baselines,
        verdicts=row_verdicts(summary, baselines),
        notes=[
            f"{scale['n_eval']} attacked test points, {scale['epochs']} epochs on "
            f"{scale['train_limit'] or 'all'} training images.",
            "'ours (strongest)' is the per-point worst case over every attack of the same norm "
            "with a budget "
            "at most the row's (AutoAttack included); C&W is a minimisation attack, reported on "
            "its own.",
            *(
                [
                    "--report-only: attack results read from the harness records of the same trained "
                    "weights, "
                    f"written when each evaluation finished: {', '.join(reused_evaluations(rows))}."
                ]
                if args.report_only
                else []
            ),
        ],
    )
    return 0


def reused_evaluations(rows: dict[str, dict]) -> list[str]:
    return [
        f"{name} ({row['evaluation_created']}, {row.get('evaluation_seconds') or 0:.0f} s of attacks)"
        for name, row in rows.items()
        if row.get("evaluation_created")
    ]


#: Table 1 columns after "clean": (label in the paper suite, norm, budget; None = a minimisation attack).
TABLE1_ATTACKS = [
    ("C&W l2 x50", "l2", None),
    ("GN l2 4", "l2", 4.0),
    ("FGSM 0.3", "linf", 0.3),
    ("BIM 0.3 x5", "linf", 0.3),
    ("MIM 0.3 x10", "linf", 0.3),
    ("PGD 0.1 x40", "linf", 0.1),
    ("SPSA 0.3", "linf", 0.3),
]


def summary_rows(rows: dict[str, dict], work: Path, *, clean_n: int) -> list[dict]:
    """``amd reproduce``'s rows: Table 1 of the paper beside ours and the per-point worst case in the same
    ball. The clean row is on the ``clean_n`` test images, every attack row on the harness's attacked points
    (the same for every attack of a model)."""
    out: list[dict] = []
    for name, row in rows.items():
        paper = PAPER_TABLE1["ORIG" if name == "ORIG" else "PROP"]
        finished = work / name.replace(" ", "_").replace("(", "").replace(")", "") / "eval" / "results.json"
        if "attacks" not in row or not finished.is_file():
            continue
        record = json.loads(finished.read_text())
        flags = row.get("audit", [])
        out.append(
            {
                "model": name,
                "metric": f"clean ({clean_n:,} test images)",
                "paper": 100 * paper[0],
                "ours": 100 * row["clean_full_test"],
                "strongest": None,
                "flags": [],
                "n": clean_n,
            }
        )
        attacked = len(record["per_point"]["clean_correct"])
        extra = [(label, "linf", eps) for label, eps in (("AutoAttack 0.3", 0.3), ("AutoAttack 0.1", 0.1))]
        for (label, norm, eps), value in zip(TABLE1_ATTACKS + extra, [*paper[1:], None, None], strict=True):
            if label not in row["attacks"]:
                continue
            strongest = strongest_accuracy(
                record, norm=norm, eps=eps, label=None if eps is not None else label
            )
            out.append(
                {
                    "model": name,
                    "metric": label,
                    "paper": None if value is None else 100 * value,
                    "ours": 100 * row["attacks"][label],
                    "strongest": strongest,
                    "flags": flags,
                    "n": attacked,
                }
            )
    return out


def write_markdown(path: Path, rows: dict[str, dict], args: argparse.Namespace, scale: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Paper 001 -- radial-basis feature mapping (Taghanaki et al., CVPR 2019) on MNIST",
        "",
        f"Scale `{args.scale}` ({scale}); seed {args.seed}; command: `{shlex.join(['python', *sys.argv])}`; "
        f"python {platform.python_version()}, torch {torch.__version__}.",
        "",
        "## Table 1 (accuracy; this run beside the paper)",
        "",
    ]
    labels = sorted({label for row in rows.values() for label in row.get("attacks", {})}, key=str)
    header = ["model", "clean (eval points)", "clean (full test)", *labels, "worst case", "audit flags"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name, f"{row.get('clean_eval', float('nan')):.4f}", f"{row['clean_full_test']:.4f}"]
        cells += [f"{row.get('attacks', {}).get(label, float('nan')):.4f}" for label in labels]
        cells += [f"{row.get('worst_case', float('nan')):.4f}", ", ".join(row.get("audit", [])) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    reused = [
        f"{name} (evaluated {row['evaluation_created']})"
        for name, row in rows.items()
        if row.get("evaluation_created")
    ]
    if reused:
        lines += [
            "",
            "`--report-only`: attack results read from "
            f"`{args.work}/{args.scale}/<model>/eval/results.json`, "
            "written by the harness when each model's evaluation finished: " + "; ".join(reused) + ".",
        ]
    missing = [name for name, row in rows.items() if "attacks" not in row]
    if missing:
        lines += [
            "",
            f"Not attacked in this run (trained and scored for Table 2 only): {', '.join(missing)}.",
        ]
    lines += ["", "Paper Table 1 (clean, C&W, GN, FGSM, BIM, MIM, PGD, SPSA):", ""]
    for name, values in PAPER_TABLE1.items():
        lines.append(f"- {name}: " + ", ".join(f"{v:.4f}" for v in values))
    lines += [
        "",
        (
            "Independent AutoAttack evaluation of this defence (Croce & Hein 2020): 0.00% at l_inf 0.3 "
            "on MNIST."
        ),
        "",
        "## Table 2 (penultimate-feature cluster scores)",
        "",
        "| model | silhouette | Calinski-Harabasz | MI | homogeneity | completeness |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        f = row["features"]
        lines.append(
            f"| {name} | {f['silhouette']:.4f} | {f['calinski_harabasz']:.1f} | "
            f"{f['mutual_information']:.4f} | "
            f"{f['homogeneity']:.4f} | {f['completeness']:.4f} |"
        )
    for name, values in PAPER_TABLE2.items():
        lines.append(
            f"| paper {name} | {values[0]:.4f} | {values[1]:.1f} | {values[2]:.4f} | {values[3]:.4f} | "
            f"{values[4]:.4f} |"
        )
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

"""The evaluation harness's own sanity check on an undefended model (issue 3, "Must show").

An undefended ``cw_mnist`` trained on full MNIST (>= 99% clean) must fall to PGD l-inf 0.3 in every library:
accuracy <= 2% in each of ART, Foolbox and CleverHans, within 3 points of each other; AutoAttack standard <=
every single attack; and the robust accuracy in results.json must equal the per-point worst case recomputed
from the per-attack records.

    python examples/check_undefended_mnist.py --checkpoint runs/cw_mnist_full/model.pt --data-root
    ../shared/data --n 1000

(train the checkpoint first with ``amd train --dataset mnist --data-root ../shared/data --model cw_mnist
--epochs 3 --out runs/cw_mnist_full``). Writes ``--out`` (default ``examples/results/undefended_cw_mnist``)
and exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from art_manifold_defenses.checkpoint import load_checkpoint
from art_manifold_defenses.data import load_dataset
from art_manifold_defenses.evaluation import AttackSpec, evaluate
from art_manifold_defenses.evaluation.report import write_report

EPS = 0.3
SUITE = [
    AttackSpec("art", "fgsm", "linf", EPS),
    AttackSpec("art", "pgd", "linf", EPS, {"max_iter": 40}),
    AttackSpec("foolbox", "pgd", "linf", EPS, {"steps": 40}),
    AttackSpec("cleverhans", "pgd", "linf", EPS, {"nb_iter": 40}),
    AttackSpec("autoattack", "standard", "linf", EPS),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/cw_mnist_full/model.pt")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="examples/results/undefended_cw_mnist")
    args = parser.parse_args()

    model, meta = load_checkpoint(args.checkpoint, device=args.device)
    x, y = load_dataset("mnist", "test", root=args.data_root)
    result = evaluate(
        model,
        x[: args.n],
        y[: args.n],
        SUITE,
        device=args.device,
        seed=args.seed,
        out_dir=args.out,
        model_name="cw_mnist (undefended, full MNIST)",
        dataset="mnist",
    )
    write_report(result, args.out)
    record = json.loads((Path(args.out) / "results.json").read_text())

    acc = {a["library"] + "/" + a["attack"]: a["accuracy"] for a in record["attacks"]}
    pgd = {lib: acc[f"{lib}/pgd"] for lib in ("art", "foolbox", "cleverhans")}
    worst = result.robust_correct.mean()
    checks = {
        "clean accuracy >= 99%": record["clean_accuracy"] >= 0.99,
        "PGD <= 2% in each library": all(v <= 0.02 for v in pgd.values()),
        "PGD within 3 points across libraries": max(pgd.values()) - min(pgd.values()) <= 0.03,
        "AutoAttack <= every single attack": all(
            acc["autoattack/standard"] <= v + 1e-12 for v in acc.values()
        ),
        "robust accuracy == per-point worst case": bool(np.isclose(record["robust_accuracy"], worst)),
    }
    print(
        f"checkpoint {args.checkpoint} (trained test accuracy {meta['extra'].get('test_accuracy')}), "
        f"n={args.n}"
    )
    print(f"clean {record['clean_accuracy']:.4f}, robust {record['robust_accuracy']:.4f}")
    for name, value in acc.items():
        seconds = next(a["seconds"] for a in record["attacks"] if a["library"] + "/" + a["attack"] == name)
        print(f"  {name:24s} accuracy {value:.4f}  ({seconds:.0f} s)")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

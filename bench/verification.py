"""Benchmark of the exact verifier: seconds per image vs unstable ReLUs, IBP-only vs LP-tightened bounds.

One process, one network (an MLP 784-100-100-10 trained briefly on embedded MNIST, the classic small
verification benchmark net), several l-inf radii to vary the number of unstable ReLUs. For every image the
MILP is run twice: with interval bounds only (IBP) and with IBP -> CROWN -> per-neuron LP tightening. Printed:
per radius the mean unstable ReLUs (= binaries) under each, mean seconds, the time ratio LP/IBP, and how many
images each decided; then every run sorted by its number of unstable ReLUs (seconds vs instability).

Usage: OMP_NUM_THREADS=1 python bench/verification.py [--images 4] [--eps 0.01 0.02 0.03 0.05] [--time-limit
20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from art_manifold_defenses.data import load_dataset
from art_manifold_defenses.training import evaluate_accuracy, train
from art_manifold_defenses.verification import verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02, 0.03, 0.05])
    parser.add_argument("--time-limit", type=float, default=20.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    x_train, y_train = load_dataset("mnist-embedded", "train")
    x_test, y_test = load_dataset("mnist-embedded", "test")
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
    )
    train(model, x_train, y_train, epochs=args.epochs, verbose=False, seed=args.seed)
    model.eval()
    print(
        f"MLP 784-100-100-10 (200 ReLUs), {args.epochs} epochs on embedded MNIST, clean accuracy "
        f"{evaluate_accuracy(model, x_test, y_test):.4f}; time limit {args.time_limit} s; PGD pre-attack "
        "off"
    )
    correct = np.flatnonzero(model(torch.as_tensor(x_test[:200])).argmax(1).numpy() == y_test[:200])[
        : args.images
    ]
    x, y = x_test[correct], y_test[correct]
    runs = []
    print(
        f"\n{'eps':>6} | {'unstable IBP':>12} {'unstable LP':>11} | {'s/img IBP':>9} {'s/img LP':>9} "
        f"{'LP/IBP':>7} | "
        f"{'verdicts IBP (v/f/t)':>20} {'verdicts LP (v/f/t)':>20}"
    )
    for eps in args.eps:
        stats = {}
        statuses: dict[str, list[str]] = {}
        for method in ("ibp", "lp"):
            started = time.perf_counter()
            result = verify(
                model,
                x,
                y,
                eps,
                bounds=method,
                attack_steps=0,
                time_limit=args.time_limit,
                verbose=False,
                seed=args.seed,
            )
            wall = time.perf_counter() - started
            counts = [sum(r.status == s for r in result.images) for s in ("verified", "falsified", "timeout")]
            stats[method] = (np.mean([r.unstable for r in result.images]), wall / len(x), counts)
            runs += [
                (r.unstable, r.seconds, method, eps, r.status, r.bounds_seconds, r.milp_seconds)
                for r in result.images
            ]
            statuses[method] = [r.status for r in result.images]
        (u_i, s_i, c_i), (u_l, s_l, c_l) = stats["ibp"], stats["lp"]
        print(
            f"{eps:>6} | {u_i:>12.1f} {u_l:>11.1f} | {s_i:>9.2f} {s_l:>9.2f} {s_l / s_i:>7.2f} | "
            f"{'/'.join(map(str, c_i)):>20} {'/'.join(map(str, c_l)):>20}"
        )
        decided = [
            (a, b) for a, b in zip(statuses["ibp"], statuses["lp"], strict=True) if "timeout" not in (a, b)
        ]
        assert all(a == b for a, b in decided), "IBP and LP runs disagree on a decided image"
    eps = args.eps[len(args.eps) // 2]
    print(
        f"\nHiGHS options at eps {eps}, IBP bounds (the largest MILPs): package defaults vs scipy's defaults"
    )
    timings = {}
    for name, options in (
        ("package", None),
        ("scipy-default", {"presolve": True, "mip_heuristic_run_rins": True, "mip_heuristic_run_rens": True}),
    ):
        started = time.perf_counter()
        result = verify(
            model,
            x,
            y,
            eps,
            bounds="ibp",
            attack_steps=0,
            time_limit=args.time_limit,
            verbose=False,
            solver_options=options,
        )
        timings[name] = (time.perf_counter() - started) / len(x)
        print(f"  {name:>13}: {timings[name]:.2f} s/image, verdicts {[r.status for r in result.images]}")
    print(f"  ratio scipy-default / package: {timings['scipy-default'] / timings['package']:.2f}")
    print("\nseconds per image vs unstable ReLUs (every run, sorted):")
    print(f"{'unstable':>8} {'seconds':>8} {'bounds s':>8} {'milp s':>8} {'bounds':>6} {'eps':>6} status")
    for unstable, seconds, method, eps, status, b_s, m_s in sorted(runs):
        print(f"{unstable:>8} {seconds:>8.2f} {b_s:>8.2f} {m_s:>8.2f} {method:>6} {eps:>6} {status}")
    arr = np.array([(u, s) for u, s, *_ in runs if u > 0], dtype=float)
    if len(arr) > 2:
        slope = np.polyfit(arr[:, 0], np.log(arr[:, 1]), 1)[0]
        print(
            f"\nlog-linear fit: seconds grow x{np.exp(10 * slope):.2f} per 10 more unstable ReLUs (all "
            "runs, timeouts capped)"
        )


if __name__ == "__main__":
    main()

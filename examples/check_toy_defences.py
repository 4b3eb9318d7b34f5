"""Can the harness be fooled? Two toy defences with known weaknesses (issue 3, "Must show").

1. A *masked* defence: 4-level quantisation before the classifier (zero input gradient everywhere). Plain PGD
   cannot move it and the gradient-masking audit must flag it; declaring the identity as its
   ``bpda_surrogate`` (BPDA, Athalye et al. 2018) must drive PGD accuracy below 10%.
2. A *stochastic* defence: Gaussian input noise. Evaluated without declaring it stochastic, the audit must
   flag the changing predictions; declared stochastic, PGD through EoT (16 samples) must beat the same PGD
   with a single sample (``eot_samples=1``), both scored by the same majority vote.

    python examples/check_toy_defences.py [--checkpoint runs/cw_mnist_embedded/model.pt] [--n 100]

Without a checkpoint a ``cw_mnist`` is trained for 3 epochs on the embedded MNIST sample. Exits non-zero if a
check fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from art_manifold_defenses import build_model, load_checkpoint, load_dataset, train
from art_manifold_defenses.evaluation import AttackSpec, evaluate


class Quantised(nn.Module):
    """Masked toy defence: ``round(3x) / 3`` before the network (zero gradient almost everywhere)."""

    def __init__(self, net: nn.Module, *, surrogate: bool) -> None:
        super().__init__()
        self.net = net
        if surrogate:
            self.bpda_surrogate = (
                net  # the defence's deterministic, differentiable stand-in: identity preprocessing
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(torch.round(x * 3) / 3)


class Noisy(nn.Module):
    """Stochastic toy defence: Gaussian noise of std ``sigma`` on the input, clipped to [0, 1]."""

    def __init__(self, net: nn.Module, *, sigma: float, declared: bool) -> None:
        super().__init__()
        self.net, self.sigma, self.stochastic = net, sigma, declared

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x + self.sigma * torch.randn_like(x)).clamp(0, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/cw_mnist_embedded/model.pt")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--eps-stochastic", type=float, default=0.15)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_test, y_test = load_dataset("mnist-embedded", "test")
    x, y = x_test[: args.n], y_test[: args.n]
    if Path(args.checkpoint).is_file():
        base, _ = load_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(args.seed)
        base = build_model("cw_mnist")
        train(base, *load_dataset("mnist-embedded", "train"), epochs=3, verbose=False, seed=args.seed)
    base.eval()

    pgd = AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": 40})
    fgsm = AttackSpec("art", "fgsm", "linf", 0.3)
    pgd_small = AttackSpec("art", "pgd", "linf", args.eps_stochastic, {"max_iter": 40})
    runs = {
        "quantised": (Quantised(base, surrogate=False), [pgd, fgsm], {}),
        "quantised + BPDA": (Quantised(base, surrogate=True), [pgd, fgsm], {}),
        "noisy, undeclared": (Noisy(base, sigma=args.sigma, declared=False), [pgd_small], {}),
        "noisy, plain PGD (1 sample)": (
            Noisy(base, sigma=args.sigma, declared=True),
            [pgd_small],
            {"eot_samples": 1, "repeats": 1},
        ),
        "noisy, EoT PGD (16 samples)": (
            Noisy(base, sigma=args.sigma, declared=True),
            [pgd_small],
            {"eot_samples": 16, "repeats": 1},
        ),
    }
    results = {}
    for name, (model, suite, options) in runs.items():
        started = time.perf_counter()
        result = evaluate(model, x, y, suite, seed=args.seed, verbose=False, **options)
        results[name] = result
        flags = [flag.code for flag in result.audit_flags]
        print(
            f"{name:30s} clean {result.clean_accuracy:.2f}  robust {result.robust_accuracy:.2f}  "
            f"per attack {result.accuracy_per_attack}  flags {flags}  ({time.perf_counter() - started:.0f} s)"
        )

    def flagged(name: str, code: str) -> bool:
        return any(flag.code == code for flag in results[name].audit_flags)

    checks = {
        "masked defence flagged (zero gradients)": flagged("quantised", "zero_gradients"),
        "BPDA PGD drives the masked defence below 10%": results["quantised + BPDA"].robust_accuracy < 0.10,
        "stochastic defence without EoT flagged": flagged(
            "noisy, undeclared", "nondeterministic_predictions"
        ),
        "EoT PGD beats single-sample PGD": results["noisy, EoT PGD (16 samples)"].robust_accuracy
        < results["noisy, plain PGD (1 sample)"].robust_accuracy,
    }
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

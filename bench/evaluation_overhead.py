"""Harness overhead: the same PGD (linf, eps 0.3) run through ``evaluate`` and directly through ART, Foolbox
and CleverHans on the same model and images, in one process. Prints harness/direct time ratios (target <=
1.10).

The direct baselines do what a user would: build the library's model wrapper, run PGD with the same settings
as the harness adapters (random start, step ``2.5 * eps / steps``) and compute the accuracy on the
adversarials. The harness run adds input validation, clean scoring, threat-model checks, per-point bookkeeping
and (unless ``--no-audit``) the gradient-masking audit (one backward and two forwards on the clean points).
Only correctly classified images are used, so both sides attack the same points. Each measurement is repeated
``--repeats`` times, interleaved, and the median is reported (the machines are shared and noisy).

Usage::

    OMP_NUM_THREADS=1 python bench/evaluation_overhead.py [--n 128] [--steps 20] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def _train_model(device: torch.device, seed: int) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    from art_manifold_defenses import build_model, load_dataset, train

    x_train, y_train = load_dataset("mnist-embedded", "train")
    x_test, y_test = load_dataset("mnist-embedded", "test")
    torch.manual_seed(seed)
    model = build_model("cw_mnist")
    train(model, x_train, y_train, epochs=1, batch_size=128, device=device, verbose=False, seed=seed)
    return model.eval(), x_test, y_test


def _direct_art(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float, steps: int, device: torch.device
) -> float:
    from art.attacks.evasion import ProjectedGradientDescent

    from art_manifold_defenses.estimator import to_art_classifier

    clf = to_art_classifier(model, input_shape=x.shape[1:], nb_classes=10, device=device)
    attack = ProjectedGradientDescent(
        clf,
        norm=np.inf,
        eps=eps,
        eps_step=2.5 * eps / steps,
        max_iter=steps,
        num_random_init=1,
        batch_size=128,
        verbose=False,
    )
    adv = attack.generate(x=x, y=np.eye(10, dtype=np.float32)[y])
    return float((clf.predict(adv, batch_size=128).argmax(1) == y).mean())


def _direct_foolbox(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float, steps: int, device: torch.device
) -> float:
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=device)
    attack = fb.attacks.LinfPGD(steps=steps, rel_stepsize=2.5 / steps, random_start=True)
    correct = 0
    for start in range(0, len(x), 128):
        xb = torch.from_numpy(x[start : start + 128]).to(device)
        yb = torch.from_numpy(y[start : start + 128]).to(device)
        _, _, success = attack(fmodel, xb, yb, epsilons=eps)
        correct += int((~success).sum())
    return correct / len(x)


def _direct_cleverhans(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float, steps: int, device: torch.device
) -> float:
    from cleverhans.torch.attacks.projected_gradient_descent import projected_gradient_descent

    correct = 0
    for start in range(0, len(x), 128):
        xb = torch.from_numpy(x[start : start + 128]).to(device)
        yb = torch.from_numpy(y[start : start + 128]).to(device)
        adv = projected_gradient_descent(
            model,
            xb,
            eps,
            min(2.5 * eps / steps, eps),
            steps,
            np.inf,
            clip_min=0.0,
            clip_max=1.0,
            y=yb,
            rand_init=True,
            rand_minmax=eps,
            sanity_checks=False,
        )
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == yb).sum())
    return correct / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-audit", action="store_true", help=("run the harness without the gradient-masking audit")
    )
    args = parser.parse_args()

    from art_manifold_defenses.evaluation import AttackSpec, evaluate
    from art_manifold_defenses.training import predict_logits
    from art_manifold_defenses.utils import resolve_device

    device = resolve_device(args.device)
    model, x_test, y_test = _train_model(device, args.seed)
    pred = predict_logits(model, x_test, device=device).argmax(1)
    keep = np.flatnonzero(pred == y_test)[: args.n]
    x, y = x_test[keep], y_test[keep]
    print(
        f"cw_mnist (1 epoch), {len(x)} correctly classified test images, PGD linf eps={args.eps} "
        f"steps={args.steps}, "
        f"device={device}, threads={torch.get_num_threads()}, audit={'off' if args.no_audit else 'on'}"
    )

    params = {
        "art": {"max_iter": args.steps},
        "foolbox": {"steps": args.steps},
        "cleverhans": {"nb_iter": args.steps},
    }
    direct: dict[str, Callable[..., float]] = {
        "art": _direct_art,
        "foolbox": _direct_foolbox,
        "cleverhans": _direct_cleverhans,
    }

    def harness(library: str) -> float:
        spec = AttackSpec(library, "pgd", "linf", args.eps, params[library])
        result = evaluate(
            model, x, y, [spec], device=device, seed=args.seed, verbose=False, run_audit=not args.no_audit
        )
        return result.robust_accuracy

    times: dict[tuple[str, str], list[float]] = {}
    accuracy: dict[tuple[str, str], float] = {}
    for library in direct:  # warm-up (imports, first-call allocations), not timed
        harness(library)
        torch.manual_seed(args.seed)
        direct[library](model, x[:8], y[:8], args.eps, args.steps, device)
    for _ in range(args.repeats):
        for library in direct:
            for kind in ("harness", "direct"):
                torch.manual_seed(args.seed)
                np.random.seed(args.seed)
                start = time.perf_counter()
                acc = (
                    harness(library)
                    if kind == "harness"
                    else direct[library](model, x, y, args.eps, args.steps, device)
                )
                times.setdefault((library, kind), []).append(time.perf_counter() - start)
                accuracy[(library, kind)] = acc
    print(
        f"{'library':<11} {'harness s':>10} {'direct s':>10} {'ratio':>7} {'acc harness':>12} "
        f"{'acc direct':>11}"
    )
    for library in direct:
        h, d = statistics.median(times[(library, "harness")]), statistics.median(times[(library, "direct")])
        print(
            f"{library:<11} {h:>10.2f} {d:>10.2f} {h / d:>7.3f} {accuracy[(library, 'harness')]:>12.3f} "
            f"{accuracy[(library, 'direct')]:>11.3f}"
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

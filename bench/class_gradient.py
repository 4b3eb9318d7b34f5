"""Benchmark: ``class_gradient(x, label=per-sample labels)`` of ART's ``PyTorchClassifier`` vs the harness's
``PerSampleClassGradientClassifier`` (one backward pass instead of one per distinct label), and the wall time
of ART's EAD on each. Same model, same batch, interleaved rounds; prints ratios measured in this process.

    OMP_NUM_THREADS=1 python bench/class_gradient.py [--model cw_mnist] [--batch 64] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from art.attacks.evasion import ElasticNet

from art_manifold_defenses.estimator import to_art_classifier
from art_manifold_defenses.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cw_mnist")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    labels = np.arange(args.batch) % 10
    clfs = {
        "art": to_art_classifier(model, input_shape=(1, 28, 28), nb_classes=10),
        "one_backward": to_art_classifier(
            model, input_shape=(1, 28, 28), nb_classes=10, per_sample_class_gradient=True
        ),
    }
    for clf in clfs.values():  # warm-up
        clf.class_gradient(x, label=labels)
    times: dict[str, list[float]] = {k: [] for k in clfs}
    for _ in range(args.repeats):
        for name, clf in clfs.items():
            started = time.perf_counter()
            clf.class_gradient(x, label=labels)
            times[name].append(time.perf_counter() - started)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"class_gradient, {args.model}, batch {args.batch}, {len(set(labels))} distinct labels, "
        f"{args.repeats} rounds:"
    )
    for name, t in median.items():
        print(f"  {name:13s} median {1000 * t:8.2f} ms")
    print(f"ART / one backward: {median['art'] / median['one_backward']:.2f}x")
    ead = {}
    onehot = np.eye(10, dtype=np.float32)[labels]
    for name, clf in clfs.items():
        attack = ElasticNet(clf, max_iter=10, binary_search_steps=1, batch_size=args.batch, verbose=False)
        started = time.perf_counter()
        adv = attack.generate(x, y=onehot)
        ead[name] = (time.perf_counter() - started, adv)
    same = np.allclose(ead["art"][1], ead["one_backward"][1], atol=1e-5)
    print(
        f"EAD (10 iterations, 1 search step): ART {ead['art'][0]:.2f} s, one backward "
        f"{ead['one_backward'][0]:.2f} s, "
        f"ratio {ead['art'][0] / ead['one_backward'][0]:.2f}x; same adversarial examples: {same}"
    )


if __name__ == "__main__":
    main()

"""Benchmark of the RBF-CNN reconstruction (issue 5). Prints ratios against baselines measured in the same
process.

1. reconstruction of a batch of MNIST test images (24 filters) vs the ``cw_mnist`` forward on the same batch
   (target: <= 0.5x);
2. the vectorised reconstruction vs a naive per-patch Python implementation (per image);
3. optionally (``--em``) the non-parametric EM on full MNIST: wall time vs the 5-minute target, and the filter
   count.

Run single-threaded: ``OMP_NUM_THREADS=1 python bench/rbf_reconstruction.py [--em] [--filters PATH]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from art_manifold_defenses.data import load_dataset
from art_manifold_defenses.models import build_model
from art_manifold_defenses.rbf_reconstruction import (
    RBFFilterBank,
    RBFReconstruction,
    compute_weights,
    fit_rbf_filters,
)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` wall times (the least disturbed by other processes on a shared machine)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def naive_reconstruction(
    x: torch.Tensor, bank: RBFFilterBank, beta1: float, beta2: float, gen: torch.Generator
) -> torch.Tensor:
    """Per-patch loops (the direct reading of the paper): score, weights, noisy samples, weighted sum,
    averaging."""
    k = bank.patch_size
    n, c, h, w = x.shape
    out = torch.zeros_like(x)
    count = torch.zeros(h, w)
    std = (beta2 * bank.variances)[:, None]
    for i in range(n):
        samples = bank.means + std * torch.randn(bank.means.shape, generator=gen)
        for r in range(h - k + 1):
            for s in range(w - k + 1):
                z = x[i, :, r : r + k, s : s + k].reshape(-1)
                d2 = ((z[None] - bank.means) ** 2).sum(1)
                score = -d2 / (2 * bank.variances) - 0.5 * torch.log(bank.variances)
                weights = torch.softmax(beta1 * np.log(2.0) * torch.sigmoid(score), 0)
                out[i, :, r : r + k, s : s + k] += (weights[:, None] * samples).sum(0).view(c, k, k)
                if i == 0:
                    count[r : r + k, s : s + k] += 1
    return (out / count).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default="/work/shared/data", help="folder with MNIST/raw (full MNIST)")
    parser.add_argument(
        "--filters",
        default=None,
        help="filter bank .npz (default: 24 filters from --em, or from data patches)",
    )
    parser.add_argument("--em", action="store_true", help="also time the EM on full MNIST (minutes)")
    parser.add_argument("--save-filters", default=None, help="write the bank learned with --em to this .npz")
    parser.add_argument("--batch", type=int, default=128, help="images per timed batch (default 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats, best kept (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    print(f"threads: torch={torch.get_num_threads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    try:
        x_train, _ = load_dataset("mnist", "train", root=args.data_root)
        x_test, _ = load_dataset("mnist", "test", root=args.data_root)
        source = "full MNIST"
    except (FileNotFoundError, ValueError):
        x_train, _ = load_dataset("mnist-embedded", "train")
        x_test, _ = load_dataset("mnist-embedded", "test")
        source = "embedded MNIST (full MNIST not found; EM timing is not comparable)"
    print(f"data: {source}, {len(x_train)} train images")

    bank: RBFFilterBank
    if args.em:
        start = time.perf_counter()
        bank = fit_rbf_filters(x_train, seed=args.seed, verbose=False)
        em_seconds = time.perf_counter() - start
        print(
            f"[EM] full schedule (500 M-steps x 750 images) on {len(x_train)} images: {em_seconds:.1f} s, "
            f"{bank.num_filters} filters (paper: 24); ratio to the 300 s target: {em_seconds / 300:.2f}x"
        )
        if args.save_filters:
            bank.save(args.save_filters)
    elif args.filters:
        bank = RBFFilterBank.load(args.filters)
    else:  # 24 filters from random training patches (timing depends only on the count)
        gen = torch.Generator().manual_seed(args.seed)
        patches = (
            torch.nn.functional.unfold(torch.from_numpy(x_train[:200]), 3).transpose(1, 2).reshape(-1, 9)
        )
        means = patches[torch.randperm(len(patches), generator=gen)[:24]]
        bank = RBFFilterBank(means, torch.rand(24, generator=gen) * 0.5 + 1e-3)
    print(f"bank: {bank}")

    batch = torch.from_numpy(x_test[: args.batch])
    cnn = build_model("cw_mnist").eval()
    noisy = RBFReconstruction(bank, beta2=1.75, seed=args.seed).eval()
    clean = RBFReconstruction(bank, beta2=0.0).eval()
    with torch.no_grad():
        t_cnn = best_time(lambda: cnn(batch), args.repeats)
        t_noisy = best_time(lambda: noisy(batch), args.repeats)
        t_clean = best_time(lambda: clean(batch), args.repeats)
    print(
        f"[1] batch of {len(batch)}: cw_mnist forward {t_cnn * 1e3:.1f} ms; reconstruction beta2=1.75 "
        f"{t_noisy * 1e3:.1f} ms "
        f"-> ratio {t_noisy / t_cnn:.3f}x (target <= 0.5x); beta2=0 {t_clean * 1e3:.1f} ms -> "
        f"{t_clean / t_cnn:.3f}x"
    )

    xv = batch[:8].clone().requires_grad_(True)
    t_cnn_grad = best_time(lambda: torch.autograd.grad(cnn(xv).sum(), xv), args.repeats)
    t_rec_grad = best_time(lambda: torch.autograd.grad(cnn(noisy(xv)).sum(), xv), args.repeats)
    print(
        f"    forward+backward on 8 images: cw_mnist {t_cnn_grad * 1e3:.1f} ms, reconstruction+cw_mnist "
        f"{t_rec_grad * 1e3:.1f} ms "
        f"-> overhead ratio {(t_rec_grad - t_cnn_grad) / t_cnn_grad:.3f}x"
    )

    few = batch[:2]
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        t_naive = best_time(lambda: naive_reconstruction(few, bank, 25.0, 1.75, gen), 1) / len(few)
        t_vec = best_time(lambda: noisy(few), args.repeats) / len(few)
        t_vec_batch = t_noisy / len(batch)
        scores = bank(few)
        weights = compute_weights(scores, 25.0)
    print(
        f"[2] per image: naive per-patch {t_naive * 1e3:.1f} ms, vectorised (batch of 2) {t_vec * 1e3:.2f} "
        "ms -> speed-up "
        f"{t_naive / t_vec:.0f}x; vectorised in a batch of {len(batch)}: {t_vec_batch * 1e3:.3f} ms -> "
        f"{t_naive / t_vec_batch:.0f}x"
    )
    assert torch.isfinite(weights).all()


if __name__ == "__main__":
    main()

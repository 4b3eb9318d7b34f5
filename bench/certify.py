"""Benchmark: seconds per image and peak extra memory of ``RenyiSmoothingPyTorch.certify`` against ART's
``PyTorchRandomizedSmoothing.certify`` and against two limits, on the same model (the same module, unwrapped),
images, n and batch size:

- ``forward``: the bare forward passes (and argmax) of the ``images * (n0 + n)`` noisy samples, in batches of
  ``--batch-size``, on one noisy batch drawn once beforehand: noise generation is NOT included;
- ``fwd+noise``: the same forward passes, each on a batch freshly filled with ``normal_(0, sigma)`` plus the
  clean image (one generator on the model's device): the limit of any certifier that draws every sample fresh.

On one CPU thread drawing 784 Gaussian values costs about as much as the forward of a tiny CNN, so the two
limits differ a lot for ``small_cnn`` and hardly for ``tramer_a``; ratios to both are printed, and ``noise``
(the noise drawing alone) shows the difference. ``counts`` is ``certify_counts`` (the sampling alone),
``ours`` the whole ``certify(..., bound="all")``: the bounds add a fixed cost per call (scipy), amortised over
``--images``.

Timings are measured in this process, interleaved over ``--repeats`` rounds (best of), and printed as ratios
to the limits (absolute times on shared machines are noise). On CPU the clock is this process's CPU time by
default (``--clock cpu``): on a machine shared with other jobs, wall time mostly measures the other jobs (with
one thread the two agree on an idle machine); on CUDA it is wall time after a synchronisation. Peak extra
memory is measured in a fresh subprocess per method (on CPU, the resident set size polled every millisecond by
a thread, above its level after loading and one warm-up batch; on CUDA, ``max_memory_allocated`` above the
same level).

    OMP_NUM_THREADS=1 python bench/certify.py --models tramer_a,small_cnn --n 1000 --images 2

Sequential modes (``--checkpoint``): on a trained smoothed checkpoint and real test images, one run compares
the three modes of ``RenyiSmoothingPyTorch.certify`` with the Cohen bound: fixed ``n`` (CERTIFY, ``n0 + n``
forward passes per image), the decision mode at each of ``--radii`` (``radius=r``, cap ``n``) and the adaptive
mode (``samples="adaptive"``). It prints, per radius, the certified accuracy of fixed ``n`` and of the
decision mode (same noise seed: the decision mode's samples are a prefix of the fixed run's; plus
``--extra-seeds`` with independent noise), the mean forward passes and seconds per image of each, and for the
adaptive mode the speed-up and the radius lost relative to fixed ``n``; ``--json`` writes the numbers.

    OMP_NUM_THREADS=1 python bench/certify.py --checkpoint runs/stn/model.pt --dataset mnist \
        --data-root ../shared/data --images 200 --n 100000 --radii 0.25,0.5,1.0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from art_manifold_defenses.models import build_model
from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch
from art_manifold_defenses.utils import resolve_device

N0 = 100


def make_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "small_cnn":
        return nn.Sequential(
            nn.Conv2d(1, 8, 5, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 12 * 12, 32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )
    return build_model(name, in_channels=1, num_classes=10, input_size=28)


def images(count: int) -> np.ndarray:
    return np.random.default_rng(0).random((count, 1, 28, 28), dtype=np.float32)


def art_estimator(model: nn.Module, device: torch.device, sigma: float) -> Any:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing
    from scipy.stats import beta

    est = PyTorchRandomizedSmoothing(
        model,
        nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu" if device.type == "cpu" else "gpu",
        sample_size=N0,
        scale=sigma,
        alpha=0.001,
    )
    try:
        import statsmodels  # noqa: F401
    except ImportError:  # art_api.md section 4: the identical scipy bound
        est._lower_confidence_bound = lambda k, n: 0.0 if k == 0 else float(beta.ppf(est.alpha, k, n - k + 1))
    return est


def ours(model: nn.Module, device: torch.device, sigma: float) -> RenyiSmoothingPyTorch:
    return RenyiSmoothingPyTorch(
        model,
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        clip_values=(0.0, 1.0),
        device_type="cpu" if device.type == "cpu" else "gpu",
        scale=sigma,
        alpha=0.001,
        seed=0,
    )


def run_method(
    method: str, model: nn.Module, x: np.ndarray, n: int, batch_size: int, device: torch.device, sigma: float
) -> None:
    total = len(x) * (N0 + n)
    if method == "forward":
        batch = torch.randn((batch_size, 1, 28, 28), device=device) * sigma + torch.from_numpy(x[:1]).to(
            device
        )
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                model(batch[: min(batch_size, total - start)]).argmax(1)
    elif method in ("fwd+noise", "noise"):
        buffer = torch.empty((batch_size, 1, 28, 28), device=device)
        gen = torch.Generator(device=device).manual_seed(0)
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                clean = torch.from_numpy(x[(start // (N0 + n)) % len(x)]).to(device)
                batch = (
                    buffer[: min(batch_size, total - start)].normal_(0.0, sigma, generator=gen).add_(clean)
                )
                if method == "fwd+noise":
                    model(batch).argmax(1)
    elif method == "ours":
        ours(model, device, sigma).certify(x, n, batch_size=batch_size, n0=N0, bound="all")
    elif method == "counts":
        ours(model, device, sigma).certify_counts(x, n, batch_size=batch_size, n0=N0)
    elif method == "art":
        art_estimator(model, device, sigma).certify(x, n, batch_size=batch_size)
    else:
        raise ValueError(method)
    if device.type == "cuda":
        torch.cuda.synchronize()


def worker(args: argparse.Namespace) -> None:
    """Peak extra memory of one method, in its own process."""
    device = resolve_device(args.device)
    model = make_model(args.models).to(device).eval()
    x = images(args.images)
    run_method(
        "forward", model, x[:1], args.batch_size, args.batch_size, device, args.sigma
    )  # warm-up: full batches
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
        run_method(args.worker, model, x, args.n, args.batch_size, device, args.sigma)
        peak = torch.cuda.max_memory_allocated()
    else:
        page = os.sysconf("SC_PAGE_SIZE")

        def rss() -> int:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * page

        base = peak = rss()
        done = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss())
                time.sleep(0.001)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        run_method(args.worker, model, x, args.n, args.batch_size, device, args.sigma)
        done.set()
        thread.join()
    print(json.dumps({"extra_bytes": int(peak - base)}))


def measure_memory(method: str, model: str, n: int, args: argparse.Namespace) -> float:
    """Peak extra memory (MiB) of one method, measured in a fresh process."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--models",
            model,
            "--n",
            str(n),
            "--images",
            str(args.images),
            "--batch-size",
            str(args.batch_size),
            "--sigma",
            str(args.sigma),
            "--device",
            args.device,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_bytes"] / 2**20


def sequential_main(args: argparse.Namespace) -> None:
    """Fixed n vs the decision mode vs the adaptive mode on one checkpoint and one set of test images."""
    from art_manifold_defenses.checkpoint import load_checkpoint
    from art_manifold_defenses.data import load_dataset
    from art_manifold_defenses.smoothing import SmoothedClassifier

    device = resolve_device(args.device)
    model, metadata = load_checkpoint(args.checkpoint, device=device)
    if not isinstance(model, SmoothedClassifier):
        raise SystemExit(f"{args.checkpoint} is not a smoothed (stn/smoothing) checkpoint")
    sigma = float(model.sigma)
    x_all, y_all = load_dataset(args.dataset, "test", root=args.data_root)
    x, y = x_all[: args.images], y_all[: args.images]
    est = RenyiSmoothingPyTorch(
        model.base,
        nn.CrossEntropyLoss(),
        tuple(x.shape[1:]),
        int(metadata["architecture"]["num_classes"]),
        clip_values=(0.0, 1.0),
        device_type="cpu" if device.type == "cpu" else "gpu",
        scale=sigma,
        alpha=args.alpha,
    )
    radii = [float(r) for r in args.radii.split(",")]
    use_cpu_clock = args.clock == "cpu" or (args.clock == "auto" and device.type == "cpu")
    clock = time.process_time if use_cpu_clock else time.perf_counter
    common = {"batch_size": args.batch_size, "n0": N0, "alpha": args.alpha, "seed": args.seed}
    print(
        f"checkpoint={args.checkpoint} sigma={sigma:g} dataset={args.dataset} images={len(x)} n={args.n} "
        f"n0={N0} "
        f"alpha={args.alpha} batch={args.batch_size} device={device} threads={torch.get_num_threads()} "
        f"clock={'process CPU time' if use_cpu_clock else 'wall time'}",
        flush=True,
    )

    def timed(fn: Any) -> tuple[Any, float]:
        began = clock()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out, (clock() - began) / len(x)

    (pred_fixed, rad_fixed), sec_fixed = timed(lambda: est.certify(x, args.n, bound="cohen", **common))
    fixed_passes = N0 + args.n
    correct_fixed = pred_fixed == y
    print(
        f"fixed n: {fixed_passes:,} forward passes/image, {sec_fixed:.3f} s/image, smoothed accuracy "
        f"{float(np.mean(correct_fixed)):.3f}",
        flush=True,
    )
    record: dict[str, Any] = {
        "checkpoint": args.checkpoint,
        "sigma": sigma,
        "images": len(x),
        "n": args.n,
        "n0": N0,
        "alpha": args.alpha,
        "device": str(device),
        "fixed": {"passes": fixed_passes, "seconds": sec_fixed},
        "decision": [],
        "adaptive": {},
    }
    print(
        "  r      seed  fixed acc  decision acc  diff (pts)  decision passes/img  x fewer  decision s/img  x "
        "faster"
    )
    for r in radii:
        fixed_acc = float(np.mean(correct_fixed & (rad_fixed > 0) & (rad_fixed >= r)))
        for seed in [args.seed, *[int(v) for v in args.extra_seeds.split(",") if v.strip()]]:
            res, sec = timed(
                lambda r=r, seed=seed: est.certify(x, args.n, radius=r, **{**common, "seed": seed})
            )
            acc = float(np.mean(res.certified & (res.prediction == y)))
            passes = float(np.mean(res.samples))
            print(
                f"  {r:<5g}  {seed:4d}  {fixed_acc:9.3f}  {acc:12.3f}  {100 * (acc - fixed_acc):+10.1f}  "
                f"{passes:19.0f}  x{fixed_passes / passes:6.1f}  {sec:14.4f}  x{sec_fixed / sec:7.1f}",
                flush=True,
            )
            record["decision"].append(
                {
                    "radius": r,
                    "seed": seed,
                    "fixed_certified_accuracy": fixed_acc,
                    "decision_certified_accuracy": acc,
                    "passes": passes,
                    "seconds": sec,
                    "decisions": {
                        d: int(np.sum(res.decision == d)) for d in ("certified", "not_certified", "abstain")
                    },
                }
            )
    (pred_ad, rad_ad, spent), sec_ad = timed(
        lambda: est.certify(
            x,
            args.n,
            bound="cohen",
            samples="adaptive",
            max_radius_loss=args.max_radius_loss,
            return_samples=True,
            **common,
        )
    )
    lost = rad_fixed - rad_ad
    certified = rad_fixed > 0
    passes_ad = float(np.mean(spent))
    correct_ad = pred_ad == y
    print(
        f"adaptive (max_radius_loss={args.max_radius_loss:g}): {passes_ad:,.0f} forward passes/image (x"
        f"{fixed_passes / passes_ad:.2f} fewer), {sec_ad:.3f} s/image (x{sec_fixed / sec_ad:.2f} faster); "
        "radius lost "
        f"vs fixed n: mean {float(np.mean(lost)):.4f} over all images, "
        f"{float(np.mean(lost[certified])):.4f} over the "
        f"{int(certified.sum())} certified by fixed n, max {float(np.max(lost)):.4f}; certified accuracy "
        "fixed / "
        "adaptive: "
        + ", ".join(
            f"r={r:g} {float(np.mean(correct_fixed & (rad_fixed > 0) & (rad_fixed >= r))):.3f} / "
            f"{float(np.mean(correct_ad & (rad_ad > 0) & (rad_ad >= r))):.3f}"
            for r in radii
        ),
        flush=True,
    )
    record["adaptive"] = {
        "max_radius_loss": args.max_radius_loss,
        "passes": passes_ad,
        "seconds": sec_ad,
        "mean_radius_lost": float(np.mean(lost)),
        "mean_radius_lost_certified": float(np.mean(lost[certified])) if certified.any() else 0.0,
        "max_radius_lost": float(np.max(lost)),
        "certified_accuracy": {
            f"{r:g}": [
                float(np.mean(correct_fixed & (rad_fixed > 0) & (rad_fixed >= r))),
                float(np.mean(correct_ad & (rad_ad > 0) & (rad_ad >= r))),
            ]
            for r in radii
        },
    }
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tramer_a,small_cnn")
    parser.add_argument(
        "--n", type=int, default=1000, help="estimation samples per image (plus n0 = 100 selection)"
    )
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--clock",
        default="auto",
        choices=["auto", "cpu", "wall"],
        help=(
            "timer: process CPU time ('cpu', the default on CPU) or wall time ('wall', the default on CUDA)"
        ),
    )
    parser.add_argument(
        "--skip-art", action="store_true", help="leave out ART (slow and memory-hungry at large n)"
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--memory-model", default="small_cnn", help="model for the memory-vs-n table ('' to skip)"
    )
    parser.add_argument("--memory-n", default="1000,10000,30000", help="n values of the memory-vs-n table")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    seq = parser.add_argument_group(
        "sequential modes (fixed n vs decision vs adaptive on a trained checkpoint)"
    )
    seq.add_argument(
        "--checkpoint", default=None, help="a smoothed (stn) checkpoint: run the sequential comparison"
    )
    seq.add_argument("--dataset", default="mnist-embedded")
    seq.add_argument("--data-root", default=None)
    seq.add_argument("--radii", default="0.25,0.5,1.0", help="radii of the decision mode")
    seq.add_argument(
        "--alpha", type=float, default=0.001, help="failure probability (default: 0.001, Cohen et al.)"
    )
    seq.add_argument("--seed", type=int, default=0, help="noise seed shared by the three modes")
    seq.add_argument(
        "--extra-seeds", default="1", help="decision mode again with these seeds (independent noise)"
    )
    seq.add_argument("--max-radius-loss", type=float, default=0.05)
    seq.add_argument("--json", default=None, help="write the numbers to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1) if args.device == "cpu" else None
    if args.worker:
        worker(args)
        return
    if args.checkpoint:
        sequential_main(args)
        return
    device = resolve_device(args.device)
    methods = ["forward", "fwd+noise", "noise", "counts", "ours"] + ([] if args.skip_art else ["art"])
    x = images(args.images)
    use_cpu_clock = args.clock == "cpu" or (args.clock == "auto" and device.type == "cpu")
    clock = time.process_time if use_cpu_clock else time.perf_counter
    print(
        f"device={device} n={args.n} n0={N0} images={args.images} batch={args.batch_size} "
        f"threads={torch.get_num_threads()} "
        f"clock={'process CPU time' if use_cpu_clock else 'wall time'}"
    )
    for name in args.models.split(","):
        model = make_model(name).to(device).eval()
        run_method("forward", model, x[:1], args.batch_size, args.batch_size, device, args.sigma)  # warm-up
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(args.repeats):
            for m in methods:
                began = clock()
                run_method(m, model, x, args.n, args.batch_size, device, args.sigma)
                times[m].append((clock() - began) / args.images)
        best = {m: min(v) for m, v in times.items()}
        memory: dict[str, float] = {}
        if not args.no_memory:
            for m in methods:
                if m not in ("noise", "counts"):
                    memory[m] = measure_memory(m, name, args.n, args)
        batch_mib = args.batch_size * 28 * 28 * 4 / 2**20
        print(
            f"\n{name}: seconds/image (best of {args.repeats}), ratio to the forward-only limit and to the "
            "forward+noise limit; "
            f"peak extra memory (MiB; one noisy batch = {batch_mib:.1f} MiB)"
        )
        for m in methods:
            mem = f"{memory[m]:8.1f}" if m in memory else "     n/a"
            print(
                f"  {m:9s} {best[m]:9.4f} s/image   x{best[m] / best['forward']:5.2f} fwd   "
                f"x{best[m] / best['fwd+noise']:5.2f} fwd+noise   {mem} MiB"
            )
        if "art" in best:
            print(f"  speed-up of ours over ART: x{best['art'] / best['ours']:.2f}")
    if args.memory_model and not args.no_memory:
        print(
            f"\npeak extra memory (MiB) vs n, {args.memory_model}, {args.images} images, batch "
            f"{args.batch_size}:"
        )
        mem_methods = [m for m in methods if m not in ("noise", "counts")]
        print("  n        " + "  ".join(f"{m:>9s}" for m in mem_methods))
        for n in [int(v) for v in args.memory_n.split(",")]:
            print(
                f"  {n:<8d} "
                + "  ".join(f"{measure_memory(m, args.memory_model, n, args):9.1f}" for m in mem_methods)
            )


if __name__ == "__main__":
    main()

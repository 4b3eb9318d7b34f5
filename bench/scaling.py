"""Certification throughput with 1 and 2 ``torchrun`` processes, measured in one run (images/second and the
ratio).

    OMP_NUM_THREADS=1 python bench/scaling.py                       # CPU: 1 vs 2 processes (Gloo)
    python bench/scaling.py --device cuda --procs 1 --samples 100000  # 1 GPU throughput at n = 100,000

Throughput = images / busy time of the slowest rank, where a rank's busy time is the sum of the ``seconds``
column of the rows it certified (images are dealt round-robin, so row ``k`` belongs to rank ``k % K``);
process start-up and imports are excluded and reported separately as the end-to-end wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from art_manifold_defenses.checkpoint import save_checkpoint  # noqa: E402
from art_manifold_defenses.models import build_model  # noqa: E402
from art_manifold_defenses.smoothing import read_certify_tsv  # noqa: E402


def run(procs: int, args: argparse.Namespace, checkpoint: Path, out: Path) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        "art_manifold_defenses",
        "certify",
        "--checkpoint",
        str(checkpoint),
        "--num-images",
        str(args.images),
        "--samples",
        str(args.samples),
        "--n0",
        "100",
        "--sigma",
        "0.25",
        "--batch-size",
        str(args.batch_size),
        "--device",
        args.device,
        "--out",
        str(out),
        "--quiet",
        "--data-root",
        args.data_root,
    ]
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - began
    rows = read_certify_tsv(out / "certify.tsv")
    busy = [0.0] * procs
    for k, row in enumerate(rows):
        busy[k % procs] += float(row["seconds"])
    return len(rows) / max(busy), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--procs", default="1,2", help="comma-separated process counts (default 1,2)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument(
        "--samples",
        type=int,
        default=2000,
        help=("n per image (default 2000 on CPU; 100000 for the GPU number)"),
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--model", default="wong_small")
    parser.add_argument("--data-root", default=str(Path(tempfile.gettempdir()) / "amd-bench-data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        arch = {"name": args.model, "in_channels": 1, "num_classes": 10, "input_size": 28}
        torch.manual_seed(0)
        model = build_model(args.model, in_channels=1, num_classes=10, input_size=28)
        checkpoint = save_checkpoint(
            model.eval(), Path(tmp) / "model.pt", architecture=arch, dataset="mnist-embedded"
        )
        results = {}
        for procs in [int(p) for p in args.procs.split(",")]:
            rate, wall = run(procs, args, checkpoint, Path(tmp) / f"out{procs}")
            results[procs] = rate
            print(
                f"{procs} process(es) on {args.device}: {rate:.3f} images/s (n={args.samples}, {args.images} "
                "images, "
                f"{args.model}); end-to-end wall {wall:.1f} s including start-up"
            )
        base = min(results)
        for procs, rate in results.items():
            if procs != base:
                print(
                    f"speed-up {procs} vs {base} process(es): {rate / results[base]:.2f}x (ideal "
                    f"{procs / base:.0f}x)"
                )


if __name__ == "__main__":
    main()

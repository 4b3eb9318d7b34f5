"""Benchmark of the Feature Pyramid Decoder (paper 002): training-step time and parameter overhead.

Prints ratios measured in one process (absolute times on shared machines are noise):

- ``plain``: one cross-entropy step (forward, backward, Adamax step) of the backbone alone;
- ``fpd_pass``: one step of a single FPD pass (front pass + restoration + middle + back pass + tanh head; CE +
  MSE);
- ``phase1``: one Algorithm-1 step while l2 > T (front pass + restoration only, restricted update);
- ``phase2``: one Algorithm-1 step while l2 <= T (two full FPD passes, two updates; ``second_pass="detach"``).

Algorithm 1's own limit for a phase-2 step is 4 backbone-equivalent passes (2 FPD passes x front + back), i.e.
``4 x plain``; the script prints ``phase2 / (4 x plain)`` (target <= 1.25) and, because the restoration module
and the non-local layers are extra work beyond the backbone, also ``phase2 / (2 x fpd_pass)`` (pure
implementation overhead).

Usage: OMP_NUM_THREADS=1 python bench/fpd.py [--model resnet18 --size 32 --channels 1 --batch 4 --repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from art_manifold_defenses.fpd import FeaturePyramidDecoder, FPDTrainer
from art_manifold_defenses.models import build_model
from art_manifold_defenses.training import TrainContext


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=["resnet18", "resnet50", "resnet101"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--stem", default="auto", choices=["auto", "small", "imagenet"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fpn-channels", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    kwargs = {"in_channels": args.channels, "input_size": args.size, "stem": args.stem}

    # the plain backbone gets ELU too, so the comparison isolates FPD's own work
    plain = build_model(args.model, activation="elu", **kwargs).to(device).train()
    plain_opt = torch.optim.Adamax(plain.parameters(), lr=1e-3, weight_decay=1e-5)
    fpd = FeaturePyramidDecoder(
        build_model(args.model, **kwargs), input_size=args.size, fpn_channels=args.fpn_channels, device=device
    ).train()
    phase2 = FPDTrainer(fpd, threshold=float("inf"), device=device, verbose=False)
    phase1 = FPDTrainer(fpd, threshold=-1.0, device=device, verbose=False, optimizer=phase2.optimizer)
    ctx = TrainContext(model=fpd, optimizer=phase2.optimizer, device=device, epochs=1)
    x = torch.rand(args.batch, args.channels, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def plain_step() -> None:
        plain_opt.zero_grad(set_to_none=True)
        F.cross_entropy(plain(x), y).backward()
        plain_opt.step()

    def fpd_pass_step() -> None:
        phase2.optimizer.zero_grad(set_to_none=True)
        restored, logits = fpd.forward_with_restoration(x)
        (F.cross_entropy(logits, y) + F.mse_loss(restored, x)).backward()
        phase2.optimizer.step()

    steps: dict[str, Callable[[], object]] = {
        "plain": plain_step,
        "fpd_pass": fpd_pass_step,
        "phase1": lambda: phase1.training_step(ctx, x, y),
        "phase2": lambda: phase2.training_step(ctx, x, y),
    }
    fpd.train()  # (wrapping it for ART put it in eval mode)
    # every timed step starts from the same initial weights and optimizer state, so no run drifts into inf/NaN
    # territory
    states = {
        "plain": (copy.deepcopy(plain.state_dict()), copy.deepcopy(plain_opt.state_dict())),
        "fpd": (copy.deepcopy(fpd.state_dict()), copy.deepcopy(phase2.optimizer.state_dict())),
    }

    def reset() -> None:
        plain.load_state_dict(states["plain"][0])
        plain_opt.load_state_dict(states["plain"][1])
        fpd.load_state_dict(states["fpd"][0])
        phase2.optimizer.load_state_dict(states["fpd"][1])
        plain.train()
        fpd.train()

    for step in steps.values():  # warm-up
        reset()
        step()

    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
        for name, step in steps.items():
            reset()
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    med = {name: statistics.median(values) for name, values in times.items()}

    print(
        f"FPD bench: {args.model}, {args.channels}x{args.size}x{args.size} (stem {plain.stem_type}), batch "
        f"{args.batch}, "
        f"fpn {args.fpn_channels}, {args.repeats} repeats, device {device}, torch threads "
        f"{torch.get_num_threads()}"
    )
    for name, value in med.items():
        print(f"  median step {name:9s} {value * 1000:9.1f} ms")
    print(
        f"  fpd_pass / plain                  = {med['fpd_pass'] / med['plain']:.2f}  (2 backbone passes "
        "+ "
        "restoration + denoising)"
    )
    print(
        "  restoration+denoising overhead    = "
        f"{(med['fpd_pass'] - 2 * med['plain']) / med['plain']:.2f} "
        "backbone steps per FPD pass"
    )
    print(
        f"  phase1 / plain                    = {med['phase1'] / med['plain']:.2f}  (1 backbone pass + "
        "restoration)"
    )
    print(f"  phase2 / plain                    = {med['phase2'] / med['plain']:.2f}")
    print(f"  phase2 / (4 x plain)  [limit]     = {med['phase2'] / (4 * med['plain']):.2f}  (target <= 1.25)")
    print(
        f"  phase2 / (2 x fpd_pass)           = {med['phase2'] / (2 * med['fpd_pass']):.2f}  "
        "(implementation overhead)"
    )
    backbone_params = count(build_model(args.model, **kwargs))
    print(
        f"  parameters: backbone {backbone_params:,}, FPD {count(fpd):,}, overhead "
        f"x{count(fpd) / backbone_params:.3f} "
        f"(+{count(fpd) - backbone_params:,}: restoration {count(fpd.restoration):,})"
    )


if __name__ == "__main__":
    main()

"""Forward+backward time of the mapped cleverhans_cnn vs the plain one, and of a naive per-centre block.

Prints ratios against the plain model measured in the same process (target: mapped <= 2x plain).
Run: OMP_NUM_THREADS=1 python bench/radial_mapping.py [--batch 128] [--repeats 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from art_manifold_defenses.models import build_model
from art_manifold_defenses.radial_mapping import add_radial_mapping, mapping_blocks
from art_manifold_defenses.radial_mapping.reference import per_center_forward
from art_manifold_defenses.utils import resolve_device


class PerCentreBlock(nn.Module):
    """The same block evaluated literally, one centre at a time (what the vectorised expansion avoids)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_center_forward(self.block, x)  # type: ignore[arg-type]


def naive_copy(model: nn.Module) -> nn.Module:
    import copy

    naive = copy.deepcopy(model)
    for module in naive.modules():
        if hasattr(module, "mapping") and not isinstance(module.mapping, PerCentreBlock):
            module.mapping = PerCentreBlock(module.mapping)
    return naive


def time_fwd_bwd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, device: torch.device) -> float:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2]  # median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    plain = build_model("cleverhans_cnn").to(device)
    models: dict[str, Callable[[], nn.Module]] = {
        "plain cleverhans_cnn": lambda: plain,
        "mapped (paper)": lambda: add_radial_mapping(plain, variant="paper").to(device),
        "mapped (authors_code)": lambda: add_radial_mapping(plain, variant="authors_code").to(device),
        "mapped (paper), naive per-centre": lambda: naive_copy(add_radial_mapping(plain, variant="paper")).to(device),
        "mapped (authors_code), naive per-centre": lambda: naive_copy(add_radial_mapping(plain, variant="authors_code")).to(device),
    }
    print(f"device={device}, batch={args.batch}, repeats={args.repeats}, threads={torch.get_num_threads()}, torch {torch.__version__}")
    baseline = None
    for name, make in models.items():
        model = make().train()
        seconds = time_fwd_bwd(model, x, y, args.repeats, device)
        baseline = baseline or seconds
        blocks = len(mapping_blocks(model))
        print(f"{name:42s} blocks={blocks}  median fwd+bwd {seconds * 1e3:8.2f} ms   ratio vs plain {seconds / baseline:6.2f}x")


if __name__ == "__main__":
    main()

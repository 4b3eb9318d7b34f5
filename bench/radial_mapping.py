"""Forward+backward time of the mapped cleverhans_cnn vs the plain one, and of the unfused and naive
per-centre blocks.

Prints ratios against the plain model measured in the same process (target: mapped <= 2x plain). A reference
row, "concatenation only", replaces every block by one that computes nothing (it returns ``[x, x]`` in the
channels-last memory the fused blocks write): the paper's design concatenates g(f) to f, so each convolution
after a block reads twice the channels, and that row is the part of the ratio no implementation of the block
can remove. The models are timed round-robin (one step of each per round) and each ratio is the median over
rounds of (model step / plain step of the same round), so a load change on a shared machine hits both sides of
a ratio alike. Two clocks: wall time, and (on CPU) the process's CPU time, which leaves out the time other
jobs of a shared machine held the core. Run: OMP_NUM_THREADS=1 python bench/radial_mapping.py [--batch 128]
[--repeats 20] [--device cpu] [--no-naive]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from art_manifold_defenses.models import build_model
from art_manifold_defenses.radial_mapping import RadialMappingConcat, add_radial_mapping, mapping_blocks
from art_manifold_defenses.utils import resolve_device

# the literal one-centre-at-a-time implementation the tests check the block against
# (tests/radial_mapping/reference.py)
_spec = importlib.util.spec_from_file_location(
    "radial_reference", Path(__file__).resolve().parents[1] / "tests" / "radial_mapping" / "reference.py"
)
assert _spec is not None and _spec.loader is not None
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
per_center_forward = _reference.per_center_forward


class PerCentreBlock(nn.Module):
    """The same block evaluated literally, one centre at a time (what the vectorised expansion avoids)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_center_forward(self.block, x)  # type: ignore[arg-type]


class ConcatenationOnly(nn.Module):
    """``[x, x]`` in channels-last memory: the output shape and layout of a fused block, at no computation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1).contiguous(memory_format=torch.channels_last)


def concatenation_only_copy(model: nn.Module) -> nn.Module:
    """The mapped model with every block (out_channels = in_channels) replaced by
    :class:`ConcatenationOnly`."""
    floor = copy.deepcopy(model)
    for name, module in list(floor.named_modules()):
        if isinstance(module, RadialMappingConcat):
            if module.mapping.out_channels != module.mapping.in_channels:
                raise ValueError("concatenation_only_copy needs blocks with out_channels == in_channels")
            parent, _, child = name.rpartition(".")
            setattr(floor.get_submodule(parent), child, ConcatenationOnly())
    return floor


def naive_copy(model: nn.Module) -> nn.Module:
    naive = copy.deepcopy(model)
    for module in naive.modules():
        mapping = getattr(module, "mapping", None)
        if isinstance(mapping, nn.Module) and not isinstance(mapping, PerCentreBlock):
            module.mapping = PerCentreBlock(mapping)
    return naive


def unfused_copy(model: nn.Module) -> nn.Module:
    """The mapped model with every block computed by plain autograd operations (``fused=False``)."""
    unfused = copy.deepcopy(model)
    for block in mapping_blocks(unfused):
        block.fused = False
    return unfused


def make_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> Callable[[], tuple[float, float]]:
    def step() -> tuple[float, float]:
        started, started_cpu = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started, time.process_time() - started_cpu

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-naive", action="store_true", help="skip the (slow) naive per-centre rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    plain = build_model("cleverhans_cnn").to(device)
    paper = add_radial_mapping(plain, variant="paper").to(device)
    authors = add_radial_mapping(plain, variant="authors_code").to(device)
    models: dict[str, nn.Module] = {
        "plain cleverhans_cnn": plain,
        "mapped (paper)": paper,
        "mapped (authors_code)": authors,
        "mapped (paper), unfused autograd": unfused_copy(paper),
        "mapped (authors_code), unfused autograd": unfused_copy(authors),
        "reference: concatenation only, no block": concatenation_only_copy(paper),
    }
    if not args.no_naive:
        models["mapped (paper), naive per-centre"] = naive_copy(paper)
        models["mapped (authors_code), naive per-centre"] = naive_copy(authors)
    steps = {name: make_step(model.train(), x, y, device) for name, model in models.items()}
    print(
        f"device={device}, batch={args.batch}, repeats={args.repeats}, "
        f"threads={torch.get_num_threads()}, "
        f"torch {torch.__version__}"
    )
    for step in steps.values():  # warm-up
        for _ in range(3):
            step()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(step())
    baseline = times["plain cleverhans_cnn"]
    for name, model in models.items():
        blocks = len(mapping_blocks(model)) or sum(isinstance(m, ConcatenationOnly) for m in model.modules())
        line = f"{name:42s} blocks={blocks}"
        for clock, label in ((0, "wall"), (1, "cpu")):
            if clock == 1 and device.type != "cpu":
                continue
            median = statistics.median(t[clock] for t in times[name])
            ratio = statistics.median(t[clock] / b[clock] for t, b in zip(times[name], baseline, strict=True))
            line += f"  {label} median {median * 1e3:7.2f} ms ratio {ratio:5.2f}x"
        print(line)


if __name__ == "__main__":
    main()

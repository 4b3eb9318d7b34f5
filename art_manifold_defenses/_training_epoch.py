"""One epoch of the shared training loop: the epoch's seeded data order, each process's share of every batch
under ``torch.distributed``, the step function's loss or logs, the per-batch or per-epoch scheduler step, the
time estimate after the first batches, and the mean of the logged values (over batches and ranks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import costs
from ._training_context import StepFunction, TrainContext, _epoch_seed

#: The first epoch of a run times this many batches (after a warm-up batch), then prints the estimated epoch
#: and total time (verbose).
ESTIMATE_AFTER_BATCHES = 5


@dataclass(frozen=True)
class _EpochSettings:
    """What stays the same from one epoch to the next: the step function, the whole training set (CPU
    tensors), how it is batched and ordered, this process's place in the group, the scheduler and the
    progress display."""

    step: StepFunction
    x: Tensor
    y: Tensor
    seed: int
    shuffle: bool
    batch_size: int
    rank: int
    world: int
    scheduler: Any
    scheduler_interval: str
    desc: str
    verbose: bool


def _rank_share(batch: Tensor, order: Tensor, rank: int, world: int) -> Tensor:
    """This rank's share of a global batch: every ``world``-th sample from position ``rank``; a batch with
    fewer samples than processes is first padded with the first samples of the epoch's order (as
    ``DistributedSampler`` pads)."""
    if len(batch) < world:
        batch = torch.cat([batch, order[: world - len(batch)].repeat(world)[: world - len(batch)]])
    return batch[rank::world]


def _collective_device(dev: torch.device) -> torch.device:
    """Where collectives' tensors live: the GPU for NCCL, the CPU for Gloo."""
    return dev if dev.type == "cuda" else torch.device("cpu")


def _run_epoch(ctx: TrainContext, run: _EpochSettings, *, estimate_epochs: int = 0) -> dict[str, float]:
    """One epoch of steps over ``(run.x, run.y)`` in the epoch's seeded order; returns the mean of every
    logged value (over the batches that logged it, and over the ranks). With ``estimate_epochs > 0`` and
    ``run.verbose``, prints the time estimate of that many epochs after the first
    :data:`ESTIMATE_AFTER_BATCHES` batches."""
    from . import distributed as dist_helpers

    epoch_seed = _epoch_seed(run.seed, ctx.epoch)
    # dropout, noise and other draws of this epoch (other ranks: their own stream, so their noise differs)
    torch.manual_seed(epoch_seed if run.rank == 0 else dist_helpers.derive_seed(epoch_seed, "rank", run.rank))
    n = len(run.x)
    order = (
        torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed))
        if run.shuffle
        else torch.arange(n)
    )
    ctx.model.train()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}  # batches that logged each key (a step function may log a value on some only)
    bar = tqdm(
        range(ctx.batches_per_epoch),
        desc=f"{run.desc} {ctx.epoch + 1}/{ctx.epochs}",
        disable=not run.verbose,
        leave=False,
    )
    began = 0.0
    for b in bar:
        if b == 1:  # timed from the end of the first batch (a warm-up: lazy initialisation, allocations)
            began = costs.clock()
        if (
            run.verbose
            and estimate_epochs
            and b > 1
            and b == min(ESTIMATE_AFTER_BATCHES + 1, ctx.batches_per_epoch - 1)
        ):
            _report_estimate(ctx, b, began, estimate_epochs)
        idx = order[b * run.batch_size : (b + 1) * run.batch_size]
        if run.world > 1:
            idx = _rank_share(idx, order, run.rank, run.world)
        ctx.batch_index = b
        logs = _step(ctx, run.step, run.x[idx], run.y[idx])
        for key, value in logs.items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
        ctx.global_step += 1
        if run.scheduler is not None and run.scheduler_interval == "batch":
            run.scheduler.step()
        if "loss" in logs:
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
    if run.scheduler is not None and run.scheduler_interval == "epoch":
        run.scheduler.step()
    if run.world > 1:  # the logged values are averaged over ranks, so every rank keeps the same history
        sums, counts = _sum_over_ranks(sums, counts, ctx.device)
    return {k: v / counts[k] for k, v in sums.items()}


def _report_estimate(ctx: TrainContext, b: int, began: float, estimate_epochs: int) -> None:
    """Print the time ``estimate_epochs`` epochs will take, from batches 2 to ``b`` (timed since
    ``began``)."""
    per_batch = (costs.clock() - began) / (b - 1)
    epoch_seconds = per_batch * ctx.batches_per_epoch
    costs.report_estimate(
        f"{estimate_epochs} epochs of {ctx.batches_per_epoch} batches",
        epoch_seconds * estimate_epochs,
        f"batches 2 to {b} took {per_batch:.3g} s each: {costs.format_seconds(epoch_seconds)} per "
        "epoch, "
        "validation and checks not included",
    )


def _step(ctx: TrainContext, step: StepFunction, x: Tensor, y: Tensor) -> dict[str, float]:
    """Run the step function on one batch (moved to the device); a returned loss is checked to be finite,
    back-propagated and stepped. Returns the batch's logged values."""
    xb, yb = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
    out = step(ctx, xb, yb)
    if isinstance(out, Tensor):
        if not torch.isfinite(out):
            raise FloatingPointError(
                f"non-finite loss {out.item()} at epoch {ctx.epoch + 1}, batch {ctx.batch_index}"
            )
        ctx.backward_and_step(out)
        return {"loss": float(out.detach())}
    return {k: float(v) for k, v in out.items()}


def _sum_over_ranks(
    sums: dict[str, float], counts: dict[str, int], device: torch.device
) -> tuple[dict[str, float], dict[str, int]]:
    """The logged sums and batch counts added up over every process of the group."""
    from . import distributed as dist_helpers

    keys = sorted(sums)
    totals = dist_helpers.all_reduce_sum(
        [sums[k] for k in keys] + [float(counts[k]) for k in keys], device=_collective_device(device)
    )
    return (
        dict(zip(keys, totals[: len(keys)], strict=True)),
        {k: int(round(c)) for k, c in zip(keys, totals[len(keys) :], strict=True)},
    )

"""The one shared training loop: epochs, batches, device, optimizer and scheduler, a per-batch step function
that defence trainers supply, tqdm progress, validation, a checkpoint every epoch and exact resume after
interruption.

Determinism: the data order and every random draw of epoch ``e`` come from seeds derived from ``(seed, e)``,
so a run resumed from the checkpoint of epoch ``e`` continues exactly as the uninterrupted run would have.

Scale-out: under ``torchrun`` (``torch.distributed`` initialised with ``WORLD_SIZE > 1``, e.g. by
``amd train``), the loop wraps the model in ``DistributedDataParallel`` (one device per process,
``cuda:LOCAL_RANK`` on GPUs), splits every batch of the shared, identically seeded permutation across the
processes (so ``batch_size`` stays the number of samples per optimizer step and the run follows the
single-process schedule), averages the logged values over ranks, and writes the checkpoint on rank 0 only; on
resume rank 0 reads it and sends it to the others.

No silent collapse: after every epoch (after ``on_epoch_end``) the loop predicts a fixed, seeded subset of at
most :data:`COLLAPSE_CHECK_IMAGES` training images (eval mode, no gradients), records
``train_subset_accuracy`` and ``predicted_classes``, and warns with :class:`TrainingCollapseWarning` when the
accuracy is at chance or one class takes at least 90% of the predictions (``collapse_check=False`` turns the
check off).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import costs
from .train_state import TRAIN_STATE_FILE, load_train_state, resume_from, save_train_state, train_fingerprint
from .utils import check_images, check_labels, forward_checked, probe_forward, resolve_device

__all__ = [
    "COLLAPSE_CHECK_IMAGES",
    "TrainContext",
    "StepFunction",
    "TrainingCollapseWarning",
    "collapse_statistics",
    "cross_entropy_step",
    "evaluate_accuracy",
    "predict_logits",
    "train",
    "TRAIN_STATE_FILE",
]

#: The first epoch of a run times this many batches (after a warm-up batch), then prints the estimated epoch
#: and total time (verbose).
ESTIMATE_AFTER_BATCHES = 5
#: At most this many training images (a fixed, seeded subset) are predicted after every epoch by the collapse
#: check.
COLLAPSE_CHECK_IMAGES = 512
#: One class taking at least this share of the predictions counts as a collapse.
COLLAPSE_DOMINANT_SHARE = 0.9


class TrainingCollapseWarning(UserWarning):
    """A training epoch ended with the network at chance accuracy or predicting (almost) one class."""


@dataclass
class TrainContext:
    """What a step function sees: the model, optimizer, device and where in the run it is.

    ``progress`` is the fractional epoch (``epoch + batch_index / batches_per_epoch``), the variable the
    papers' schedules (epsilon ramps, regularizer weights) are written in. ``state`` is a dict a step function
    may use to keep things between batches (it is not checkpointed).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    epochs: int
    epoch: int = 0
    batch_index: int = 0
    batches_per_epoch: int = 1
    global_step: int = 0
    grad_clip: float | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        return self.epoch + self.batch_index / max(self.batches_per_epoch, 1)

    def backward_and_step(
        self, loss: Tensor, parameters: Any = None, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """``zero_grad``, ``backward``, optional gradient-norm clipping, ``step`` (on ``optimizer`` or the
        run's one)."""
        opt = optimizer if optimizer is not None else self.optimizer
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            params = (
                parameters if parameters is not None else [p for g in opt.param_groups for p in g["params"]]
            )
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()


#: A step function gets the context and one batch on the device. It returns either a loss tensor (the loop
#: then back-propagates and steps the optimizer) or a mapping of floats to log (it has already updated the
#: model itself).
StepFunction = Callable[[TrainContext, Tensor, Tensor], "Tensor | Mapping[str, float]"]


def cross_entropy_step(ctx: TrainContext, x: Tensor, y: Tensor) -> Tensor:
    """The plain step: cross-entropy of the model's logits."""
    return nn.functional.cross_entropy(ctx.model(x), y)


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: Any, *, batch_size: int = 256, device: str | torch.device | None = "cpu"
) -> np.ndarray:
    """Logits of ``model`` on ``x`` (numpy or tensor), computed in eval mode in batches; returns a numpy
    array.

    Raises ``ValueError``/``TypeError`` naming ``x`` for images that are not finite NCHW batches in [0, 1] or
    that the model cannot take (wrong channel count, channels-last layout), and naming ``batch_size`` for a
    non-positive one.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x_np = check_images(x, "x")
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for start in range(0, len(x_np), batch_size):
            outputs.append(
                forward_checked(model, x_np[start : start + batch_size], "x", device=dev).float().cpu()
            )
    finally:
        model.train(was_training)
    return torch.cat(outputs).numpy()


def evaluate_accuracy(
    model: nn.Module, x: Any, y: Any, *, batch_size: int = 256, device: str | torch.device | None = "cpu"
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    logits = predict_logits(model, x, batch_size=batch_size, device=device)
    labels = check_labels(y, len(logits), int(logits.shape[1]), "y")
    return float((logits.argmax(1) == labels).mean())


def collapse_statistics(predictions: Any, labels: Any, num_classes: int) -> dict[str, Any]:
    """Accuracy and class spread of ``predictions`` (class indices) against ``labels``, and whether they look
    like a collapsed network: accuracy at chance (at most ``min(1.5 / K, 1 / K + 0.1)`` for
    ``K = num_classes``) or one class taking at least 90% of the predictions (unless the labels themselves are
    that unbalanced).

    Returns:
        ``{"accuracy", "predicted_classes", "dominant_class", "dominant_share", "chance_threshold",
        "at_chance", "one_class", "collapsed"}``.
    """
    pred = np.asarray(predictions, dtype=np.int64).reshape(-1)
    true = np.asarray(labels, dtype=np.int64).reshape(-1)
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(
            f"predictions and labels must be non-empty and of the same length, got {pred.size} and "
            f"{true.size}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    counts = np.bincount(pred, minlength=int(num_classes))
    dominant = int(counts.argmax())
    share = float(counts[dominant]) / pred.size
    accuracy = float((pred == true).mean())
    threshold = min(1.5 / num_classes, 1.0 / num_classes + 0.1)
    label_share = float((true == dominant).mean())
    at_chance = accuracy <= threshold
    one_class = share >= COLLAPSE_DOMINANT_SHARE and label_share < COLLAPSE_DOMINANT_SHARE
    return {
        "accuracy": accuracy,
        "predicted_classes": int((counts > 0).sum()),
        "dominant_class": dominant,
        "dominant_share": share,
        "chance_threshold": threshold,
        "at_chance": at_chance,
        "one_class": one_class,
        "collapsed": at_chance or one_class,
    }


def _collapse_subset(n: int, seed: int) -> np.ndarray:
    """The training images the collapse check predicts: a fixed, seeded subset of at most
    COLLAPSE_CHECK_IMAGES."""
    if n <= COLLAPSE_CHECK_IMAGES:
        return np.arange(n)
    pick = np.random.default_rng(_epoch_seed(seed, -1)).choice(n, COLLAPSE_CHECK_IMAGES, replace=False)
    return np.sort(pick)


def _check_collapse(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    record: dict[str, float],
    *,
    epoch: int,
    epochs: int,
    device: torch.device,
    warn: bool,
) -> None:
    """Predict ``x`` (the subset), add ``train_subset_accuracy`` and ``predicted_classes`` to ``record`` and
    warn (when ``warn``) if the network looks collapsed. Models whose output is not ``(N, classes)`` logits
    are skipped."""
    logits = predict_logits(model, x, device=device)
    if logits.ndim != 2 or logits.shape[0] != len(x) or logits.shape[1] < 2:
        return
    stats = collapse_statistics(logits.argmax(1), y, int(logits.shape[1]))
    record["train_subset_accuracy"] = stats["accuracy"]
    record["predicted_classes"] = float(stats["predicted_classes"])
    if warn and stats["collapsed"]:
        reasons = []
        if stats["at_chance"]:
            reasons.append(f"accuracy at chance (<= {stats['chance_threshold']:.1%})")
        if stats["one_class"]:
            reasons.append(f"one class takes >= {COLLAPSE_DOMINANT_SHARE:.0%} of the predictions")
        warnings.warn(
            f"training looks collapsed after epoch {epoch + 1}/{epochs}: accuracy {stats['accuracy']:.1%} on "
            f"{len(x)} "
            f"training images ({logits.shape[1]} classes, chance {1 / logits.shape[1]:.1%}); class "
            f"{stats['dominant_class']} "
            f"takes {stats['dominant_share']:.1%} of the predictions; {stats['predicted_classes']} distinct "
            "classes "
            f"predicted ({' and '.join(reasons)}). If it persists, the network is likely stuck (e.g. dead "
            "ReLUs, a "
            "constant output): check the loss weights, learning rate and initialisation "
            "(collapse_check=False turns "
            "this check off).",
            TrainingCollapseWarning,
            stacklevel=3,
        )


def _label_classes(
    model: nn.Module, x: np.ndarray, y: Any, device: torch.device, *, class_labels: bool
) -> int:
    """The number of classes ``y`` must index: the model's outputs (one forward pass of an image in eval mode)
    when the labels are class labels of an ``(N, classes)`` output; otherwise (a step function that reads
    ``y`` its own way, e.g. as sample indices) any non-negative integer."""
    labels = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    numeric = labels.size > 0 and labels.dtype != np.bool_ and np.issubdtype(labels.dtype, np.number)
    bound = max(int(np.nanmax(labels)) + 1, 1) if numeric and np.isfinite(labels).all() else 1
    if not class_labels:
        return bound
    out = probe_forward(model, x[:1], "x", device=device)
    return int(out.shape[1]) if isinstance(out, Tensor) and out.ndim == 2 else bound


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


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


def train(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    step_fn: StepFunction | None = None,
    device: str | torch.device | None = "cpu",
    validation_data: tuple[Any, Any] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    seed: int = 0,
    grad_clip: float | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    on_epoch_end: Callable[[TrainContext, dict[str, float]], None] | None = None,
    verbose: bool = True,
    desc: str = "train",
    distributed: bool | None = None,
    find_unused_parameters: bool = False,
    collapse_check: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` on ``(x, y)`` and return the per-epoch history.

    Args:
        model: any ``nn.Module`` mapping a float32 NCHW batch to logits (``step_fn`` may use it differently).
        x, y: training images (N, C, H, W) in [0, 1] and int64 labels (numpy arrays or tensors).
        epochs: total number of epochs (a resumed run continues up to this number).
        optimizer: default Adam(lr=1e-3) over ``model.parameters()``.
        scheduler: any object with ``.step()`` (``state_dict``/``load_state_dict`` are used when present);
            stepped after every epoch, or after every batch with ``scheduler_interval="batch"``.
        step_fn: per-batch step (see :data:`StepFunction`); default cross-entropy.
        validation_data: ``(x_val, y_val)``; accuracy is computed after every epoch.
        checkpoint_dir: if given, ``train_state.pt`` (model, optimizer, scheduler, history, epoch) is written
            after every epoch, and with ``resume=True`` an existing one is loaded and training continues from
            it.
        seed: data order and random draws of epoch ``e`` are seeded from ``(seed, e)``.
        grad_clip: clip the global gradient norm to this value before each optimizer step.
        on_epoch_end: called with the context and the epoch's record (after validation, before the
            checkpoint); ``ctx.model`` is then the plain model, also under DDP.
        distributed: train with DistributedDataParallel over the initialised process group; default
            (``None``): when ``torch.distributed`` is initialised with more than one process. Each process
            gets ``batch_size / world_size`` samples of every batch (global batch = ``batch_size``); the step
            function sees the DDP module as ``ctx.model`` (its own attributes are at ``ctx.model.module``).
        find_unused_parameters: passed to ``DistributedDataParallel`` (for step functions that leave some
            parameters out of the loss).
        collapse_check: after every epoch (after ``on_epoch_end``), predict a fixed seeded subset of at most
            :data:`COLLAPSE_CHECK_IMAGES` training images in eval mode, record ``train_subset_accuracy`` and
            ``predicted_classes``, and warn with :class:`TrainingCollapseWarning` (rank 0 only) when the
            accuracy is at chance or one class takes at least 90% of the predictions (see
            :func:`collapse_statistics`). It needs ``y`` to be class labels of ``model``'s ``(N, classes)``
            output; other outputs are not checked. Cost: one forward pass over the subset per epoch. With it,
            ``y`` is also checked against the model's outputs before training (labels in ``[0, classes)``,
            from one forward pass of an image).
        fingerprint: extra JSON-serialisable fields (e.g. a defence's hyper-parameters) added to the
            fingerprint of the training state. ``train_state.pt`` records the fingerprint of its run (the
            architecture, hashes of ``x`` and ``y``, the optimizer's class and hyper-parameters, the
            scheduler's class, the step function's name, ``batch_size``, ``seed``, ``shuffle``, ``drop_last``,
            ``grad_clip`` and these fields; not ``epochs``: a resumed run may continue to more epochs, pass
            ``fingerprint={"epochs": epochs}`` where the schedule depends on the total; ``amd train`` records
            ``--epochs`` in its own fingerprint); resuming a state with another fingerprint, or one written by
            an earlier version without one, raises
            :class:`~art_manifold_defenses.fingerprint.FingerprintMismatchError` naming what differs
            (``resume=False`` starts afresh). An unreadable or pickled state is a ``ValueError`` naming the
            file.
    """
    _check_loop_settings(
        epochs=epochs,
        batch_size=batch_size,
        scheduler=scheduler,
        scheduler_interval=scheduler_interval,
        distributed=distributed,
        collapse_check=collapse_check,
    )
    from . import distributed as dist_helpers

    use_ddp = dist_helpers.is_distributed() if distributed is None else distributed
    if use_ddp and not dist_helpers.is_distributed():
        raise ValueError(
            "distributed=True needs an initialised torch.distributed process group with more than one "
            "process (torchrun)"
        )
    rank, world = (dist_helpers.rank(), dist_helpers.world_size()) if use_ddp else (0, 1)
    x_np = check_images(x, "x")
    dev = dist_helpers.process_device(device) if use_ddp else resolve_device(device)
    model.to(dev)
    y_np = check_labels(y, len(x_np), _label_classes(model, x_np, y, dev, class_labels=collapse_check), "y")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (x_val, y_val)")
        check_images(validation_data[0], "validation_data[0]")
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run_fingerprint = train_fingerprint(
        model,
        x_np,
        y_np,
        optimizer,
        scheduler,
        step_fn,
        fingerprint,
        batch_size=batch_size,
        seed=seed,
        shuffle=shuffle,
        drop_last=drop_last,
        grad_clip=grad_clip,
        scheduler_interval=scheduler_interval,
    )
    n = len(x_np)
    batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    if batches == 0:
        raise ValueError(f"no batch to train on: {n} samples with batch_size={batch_size} and drop_last=True")
    ctx = TrainContext(
        model=model,
        optimizer=optimizer,
        device=dev,
        epochs=epochs,
        batches_per_epoch=batches,
        grad_clip=grad_clip,
    )
    probe = _collapse_subset(n, seed) if collapse_check else None

    state_path = Path(checkpoint_dir) / TRAIN_STATE_FILE if checkpoint_dir is not None else None
    start_epoch, history = _resume(
        state_path,
        resume=resume,
        use_ddp=use_ddp,
        rank=rank,
        device=dev,
        fingerprint=run_fingerprint,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        verbose=verbose,
    )

    net: nn.Module = model
    if use_ddp:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )
        verbose = verbose and rank == 0

    x_t, y_t = torch.from_numpy(x_np), torch.from_numpy(y_np)
    for epoch in range(start_epoch, epochs):
        ctx.epoch, ctx.model = epoch, net
        started = time.perf_counter()
        means = _run_epoch(
            ctx,
            step_fn or cross_entropy_step,
            x_t,
            y_t,
            seed=seed,
            shuffle=shuffle,
            batch_size=batch_size,
            rank=rank,
            world=world,
            scheduler=scheduler,
            scheduler_interval=scheduler_interval,
            desc=desc,
            verbose=verbose,
            estimate_epochs=epochs - epoch if epoch == start_epoch else 0,
        )
        ctx.model = model
        record = {
            "epoch": float(epoch + 1),
            **means,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": time.perf_counter() - started,
        }
        if validation_data is not None:
            record["val_accuracy"] = evaluate_accuracy(
                model, validation_data[0], validation_data[1], device=dev
            )
        if on_epoch_end is not None:
            on_epoch_end(ctx, record)
        if (
            probe is not None
        ):  # after on_epoch_end: a trainer may re-calibrate the model there (FPD's batch norm)
            _check_collapse(
                model,
                x_np[probe],
                y_np[probe],
                record,
                epoch=epoch,
                epochs=epochs,
                device=dev,
                warn=rank == 0,
            )
        history.append(record)
        if verbose:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "lr"))
            tqdm.write(f"{desc} epoch {epoch + 1}/{epochs}: {shown}")
        if state_path is not None and rank == 0:
            save_train_state(
                state_path,
                epoch=epoch + 1,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                history=history,
                seed=seed,
                fingerprint=run_fingerprint,
            )
        if world > 1:
            dist_helpers.barrier()
    ctx.model = model
    model.eval()
    return history


def _resume(
    state_path: Path | None,
    *,
    resume: bool,
    use_ddp: bool,
    rank: int,
    device: torch.device,
    fingerprint: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    verbose: bool,
) -> tuple[int, list[dict[str, float]]]:
    """``(epochs done, history)`` of the run's ``train_state.pt`` when there is one to resume (loaded into the
    model, optimizer and scheduler after its fingerprint is checked), else ``(0, [])``."""
    from . import distributed as dist_helpers

    if state_path is None:
        return 0, []
    state_path.parent.mkdir(parents=True, exist_ok=True)
    if use_ddp:  # rank 0 reads the checkpoint and sends it, so every rank resumes from the same epoch
        local = load_train_state(state_path, "cpu") if resume and rank == 0 and state_path.is_file() else None
        state = dist_helpers.broadcast_object(local)
    else:
        state = load_train_state(state_path, device) if resume and state_path.is_file() else None
    start_epoch, history = resume_from(
        state, state_path, fingerprint, model=model, optimizer=optimizer, scheduler=scheduler
    )
    if state is not None and verbose and rank == 0:
        tqdm.write(f"resuming from {state_path} after epoch {start_epoch}")
    return start_epoch, history


def _check_loop_settings(
    *,
    epochs: Any,
    batch_size: Any,
    scheduler: Any,
    scheduler_interval: Any,
    distributed: Any,
    collapse_check: Any,
) -> None:
    """:func:`train`'s settings that need no data: a ``ValueError``/``TypeError`` naming the bad one."""
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError("scheduler must have a .step() method")
    if scheduler_interval not in ("epoch", "batch"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(f"distributed must be a bool or None, got {distributed!r}")
    if not isinstance(collapse_check, bool):
        raise TypeError(f"collapse_check must be a bool, got {collapse_check!r}")


def _run_epoch(
    ctx: TrainContext,
    step: StepFunction,
    x: Tensor,
    y: Tensor,
    *,
    seed: int,
    shuffle: bool,
    batch_size: int,
    rank: int,
    world: int,
    scheduler: Any,
    scheduler_interval: str,
    desc: str,
    verbose: bool,
    estimate_epochs: int = 0,
) -> dict[str, float]:
    """One epoch of steps over ``(x, y)`` in the epoch's seeded order; returns the mean of every logged value
    (over the batches that logged it, and over the ranks). With ``estimate_epochs > 0`` and ``verbose``,
    prints the time estimate of that many epochs after the first :data:`ESTIMATE_AFTER_BATCHES` batches."""
    from . import distributed as dist_helpers

    epoch_seed = _epoch_seed(seed, ctx.epoch)
    # dropout, noise and other draws of this epoch (other ranks: their own stream, so their noise differs)
    torch.manual_seed(epoch_seed if rank == 0 else dist_helpers.derive_seed(epoch_seed, "rank", rank))
    n = len(x)
    order = (
        torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed)) if shuffle else torch.arange(n)
    )
    ctx.model.train()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}  # batches that logged each key (a step function may log a value on some only)
    bar = tqdm(
        range(ctx.batches_per_epoch),
        desc=f"{desc} {ctx.epoch + 1}/{ctx.epochs}",
        disable=not verbose,
        leave=False,
    )
    began = 0.0
    for b in bar:
        if b == 1:  # timed from the end of the first batch (a warm-up: lazy initialisation, allocations)
            began = costs.clock()
        if (
            verbose
            and estimate_epochs
            and b > 1
            and b == min(ESTIMATE_AFTER_BATCHES + 1, ctx.batches_per_epoch - 1)
        ):
            per_batch = (costs.clock() - began) / (b - 1)
            epoch_seconds = per_batch * ctx.batches_per_epoch
            costs.report_estimate(
                f"{estimate_epochs} epochs of {ctx.batches_per_epoch} batches",
                epoch_seconds * estimate_epochs,
                f"batches 2 to {b} took {per_batch:.3g} s each: {costs.format_seconds(epoch_seconds)} per "
                "epoch, "
                "validation and checks not included",
            )
        idx = order[b * batch_size : (b + 1) * batch_size]
        if world > 1:
            idx = _rank_share(idx, order, rank, world)
        xb, yb = x[idx].to(ctx.device, non_blocking=True), y[idx].to(ctx.device, non_blocking=True)
        ctx.batch_index = b
        out = step(ctx, xb, yb)
        if isinstance(out, Tensor):
            if not torch.isfinite(out):
                raise FloatingPointError(f"non-finite loss {out.item()} at epoch {ctx.epoch + 1}, batch {b}")
            ctx.backward_and_step(out)
            logs = {"loss": float(out.detach())}
        else:
            logs = {k: float(v) for k, v in out.items()}
        for key, value in logs.items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
        ctx.global_step += 1
        if scheduler is not None and scheduler_interval == "batch":
            scheduler.step()
        if "loss" in logs:
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
    if scheduler is not None and scheduler_interval == "epoch":
        scheduler.step()
    if world > 1:  # the logged values are averaged over ranks, so every rank keeps the same history
        keys = sorted(sums)
        totals = dist_helpers.all_reduce_sum(
            [sums[k] for k in keys] + [float(counts[k]) for k in keys], device=_collective_device(ctx.device)
        )
        sums = dict(zip(keys, totals[: len(keys)], strict=True))
        counts = {k: int(round(c)) for k, c in zip(keys, totals[len(keys) :], strict=True)}
    return {k: v / counts[k] for k, v in sums.items()}

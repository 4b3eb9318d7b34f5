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

The pieces live beside this module: :class:`TrainContext` and the step functions in ``_training_context``,
one epoch in ``_training_epoch``, prediction in ``_training_predict`` and the collapse check in
``_training_collapse``; every name is importable from here.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._training_collapse import COLLAPSE_CHECK_IMAGES as COLLAPSE_CHECK_IMAGES
from ._training_collapse import COLLAPSE_DOMINANT_SHARE as COLLAPSE_DOMINANT_SHARE
from ._training_collapse import TrainingCollapseWarning as TrainingCollapseWarning
from ._training_collapse import _check_collapse as _check_collapse
from ._training_collapse import _collapse_subset as _collapse_subset
from ._training_collapse import collapse_statistics as collapse_statistics
from ._training_context import StepFunction as StepFunction
from ._training_context import TrainContext as TrainContext
from ._training_context import _epoch_seed as _epoch_seed
from ._training_context import cross_entropy_step as cross_entropy_step
from ._training_epoch import ESTIMATE_AFTER_BATCHES as ESTIMATE_AFTER_BATCHES
from ._training_epoch import _collective_device as _collective_device
from ._training_epoch import _EpochSettings
from ._training_epoch import _rank_share as _rank_share
from ._training_epoch import _run_epoch as _run_epoch
from ._training_predict import evaluate_accuracy as evaluate_accuracy
from ._training_predict import predict_logits as predict_logits
from .train_state import TRAIN_STATE_FILE, load_train_state, resume_from, save_train_state, train_fingerprint
from .utils import check_images, check_labels, probe_forward, resolve_device

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
    _check_loop_settings(epochs, batch_size, scheduler, scheduler_interval, distributed, collapse_check)
    use_ddp, rank, world = _process_group(distributed)
    x_np, y_np, dev = _checked_data(
        model, x, y, validation_data, device, use_ddp=use_ddp, class_labels=collapse_check
    )
    optimizer = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=1e-3)
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
    batches = _batches_per_epoch(len(x_np), batch_size, drop_last)
    ctx = TrainContext(model, optimizer, dev, epochs, batches_per_epoch=batches, grad_clip=grad_clip)
    probe = _collapse_subset(len(x_np), seed) if collapse_check else None

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
    net = _ddp_module(model, dev, find_unused_parameters) if use_ddp else model
    run = _EpochSettings(
        step=step_fn or cross_entropy_step,
        x=torch.from_numpy(x_np),
        y=torch.from_numpy(y_np),
        seed=seed,
        shuffle=shuffle,
        batch_size=batch_size,
        rank=rank,
        world=world,
        scheduler=scheduler,
        scheduler_interval=scheduler_interval,
        desc=desc,
        verbose=verbose and rank == 0,  # under DDP only rank 0 shows progress
    )
    for epoch in range(start_epoch, epochs):
        ctx.epoch, ctx.model = epoch, net
        started = time.perf_counter()
        means = _run_epoch(ctx, run, estimate_epochs=epochs - epoch if epoch == start_epoch else 0)
        ctx.model = model
        record = _epoch_record(ctx, means, started, validation_data)
        if on_epoch_end is not None:
            on_epoch_end(ctx, record)
        if probe is not None:  # after on_epoch_end: a trainer may re-calibrate the model there (FPD's BN)
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
        _finish_epoch(ctx, run, history, state_path, run_fingerprint)
    ctx.model = model
    model.eval()
    return history


def _process_group(distributed: bool | None) -> tuple[bool, int, int]:
    """``(use DDP, rank, world size)``: DDP over the initialised process group when ``distributed`` is True,
    or when it is None and ``torch.distributed`` runs more than one process; else ``(False, 0, 1)``."""
    from . import distributed as dist_helpers

    use_ddp = dist_helpers.is_distributed() if distributed is None else distributed
    if use_ddp and not dist_helpers.is_distributed():
        raise ValueError(
            "distributed=True needs an initialised torch.distributed process group with more than one "
            "process (torchrun)"
        )
    rank, world = (dist_helpers.rank(), dist_helpers.world_size()) if use_ddp else (0, 1)
    return use_ddp, rank, world


def _checked_data(
    model: nn.Module,
    x: Any,
    y: Any,
    validation_data: Any,
    device: str | torch.device | None,
    *,
    use_ddp: bool,
    class_labels: bool,
) -> tuple[np.ndarray, np.ndarray, torch.device]:
    """``(x, y, device)`` checked: the images, the device (this process's one under DDP) with ``model`` moved
    to it, the labels against the model's outputs (see :func:`_label_classes`) and the validation pair."""
    from . import distributed as dist_helpers

    x_np = check_images(x, "x")
    dev = dist_helpers.process_device(device) if use_ddp else resolve_device(device)
    model.to(dev)
    y_np = check_labels(y, len(x_np), _label_classes(model, x_np, y, dev, class_labels=class_labels), "y")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (x_val, y_val)")
        check_images(validation_data[0], "validation_data[0]")
    return x_np, y_np, dev


def _batches_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    """The number of batches of ``n`` samples; a ``ValueError`` when ``drop_last`` leaves none."""
    batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    if batches == 0:
        raise ValueError(f"no batch to train on: {n} samples with batch_size={batch_size} and drop_last=True")
    return batches


def _ddp_module(model: nn.Module, dev: torch.device, find_unused_parameters: bool) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` on this process's device."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[dev.index] if dev.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


def _epoch_record(
    ctx: TrainContext, means: dict[str, float], started: float, validation_data: Any
) -> dict[str, float]:
    """The history entry of the epoch ``ctx`` is at: its number, the mean logged values, the learning rate,
    the seconds since ``started`` and (with ``validation_data``) the validation accuracy of ``ctx.model``."""
    record = {
        "epoch": float(ctx.epoch + 1),
        **means,
        "lr": float(ctx.optimizer.param_groups[0]["lr"]),
        "seconds": time.perf_counter() - started,
    }
    if validation_data is not None:
        record["val_accuracy"] = evaluate_accuracy(
            ctx.model, validation_data[0], validation_data[1], device=ctx.device
        )
    return record


def _finish_epoch(
    ctx: TrainContext,
    run: _EpochSettings,
    history: list[dict[str, float]],
    state_path: Path | None,
    fingerprint: dict[str, Any],
) -> None:
    """After an epoch's record is in ``history``: print it (verbose), write the checkpoint (rank 0) and wait
    for every process."""
    from . import distributed as dist_helpers

    if run.verbose:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in history[-1].items() if k not in ("epoch", "lr"))
        tqdm.write(f"{run.desc} epoch {ctx.epoch + 1}/{ctx.epochs}: {shown}")
    if state_path is not None and run.rank == 0:
        save_train_state(
            state_path,
            epoch=ctx.epoch + 1,
            model=ctx.model,
            optimizer=ctx.optimizer,
            scheduler=run.scheduler,
            history=history,
            seed=run.seed,
            fingerprint=fingerprint,
        )
    if run.world > 1:
        dist_helpers.barrier()


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

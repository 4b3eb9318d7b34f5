"""What the shared training loop hands a step function: :class:`TrainContext` (model, optimizer, device and
where in the run it is), the :data:`StepFunction` type, the plain :func:`cross_entropy_step`, and the seed
of an epoch (:func:`_epoch_seed`) from which its data order and random draws come."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


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


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)

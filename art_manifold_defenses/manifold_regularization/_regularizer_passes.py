"""The forward passes of :class:`~.manifold_regularizer.ManifoldRegularizer` (Jin & Rinard 2020, paper 003,
eq. 15's terms need ``f(x+)``, ``f(x-)`` and every ReLU's pre-activations for both): one pass over the
concatenated batch ``[x, x+, x-]``, or separate passes of the batch's size in one autograd graph, each
returning the recorded layers in the same form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .relu_hooks import ReLURecorder

#: One recorded layer: ``(name, stacked z or None, z+, z-, r+ or None, r- or None)`` (``r``: the ReLU's
#: output).
_Layer = tuple[str, Tensor | None, Tensor, Tensor, Any, Any]


def _concatenated_pass(
    model: nn.Module,
    recorder: ReLURecorder,
    x: Tensor,
    x_plus: Tensor,
    x_minus: Tensor,
    include_clean: bool,
) -> tuple[Tensor | None, Tensor, Tensor, list[_Layer]]:
    """One forward pass over ``[x, x+, x-]``; layers as ``(name, stacked z, z+ rows, z- rows, None,
    None)``."""
    parts = [x, x_plus, x_minus] if include_clean else [x_plus, x_minus]
    batch = x.shape[0]
    with recorder:
        outputs = model(torch.cat(parts))
    chunks = outputs.split(batch)
    layers: list[_Layer] = []
    for name, z in recorder.records:
        if z.shape[0] != batch * len(parts):
            raise ValueError(
                f"ReLU layer {name!r} saw {z.shape[0]} rows for a concatenated batch of {batch * len(parts)}"
            )
        layers.append((name, z, z[-2 * batch : -batch], z[-batch:], None, None))
    return (chunks[0] if include_clean else None), chunks[-2], chunks[-1], layers


def _separate_passes(
    model: nn.Module,
    recorder: ReLURecorder,
    x: Tensor,
    x_plus: Tensor,
    x_minus: Tensor,
    include_clean: bool,
    clean_backward: Callable[[Tensor], Tensor] | None,
) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor, list[_Layer]]:
    """Forward passes over ``x`` (unrecorded; back-propagated at once with ``clean_backward``), ``x+`` and
    ``x-`` in one graph; returns ``(logits, clean loss, f+, f-, layers)`` with layers as
    ``(name, None, z+, z-, r+, r-)`` (``r``: the ReLU's output)."""
    logits, clean_loss = None, None
    with recorder:
        if include_clean:
            recorder.recording = False
            try:
                logits = model(x)
            finally:
                recorder.recording = True
            if clean_backward is not None:
                loss = clean_backward(logits)
                if not isinstance(loss, Tensor) or loss.numel() != 1:
                    raise ValueError(f"clean_backward must return a scalar tensor, got {type(loss).__name__}")
                loss.backward()
                logits, clean_loss = logits.detach(), loss.detach()
            recorder.next_pass()
        f_plus = model(x_plus)
        plus_records, plus_outputs = recorder.records, recorder.outputs
        recorder.next_pass()
        f_minus = model(x_minus)
    minus_records, minus_outputs = recorder.records, recorder.outputs
    if [name for name, _ in plus_records] != [name for name, _ in minus_records]:
        raise ValueError(
            "the model called different ReLU layers for x+ and x-; the Hamming term needs the same ones"
        )
    if len(plus_outputs) != len(plus_records) or len(minus_outputs) != len(minus_records):
        plus_outputs, minus_outputs = [None] * len(plus_records), [None] * len(minus_records)
    layers: list[_Layer] = []
    for (name, z_plus), (_, z_minus), r_plus, r_minus in zip(
        plus_records, minus_records, plus_outputs, minus_outputs, strict=True
    ):
        if z_plus.shape != z_minus.shape or z_plus.shape[0] != x.shape[0]:
            raise ValueError(
                f"ReLU layer {name!r} saw shapes {tuple(z_plus.shape)} and {tuple(z_minus.shape)} for a "
                f"batch of {x.shape[0]}"
            )
        layers.append((name, None, z_plus, z_minus, r_plus, r_minus))
    return logits, clean_loss, f_plus, f_minus, layers

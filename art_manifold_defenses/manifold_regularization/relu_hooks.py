"""Capturing the pre-activations of every ReLU with forward hooks, for the Hamming regularizer.

The Hamming regularizer needs the input of every ReLU (the paper's pre-activations ``z_i``, eq. 4). Any model
built from ``nn.ReLU`` modules works unchanged: :class:`ReLURecorder` registers a pre-forward hook on each of
them for the duration of a ``with`` block and removes every hook on exit, also when the forward pass raises.

A ReLU applied as a function (``torch.relu``, ``F.relu``, ``Tensor.relu`` and their in-place forms) has no
module to hook. The recorder counts such calls during the same forward pass with a ``TorchFunctionMode``
(calls issued *by* a hooked ``nn.ReLU`` module are not counted), so a caller can say clearly that part of the
network is invisible. ReLUs written as ``clamp(min=0)`` / ``clamp_min(0)`` / ``clip(min=0)`` (lower bound 0,
no upper bound), ``torch.maximum`` or ``torch.max`` of a tensor and a zero (scalar or all-zero tensor) and
``F.threshold(x, 0, 0)`` are counted the same way (:func:`is_relu_call`). Known limitation:
``torch.where(x > 0, x, 0)`` and ``x * (x > 0)`` are not detected.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from ..activations import FUNCTIONAL_RELUS, is_relu_call

__all__ = ["FUNCTIONAL_RELUS", "ReLURecorder", "find_relu_modules", "is_relu_call"]

_DROPOUT_ELEMENTWISE = (nn.Dropout,)
_DROPOUT_CHANNELWISE = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def find_relu_modules(
    model: nn.Module, activation_types: Sequence[type[nn.Module]] = (nn.ReLU,)
) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every module of ``model`` that is an instance of ``activation_types``.

    Paper: Jin & Rinard 2020 (paper 003), eq. 7 (the ReLUs whose activation patterns Section 5.3 regularizes);
    module lookup.
    """
    types = tuple(activation_types)
    return [(name, module) for name, module in model.named_modules() if isinstance(module, types)]


class _FunctionalReLUCounter(TorchFunctionMode):
    """Counts functional ReLU calls that do not come from a hooked module."""

    def __init__(self, recorder: ReLURecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.recorder._depth == 0 and is_relu_call(func, args, kwargs):
            self.recorder.functional_calls += 1
        return func(*args, **(kwargs or {}))


class ReLURecorder:
    """Context manager recording the input of every ``nn.ReLU`` call of ``model`` during one forward pass.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 4-5 (the pre-activations ``z_i`` that the Hamming regularizer
    of eqs. 13-14 compares).

    After the block, ``records`` holds ``(layer name, pre-activation tensor)`` in call order (a module called
    twice gives two layers, the second named ``"name#2"``), still attached to the autograd graph, and
    ``outputs`` the matching ReLU outputs (the Hamming regularizer hooks its gradient onto their autograd
    nodes). ``functional_calls`` holds the number of functional ReLU calls made outside hooked modules
    (``detect_functional=True``).

    With ``shared_dropout_chunks=k`` the batch is taken to be ``k`` stacked copies of one batch (x, x+, x-)
    and every active ``nn.Dropout``/``nn.DropoutNd`` module applies the same mask to the ``k`` copies, so the
    regularizers compare the same sub-network on each copy instead of measuring dropout noise.

    With ``shared_dropout_passes=True`` the copies go through the model in separate forward passes inside one
    ``with`` block, separated by :meth:`next_pass`: the masks drawn in the first pass (one per dropout call,
    in call order) are replayed in the later passes. ``records`` and ``functional_calls`` always describe the
    current pass; set ``recording = False`` for a pass whose pre-activations are not needed.

    Args:
        model: the network.
        activation_types: module types whose inputs are recorded (default ``(nn.ReLU,)``).
        detect_functional: count functional ReLU calls (a ``TorchFunctionMode`` active inside the block).
        shared_dropout_chunks: ``None`` (dropout untouched) or the number of stacked copies (>= 2).
        shared_dropout_passes: replay the first pass's dropout masks in every later pass of the block.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        activation_types: Sequence[type[nn.Module]] = (nn.ReLU,),
        detect_functional: bool = True,
        shared_dropout_chunks: int | None = None,
        shared_dropout_passes: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if shared_dropout_chunks is not None and (
            not isinstance(shared_dropout_chunks, int) or shared_dropout_chunks < 2
        ):
            raise ValueError(
                f"shared_dropout_chunks must be None or an integer >= 2, got {shared_dropout_chunks!r}"
            )
        if not isinstance(shared_dropout_passes, bool):
            raise TypeError(
                f"shared_dropout_passes must be a bool, got {type(shared_dropout_passes).__name__}"
            )
        self.model = model
        self.modules = find_relu_modules(model, activation_types)
        self.detect_functional = detect_functional
        self.shared_dropout_chunks = shared_dropout_chunks
        self.shared_dropout_passes = shared_dropout_passes
        self.recording = True
        self.records: list[tuple[str, Tensor]] = []
        #: the output of each recorded call, in the order of ``records`` (what :mod:`._fused` hooks its
        #: gradient to)
        self.outputs: list[Any] = []
        self.functional_calls = 0
        self._handles: list[RemovableHandle] = []
        self._calls: dict[str, int] = {}
        self._depth = 0
        self._mode: _FunctionalReLUCounter | None = None
        self._dropout_inputs: dict[int, Tensor] = {}
        self._masks: list[Tensor] = []
        self._mask_index = 0

    # -- hooks
    # ------------------------------------------------------------------------------------------------
    def _pre_hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            self._depth += 1
            if not self.recording:
                return
            z = inputs[0]
            if getattr(module, "inplace", False):
                z = z.clone()  # an in-place ReLU would overwrite the recorded pre-activation
            count = self._calls.get(name, 0) + 1
            self._calls[name] = count
            self.records.append((name if count == 1 else f"{name}#{count}", z))

        return hook

    def _post_hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        self._depth -= 1
        if self.recording and len(self.outputs) < len(self.records):
            self.outputs.append(output)

    def _dropout_pre_hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if module.training and getattr(module, "p", 0.0) > 0:
            x = inputs[0]
            self._dropout_inputs[id(module)] = x.clone() if getattr(module, "inplace", False) else x

    def _dropout_hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor | None:
        x = self._dropout_inputs.pop(id(module), None)
        if x is None:
            return None
        chunks = int(self.shared_dropout_chunks or 1)
        if x.shape[0] % chunks:
            raise ValueError(f"shared dropout needs a batch of {chunks} equal chunks, got {x.shape[0]} rows")
        p = float(getattr(module, "p", 0.0))
        head = x[: x.shape[0] // chunks]
        shape = (
            head.shape
            if isinstance(module, _DROPOUT_ELEMENTWISE)
            else (*head.shape[:2], *([1] * (head.ndim - 2)))
        )
        if self.shared_dropout_passes and self._mask_index < len(self._masks):
            mask = self._masks[self._mask_index]
            if mask.shape != shape:
                raise ValueError(
                    f"shared dropout across passes: dropout call {self._mask_index + 1} sees shape "
                    f"{tuple(shape)} but "
                    f"drew a mask of shape {tuple(mask.shape)} in the first pass; the passes must have equal "
                    "batches"
                )
        else:
            mask = (torch.rand(shape, device=x.device) >= p).to(x.dtype) / (1.0 - p)
            if self.shared_dropout_passes:
                self._masks.append(mask)
        self._mask_index += 1
        return x * (mask if chunks == 1 else mask.repeat(chunks, *([1] * (mask.ndim - 1))))

    def next_pass(self) -> None:
        """Start a new forward pass inside the block: fresh ``records``, call counts and ``functional_calls``;
        the dropout masks of the first pass are replayed (``shared_dropout_passes=True``)."""
        self.records, self.outputs, self.functional_calls, self._calls, self._depth = [], [], 0, {}, 0
        self._mask_index = 0

    # -- context manager
    # ----------------------------------------------------------------------------------------
    def __enter__(self) -> ReLURecorder:
        self.next_pass()
        self._masks = []
        try:
            for name, module in self.modules:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
                self._handles.append(module.register_forward_hook(self._post_hook))
            if self.shared_dropout_chunks is not None or self.shared_dropout_passes:
                for module in self.model.modules():
                    if isinstance(module, _DROPOUT_ELEMENTWISE + _DROPOUT_CHANNELWISE):
                        self._handles.append(module.register_forward_pre_hook(self._dropout_pre_hook))
                        self._handles.append(module.register_forward_hook(self._dropout_hook))
            if self.detect_functional:
                self._mode = _FunctionalReLUCounter(self)
                self._mode.__enter__()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        if self._mode is not None:
            mode, self._mode = self._mode, None
            mode.__exit__(None, None, None)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._dropout_inputs.clear()
        self._masks = []
        self._depth = 0

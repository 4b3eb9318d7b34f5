"""Small helpers shared across the package: devices, seeds, and the one set of input validators that every
public entry point uses (images against a model, labels, class counts, vote counts, positive integers) plus
the ``argparse`` types of the ``amd`` command (they name the flag and the expected value at parse time).

Every validator raises ``ValueError`` or ``TypeError`` with a message that names the argument and the expected
value.
"""

from __future__ import annotations

import argparse
import math
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

# numpy and torch are imported by the functions that use them, so that the ``argparse`` types below (the
# ``amd`` command builds its parser from them) import neither.

__all__ = [
    "json_safe",
    "write_atomic",
    "write_text_atomic",
    "device_arg",
    "art_device_type",
    "as_float_tensor",
    "check_counts",
    "check_image_tensor",
    "check_images",
    "check_labels",
    "check_nb_classes",
    "check_positive_int",
    "float_list_arg",
    "forward_checked",
    "model_input_channels",
    "model_output_width",
    "non_negative_int_arg",
    "output_dir",
    "positive_float_arg",
    "positive_int_arg",
    "probability_arg",
    "probe_forward",
    "resolve_device",
    "set_seed",
    "unit_interval_arg",
]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available else CPU; ``"cuda"`` without a GPU raises a clear
    ``ValueError``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but CUDA is not available on this machine; use "
            "device='cpu'"
        )
    return dev


def device_arg(text: str) -> str:
    """argparse type of ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine
    at parse time (``amd <command>: error: argument --device: ...``, exit status 2). Only a value that torch
    could read as a CUDA or indexed CPU device imports torch."""
    if text in ("auto", "cpu"):
        return text
    if not text.startswith(("cpu:", "cuda")):  # torch reads no other text as a CPU or CUDA device
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r}: CUDA is not available on this machine; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def art_device_type(device: str | torch.device | None) -> str:
    """ART's ``device_type`` string (``"cpu"`` or ``"gpu"``) for a torch device."""
    return "cpu" if resolve_device(device).type == "cpu" else "gpu"


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _layout_hint(shape: tuple[int, ...], channels: int) -> str:
    """`` (it looks channels-last ...)`` when the last axis of an image batch has the expected channel
    count."""
    if len(shape) == 4 and shape[-1] == channels and shape[1] != channels:
        return " (it looks channels-last, (N, H, W, C): transpose it with x.transpose(0, 3, 1, 2))"
    return ""


def _check_layout(
    shape: tuple[int, ...], name: str, channels: int | None, input_shape: tuple[int, ...] | None
) -> None:
    if input_shape is not None and tuple(shape[1:]) != tuple(input_shape):
        expected = tuple(int(d) for d in input_shape)
        raise ValueError(
            f"{name} must have per-image shape {expected} (NCHW), got {tuple(shape[1:])}"
            + _layout_hint(shape, expected[0])
        )
    if channels is not None and len(shape) == 4 and shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) in NCHW layout (N, {channels}, H, W) for this model, "
            f"got images of shape {tuple(shape[1:])}" + _layout_hint(shape, channels)
        )


def check_images(
    x: Any,
    name: str = "x",
    *,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    ndim: int = 4,
    channels: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Validate an image batch and return it as a float32 numpy array.

    Raises ``ValueError`` naming ``name`` for a wrong rank, an empty batch, NaN/Inf values, values outside
    ``clip_values`` (e.g. images in [0, 255] for a model on [0, 1]), a channel count other than ``channels``
    or a per-image shape other than ``input_shape`` (with a hint when the batch looks channels-last);
    ``TypeError`` for non-numeric or boolean input.
    """
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds here
        raise TypeError(f"{name} must be an array of images, got {type(x).__name__}") from exc
    if (
        arr.dtype == np.bool_
        or not np.issubdtype(arr.dtype, np.number)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions (N, C, H, W), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape})")
    _check_layout(arr.shape, name, channels, input_shape)
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf values (expected finite values)")
    if clip_values is not None:
        low, high = clip_values
        if arr.min() < low - 1e-6 or arr.max() > high + 1e-6:
            raise ValueError(
                f"{name} must lie in [{low}, {high}], got values in [{arr.min():.4g}, {arr.max():.4g}]"
            )
    return arr


def check_image_tensor(
    x: Any,
    name: str = "x",
    *,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    channels: int | None = None,
) -> None:
    """:func:`check_images` for a tensor inside a module's ``forward`` (no copy to the host): a non-empty
    finite NCHW float batch within ``clip_values`` with ``channels`` channels. Costs one reduction (a device
    sync on a GPU)."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must be a real-valued tensor, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    _check_layout(tuple(x.shape), name, channels, None)
    low, high = torch.aminmax(x.detach().float())
    low_value, high_value = float(low), float(high)
    if not (math.isfinite(low_value) and math.isfinite(high_value)):
        raise ValueError(f"{name} contains NaN or Inf values (expected finite values)")
    if clip_values is not None and (low_value < clip_values[0] - 1e-6 or high_value > clip_values[1] + 1e-6):
        raise ValueError(
            f"{name} must lie in [{clip_values[0]}, {clip_values[1]}], got values in [{low_value:.4g}, "
            f"{high_value:.4g}]"
        )


def check_labels(y: Any, n: int, num_classes: int, name: str = "y") -> np.ndarray:
    """Validate labels (indices or one-hot) for ``n`` samples and return int64 indices in
    ``[0, num_classes)``; booleans and non-numeric labels raise ``TypeError``."""
    import numpy as np
    import torch

    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if (
        arr.dtype == np.bool_
        or not np.issubdtype(arr.dtype, np.number)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(f"{name} must hold integer class indices (or one-hot rows), got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == num_classes:
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be class indices of shape (N,) or one-hot (N, {num_classes}), got shape {arr.shape}"
        )
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} labels for {n} inputs")
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.isfinite(arr).all() and np.all(np.equal(np.mod(arr, 1), 0))):
            raise ValueError(f"{name} must hold integer class indices")
    arr = arr.astype(np.int64)
    if len(arr) and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes - 1}], got values in [{arr.min()}, {arr.max()}]"
        )
    return arr


def json_safe(value: Any) -> Any:
    """``value`` made JSON-safe for a report or a record: string keys, lists for tuples, Python scalars for
    NumPy scalars, ``None`` for non-finite floats; other values are returned as they are."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_atomic(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, suffix: str = ".tmp"
) -> Path:
    """Call ``write(tmp)`` on a sibling of ``path`` named with ``suffix``, then ``os.replace`` it onto
    ``path``, so that a reader (or a run killed mid-write) never sees a partial file; creates the parent
    folder. Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + suffix)
    write(tmp)
    os.replace(tmp, target)
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomic`). Returns the path."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def as_float_tensor(x: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    """A float32 tensor on ``device`` from a numpy array or tensor."""
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``; else ``ValueError`` naming
    ``name``."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_counts(counts: Any, name: str = "counts", *, ndim: int | None = None) -> np.ndarray:
    """Vote counts as an int64 array: integers ``>= 0`` (no NaN, no negative or fractional count)."""
    import numpy as np

    arr = np.asarray(counts)
    if (
        arr.dtype == np.bool_
        or not np.issubdtype(arr.dtype, np.number)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(f"{name} must be integer vote counts, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any() or (np.mod(arr, 1) != 0).any():
        raise ValueError(
            f"{name} must be non-negative integer vote counts, got {arr.tolist() if arr.size <= 20 else arr}"
        )
    return arr.astype(np.int64)


def model_input_channels(model: nn.Module) -> int | None:
    """The input channels of the first ``Conv2d`` a model registers (``None`` for a model without one): a
    cheap guess of the channels it expects, used to name a channels-last or wrong-channel batch before torch
    fails on it."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return None


def forward_checked(
    model: nn.Module, x: Any, name: str = "x", *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``model(x)`` for a float32 batch ``x`` (numpy or tensor), where a forward pass that torch refuses
    (wrong channel count, channels-last layout, wrong image size) becomes a ``ValueError`` naming ``name``,
    its shape and, when the model has a convolution, the channels it expects. Used on the first batch of
    public entry points."""
    batch = as_float_tensor(x, device)
    try:
        return model(batch)
    except RuntimeError as exc:
        expected = model_input_channels(model)
        _check_layout(tuple(batch.shape), name, expected, None)
        raise ValueError(
            f"{name} of shape {tuple(batch.shape)} does not fit the model: {str(exc).splitlines()[0]}"
        ) from exc


def probe_forward(
    model: nn.Module, x: Any, name: str = "x", *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """:func:`forward_checked` in eval mode without gradients: one look at what a model returns for ``x``
    (e.g. its first image), before a public entry point starts its real work. Side-effect free: the training
    mode and the random number generators (a stochastic model draws noise) are restored, so results do not
    depend on the look."""
    import torch

    dev = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.no_grad():
            return forward_checked(model, x, name, device=dev)
    finally:
        model.train(was_training)


def model_output_width(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: torch.device | str = "cpu",
    name: str = "input_shape",
) -> int:
    """The number of outputs of ``model`` on one all-zero input of ``input_shape`` (:func:`probe_forward`). A
    model that cannot run on that shape raises ``ValueError`` naming ``name``."""
    import numpy as np
    import torch

    out = probe_forward(
        model, np.zeros((1, *tuple(int(d) for d in input_shape)), dtype=np.float32), name, device=device
    )
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ValueError(
            "the model must return logits of shape (N, classes), got "
            f"{getattr(out, 'shape', type(out).__name__)}"
        )
    return int(out.shape[1])


def check_nb_classes(
    nb_classes: Any,
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    name: str = "nb_classes",
    device: torch.device | str = "cpu",
) -> int:
    """``nb_classes`` as an ``int`` if it is an integer >= 2 equal to the model's number of outputs
    (:func:`model_output_width`); otherwise ``ValueError`` naming ``name`` and the model's width."""
    count = check_positive_int(nb_classes, name, minimum=2)
    width = model_output_width(model, input_shape, device=device)
    if width != count:
        raise ValueError(
            f"{name}={count} does not match the model, which returns {width} logits per image; pass "
            f"{name}={width}"
        )
    return count


def output_dir(path: Any, flag: str = "--out") -> Path:
    """``path`` as a folder that exists (created if needed); one that cannot be (a regular file on the way, no
    permission) is a ``ValueError`` naming ``flag``. Commands call it before any work, so they fail at
    once."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {out} cannot be used as an output folder: {exc.strerror or exc}") from exc
    if not out.is_dir():
        raise ValueError(f"{flag} {out} is a file, not a folder")
    return out


# ------------------------------------------------------------------------------------------------ argparse
# types
def _parse_number(text: str, kind: type, expected: str, accept: Any) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int_arg(text: str) -> int:
    """``argparse`` type: an integer >= 1 (argparse names the flag in its error)."""
    return int(_parse_number(text, int, "an integer >= 1", lambda v: v >= 1))


def non_negative_int_arg(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    return int(_parse_number(text, int, "an integer >= 0", lambda v: v >= 0))


def positive_float_arg(text: str) -> float:
    """``argparse`` type: a finite number > 0."""
    return float(_parse_number(text, float, "a finite number > 0", lambda v: math.isfinite(v) and v > 0))


def non_negative_float_arg(text: str) -> float:
    """``argparse`` type: a finite number >= 0."""
    return float(_parse_number(text, float, "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0))


def probability_arg(text: str) -> float:
    """``argparse`` type: a probability strictly between 0 and 1."""
    return float(_parse_number(text, float, "a number in (0, 1)", lambda v: 0 < v < 1))


def unit_interval_arg(text: str) -> float:
    """``argparse`` type: a number in [0, 1] (e.g. an l-inf radius in [0, 1] pixel units)."""
    return float(_parse_number(text, float, "a number in [0, 1]", lambda v: 0 <= v <= 1))


def float_list_arg(text: str) -> list[float]:
    """``argparse`` type: a comma-separated list of finite numbers >= 0 (e.g. ``0.25,0.5,1``)."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers >= 0, got {text!r}")
    return [non_negative_float_arg(item) for item in items]

"""The manifold-regularization terms of Jin & Rinard (eq. 15) computed for a model and a batch:
:class:`ManifoldRegularizer` draws the perturbed pair ``x+ = x + rho``, ``x- = x - rho`` (eq. 8), runs the
forward passes while recording every ReLU's pre-activations, and applies the equations of :mod:`.regularizers`
(eq. 11 or eq. 2, eqs. 13-14) to them. Machinery: one forward pass over ``[x, x+, x-]`` or three passes of the
batch's size in one autograd graph (the same values where the model has no batch-statistics layer; cheaper on
CPU), shared dropout masks, functional-ReLU detection, and the fast Hamming forms of :mod:`._fused`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..utils import resolve_device
from ._fused import (
    _check_alpha,
    _pair_distances_and_disagreements,
    _Workspace,
    fused_hamming_layer_distances,
    graph_nodes,
    hamming_through_relu_nodes,
    relu_pattern_disagreements,
)
from ._params import _check_non_negative, _SettableParams
from ._regularizer_passes import _concatenated_pass, _Layer, _separate_passes
from .perturbation import NORMS, perturbed_pair, sample_maximal_perturbation
from .regularizers import (
    _FUNCTIONAL_POLICIES,
    BATCHING_MODES,
    INTRINSIC_TERMS,
    _check_hamming_form,
    _check_intrinsic_scale,
    dense_intrinsic_regularizer,
    hamming_term_from_distances,
    intrinsic_regularizer,
    uses_batch_statistics,
)
from .relu_hooks import ReLURecorder

__all__ = ["ManifoldRegularizer", "RegularizerOutput"]


@dataclass
class RegularizerOutput:
    """What one call of :class:`ManifoldRegularizer` computes.

    Paper: Jin & Rinard 2020 (paper 003), the terms of eq. 15 (intrinsic eq. 11 / eq. 2, Hamming eqs. 13-14);
    a result container.

    Attributes:
        logits: the model's logits on the clean batch (``None`` with ``include_clean=False``); use them for
            the loss.
        intrinsic: the intrinsic term (sparse or dense; a zero tensor when not requested).
        hamming: the Hamming term (a zero tensor when not requested): eq. 13, squared per sample, or unsquared
            (``hamming_form``).
        layer_hamming: per layer, the batch mean of the normalised per-sample distances, shape ``(layers,)``
            (empty when not requested); their mean over layers is the mean unsquared distance (a diagnostic).
        layer_names: the recorded ReLU layers, in call order.
        pattern_agreement: per layer, the fraction of ReLUs whose activation pattern (``z > 0``) is the same
            for ``x+`` and ``x-`` (detached floats).
        layer_sizes: ReLU inputs per sample in each layer.
        functional_relus: functional ReLU calls the hooks could not see (0 when detection is off).
        x_plus, x_minus: the perturbed inputs.
        clean_loss: with ``clean_backward``, the (already back-propagated, detached) clean loss; else
            ``None``.
    """

    logits: Tensor | None
    intrinsic: Tensor
    hamming: Tensor
    layer_hamming: Tensor
    layer_names: list[str] = field(default_factory=list)
    pattern_agreement: list[float] = field(default_factory=list)
    layer_sizes: list[int] = field(default_factory=list)
    functional_relus: int = 0
    x_plus: Tensor | None = None
    x_minus: Tensor | None = None
    clean_loss: Tensor | None = None


class ManifoldRegularizer(_SettableParams):
    """Sparse manifold regularizers of a network on a batch (Jin & Rinard, "Manifold Regularization for
    Locally Stable Deep Neural Networks", ICLR 2021 submission, https://openreview.net/forum?id=bhKQ7P7gyLA;
    arXiv:2003.04286).

    For each input ``x`` a random maximal perturbation ``rho`` (a vertex of the l-inf eps-ball, or a point of
    the l2 eps-sphere) gives ``x+ = x + rho`` and ``x- = x - rho`` (section 5.4), clipped to ``clip_values``.
    One forward pass over ``[x, x+, x-]`` then gives

    * the sparse intrinsic term ``intrinsic_scale * mean ||f(x+) - f(x-)||^2`` on the logits (eq. 11, whose
      constant ``1 / (c^2 N)`` with ``c = 2`` gives ``intrinsic_scale = 0.5``), or the dense heat-kernel
      Laplacian over all ``x+``/``x-`` of the batch (eq. 2, ``intrinsic="dense"``, scale ``dense_scale``;
      ``intrinsic_scale`` does not apply to it);
    * the Hamming term (eq. 13): ``|tanh(alpha z+) - tanh(alpha z-)|`` (eq. 14) on the input of every
      ``nn.ReLU``, l2 norm per layer divided by twice the layer size, averaged over the layers (section 5.4):
      that is the per-sample distance ``d_H(x+, x-)``, which eq. 13 squares (``hamming_form="squared"``); mean
      over the batch. ``hamming_form="unsquared"`` (``mean d_H``, the reading of earlier versions) is
      ``1 / d_H`` times stronger: at initialisation about 3,500x on ``cw_mnist`` (``d_H`` about 3e-4) and
      1,200x on ``cw_mnist_paper``; with the paper's weights it made training collapse to a constant network.

    Batching (``batching``, an implementation choice that changes no value where the model has no
    batch-statistics layer): ``"concatenated"`` runs one forward pass over the ``3N`` rows ``[x, x+, x-]``;
    ``"separate"`` runs three forward passes of ``N`` rows in one autograd graph (one backward; with
    ``shared_dropout`` the dropout masks drawn in the first pass are replayed in the other two). On CPU the
    separate passes are faster: large ``3N``-row activations (``cw_mnist`` at batch 128: 38 MB per conv layer)
    exceed glibc's 32 MiB ``mmap`` threshold, so every step pays fresh page faults for them (measured with
    ``bench/manifold_regularization.py``; the clean pass also skips the hooks). ``"auto"`` picks
    ``"separate"`` for a batch on CPU and a model without a BatchNorm layer that uses batch statistics
    (training mode, or no running statistics), and ``"concatenated"`` otherwise (GPUs, BatchNorm models: there
    the statistics are those of the concatenated batch, as documented).

    Known limitations: only ReLUs that are ``nn.ReLU`` modules (or ``activation_types``) are seen; functional
    ReLUs are detected and, by default, refused. With BatchNorm in training mode the statistics are those of
    the concatenated batch. ``"auto"`` recognises torch's BatchNorm layers only: a custom layer that mixes
    rows of a batch needs ``batching="concatenated"`` to keep that behaviour. Dropout masks are shared across
    the three copies (``shared_dropout=True``, a choice of this package: the paper does not discuss dropout)
    so that the terms do not measure dropout noise.

    Args:
        eps: radius of the resampled neighbourhood (paper: 8/255 on CIFAR-10, 0.3 on MNIST, ramped up in
            training).
        norm: ``"linf"`` (paper) or ``"l2"``.
        alpha: tanh sharpness of the Hamming relaxation (paper: 8); ``float('inf')`` for the exact distance.
        intrinsic: ``"sparse"`` (paper), ``"dense"`` (ablation) or ``None`` (no intrinsic term).
        hamming: compute the Hamming term.
        hamming_form: ``"squared"`` (eq. 13, default) or ``"unsquared"`` (earlier versions of this package).
        intrinsic_scale: factor of the sparse intrinsic term (eq. 11: 0.5; earlier versions: 1.0).
        dense_scale: heat-kernel scale ``s`` of the dense term (paper: 2).
        clip_values: valid input range for ``x`` and ``x+-`` (``None``: no clipping and no range check).
        functional_relus: ``"raise"`` | ``"warn"`` | ``"ignore"`` when the model applies ReLUs as functions.
        shared_dropout: one dropout mask for ``x``, ``x+`` and ``x-``.
        activation_types: module types whose inputs are the Hamming pre-activations.
        batching: ``"concatenated"`` (default: one pass) | ``"separate"`` | ``"auto"`` (see above; the trainer
            uses ``"auto"``).
        device: device the batch is moved to (default: the batch's own device).
    """

    params = [
        "eps",
        "norm",
        "alpha",
        "intrinsic",
        "hamming",
        "hamming_form",
        "intrinsic_scale",
        "dense_scale",
        "clip_values",
        "functional_relus",
        "shared_dropout",
        "activation_types",
        "batching",
        "device",
    ]

    def __init__(
        self,
        *,
        eps: float = 8 / 255,
        norm: str = "linf",
        alpha: float = 8.0,
        intrinsic: str | None = "sparse",
        hamming: bool = True,
        hamming_form: str = "squared",
        intrinsic_scale: float = 0.5,
        dense_scale: float = 2.0,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        functional_relus: str = "raise",
        shared_dropout: bool = True,
        activation_types: Sequence[type[nn.Module]] = (nn.ReLU,),
        batching: str = "concatenated",
        device: str | torch.device | None = None,
    ) -> None:
        self.eps = eps
        self.norm = norm
        self.alpha = alpha
        self.intrinsic = intrinsic
        self.hamming = hamming
        self.hamming_form = hamming_form
        self.intrinsic_scale = intrinsic_scale
        self.dense_scale = dense_scale
        self.clip_values = clip_values
        self.functional_relus = functional_relus
        self.shared_dropout = shared_dropout
        self.activation_types = tuple(activation_types)
        self.batching = batching
        self.device = device
        self._check_params()
        self._workspace = _Workspace()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_workspace"] = None  # buffers and weak references are per process; a copy starts empty
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._workspace = _Workspace()

    def _check_params(self) -> None:
        _check_non_negative(self.eps, "eps")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        _check_alpha(self.alpha)
        if self.intrinsic not in INTRINSIC_TERMS:
            raise ValueError(f"intrinsic must be one of {INTRINSIC_TERMS}, got {self.intrinsic!r}")
        if not isinstance(self.hamming, bool):
            raise TypeError(f"hamming must be a bool, got {type(self.hamming).__name__}")
        if self.intrinsic is None and not self.hamming:
            raise ValueError("nothing to compute: intrinsic=None and hamming=False")
        _check_hamming_form(self.hamming_form)
        _check_intrinsic_scale(self.intrinsic_scale)
        if (
            isinstance(self.dense_scale, bool)
            or not isinstance(self.dense_scale, (int, float))
            or not self.dense_scale > 0
        ):
            raise ValueError(f"dense_scale must be a number > 0, got {self.dense_scale!r}")
        if self.clip_values is not None:
            if len(self.clip_values) != 2 or not self.clip_values[0] < self.clip_values[1]:
                raise ValueError(
                    f"clip_values must be None or (low, high) with low < high, got {self.clip_values!r}"
                )
        if self.functional_relus not in _FUNCTIONAL_POLICIES:
            raise ValueError(
                f"functional_relus must be one of {_FUNCTIONAL_POLICIES}, got {self.functional_relus!r}"
            )
        if not isinstance(self.shared_dropout, bool):
            raise TypeError(f"shared_dropout must be a bool, got {type(self.shared_dropout).__name__}")
        if not self.activation_types or not all(
            isinstance(t, type) and issubclass(t, nn.Module) for t in self.activation_types
        ):
            raise TypeError(
                "activation_types must be a non-empty sequence of nn.Module subclasses, got "
                f"{self.activation_types!r}"
            )
        if self.batching not in BATCHING_MODES:
            raise ValueError(f"batching must be one of {BATCHING_MODES}, got {self.batching!r}")
        if self.device is not None:
            resolve_device(self.device)

    def resolve_batching(self, model: nn.Module, device: torch.device) -> str:
        """``"concatenated"`` or ``"separate"``: the mode a call with ``model`` and a batch on ``device``
        uses."""
        if self.batching != "auto":
            return self.batching
        if device.type != "cpu" or uses_batch_statistics(model):
            return "concatenated"
        return "separate"

    def _check_batch(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty batch of shape (N, ...), got shape {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if self.device is not None:
            x = x.to(resolve_device(self.device))
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or Inf values")
        if self.clip_values is not None:
            low, high = self.clip_values
            if float(x.min()) < low - 1e-6 or float(x.max()) > high + 1e-6:
                raise ValueError(
                    f"x must lie in [{low}, {high}], got values in [{float(x.min()):.4g}, "
                    f"{float(x.max()):.4g}]"
                )
        return x

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        *,
        eps: float | None = None,
        generator: torch.Generator | None = None,
        perturbation: Tensor | None = None,
        include_clean: bool = True,
        clean_backward: Callable[[Tensor], Tensor] | None = None,
        outputs_in_loss: bool = False,
    ) -> RegularizerOutput:
        """Compute the requested terms for ``model`` on the batch ``x`` (gradients flow to the model).

        Args:
            model: the network (in the mode the caller chose: ``train()`` while training).
            x: a batch (N, ...) in ``clip_values``.
            eps: overrides ``self.eps`` for this call (schedules).
            generator: ``torch.Generator`` on the batch's device for the draw of ``rho``.
            perturbation: an explicit ``rho`` (shape of ``x``) instead of a random draw.
            include_clean: also pass ``x`` itself (its logits are returned for the classification loss).
            clean_backward: separate passes only: a function of the clean logits returning a scalar loss (e.g.
                the cross-entropy), back-propagated at once (gradients accumulate in the parameters'
                ``.grad``) so that the clean pass's graph is freed before the passes over ``x+`` and ``x-``
                run: the same gradients as back-propagating the sum, with a third less peak memory. The
                returned logits are then detached and ``clean_loss`` holds the loss.
            outputs_in_loss: the caller promises that the loss it back-propagates depends on ``f(x+)`` and
                ``f(x-)`` (as eq. 15's intrinsic term does, even with weight 0). With separate passes the
                Hamming gradient is then added inside each ReLU's own backward instead of being summed with it
                afterwards (the same gradient; on CPU it saves a layer-sized allocation and two passes over it
                per layer). A ReLU whose output does not reach ``f`` still takes the general path.

        Raises:
            ValueError: bad batch, a model without ReLU modules when ``hamming=True``, functional ReLUs with
                ``functional_relus="raise"``, or ``clean_backward`` without separate passes and
                ``include_clean``.
        """
        x = self._check_batch(x)
        self._workspace.begin()
        workspace = (
            self._workspace if x.device.type == "cpu" else None
        )  # other devices cache memory themselves
        rho = self._perturbation(x, self.eps if eps is None else eps, generator, perturbation)
        x_plus, x_minus = perturbed_pair(x, rho, clip_values=self.clip_values)
        batch = x.shape[0]
        separate = self.resolve_batching(model, x.device) == "separate"
        if clean_backward is not None and not (separate and include_clean):
            raise ValueError(
                "clean_backward needs include_clean=True and separate passes (batching='separate', or 'auto' "
                "resolving to it: see resolve_batching)"
            )
        recorder = ReLURecorder(
            model,
            activation_types=self.activation_types,
            detect_functional=self.functional_relus != "ignore",
            shared_dropout_chunks=None
            if separate or not self.shared_dropout
            else (3 if include_clean else 2),
            shared_dropout_passes=separate and self.shared_dropout,
        )
        if self.hamming and not recorder.modules:
            raise ValueError(
                f"the Hamming regularizer found no {[t.__name__ for t in self.activation_types]} module in "
                f"{type(model).__name__}; build the model from nn.ReLU modules (or set activation_types, or "
                "hamming=False)"
            )
        if separate:
            logits, clean_loss, f_plus, f_minus, layers = self._separate_passes(
                model, recorder, x, x_plus, x_minus, include_clean, clean_backward
            )
        else:
            logits, f_plus, f_minus, layers = self._concatenated_pass(
                model, recorder, x, x_plus, x_minus, include_clean
            )
            clean_loss = None
        self._handle_functional(recorder.functional_calls, model)
        intrinsic = self._intrinsic(f_plus, f_minus, x_plus, x_minus)
        reached = graph_nodes(f_plus, f_minus) if outputs_in_loss and self.hamming and separate else set()
        hamming, layer_hamming, names, sizes, agreement = self._hamming(layers, batch, workspace, reached)
        return RegularizerOutput(
            logits=logits,
            intrinsic=intrinsic,
            hamming=hamming,
            layer_hamming=layer_hamming,
            layer_names=names,
            pattern_agreement=agreement,
            layer_sizes=sizes,
            functional_relus=recorder.functional_calls,
            x_plus=x_plus,
            x_minus=x_minus,
            clean_loss=clean_loss,
        )

    def _perturbation(
        self, x: Tensor, eps: float, generator: torch.Generator | None, perturbation: Tensor | None
    ) -> Tensor:
        """``rho``: a fresh draw on the eps-sphere (eq. 8's maximal perturbation) or the caller's, checked."""
        if perturbation is None:
            return sample_maximal_perturbation(x, eps=eps, norm=self.norm, generator=generator)
        if perturbation.shape != x.shape:
            raise ValueError(
                f"perturbation must have the shape of x {tuple(x.shape)}, got {tuple(perturbation.shape)}"
            )
        return perturbation.to(device=x.device, dtype=x.dtype)

    def _intrinsic(self, f_plus: Tensor, f_minus: Tensor, x_plus: Tensor, x_minus: Tensor) -> Tensor:
        """The intrinsic term: eq. 11 (``sparse``), the dense graph Laplacian (``dense``) or zero."""
        if self.intrinsic == "sparse":
            return intrinsic_regularizer(f_plus, f_minus, scale=self.intrinsic_scale)
        if self.intrinsic == "dense":
            return dense_intrinsic_regularizer(
                torch.cat([f_plus, f_minus]), torch.cat([x_plus, x_minus]), scale=self.dense_scale
            )
        return f_plus.new_zeros(())

    def _hamming(
        self, layers: list[_Layer], batch: int, workspace: _Workspace | None, reached: set[Any]
    ) -> tuple[Tensor, Tensor, list[str], list[int], list[float]]:
        """The Hamming term of eqs. 13-14 over the recorded layers (zero with ``hamming=False``), each layer's
        mean distance, the layers' names and sizes, and the share of ReLUs taking the same branch for x+ and
        x- per layer.
        """
        names, columns, disagree, sizes = [], [], [], []
        for name, stacked, z_plus, z_minus, r_plus, r_minus in layers:
            names.append(name)
            sizes.append(int(z_plus[0].numel()))
            if not self.hamming:
                count = relu_pattern_disagreements(z_plus, z_minus)
            elif stacked is None:  # the distances and the ReLU pattern disagreements in one pass
                fast = (
                    hamming_through_relu_nodes(
                        z_plus, z_minus, r_plus, r_minus, self.alpha, workspace, reached
                    )
                    if reached
                    else None
                )
                distances, count = (
                    fast
                    if fast is not None
                    else _pair_distances_and_disagreements(z_plus, z_minus, self.alpha, workspace)
                )
                columns.append(distances)
            else:
                columns.append(fused_hamming_layer_distances(stacked, batch=batch, alpha=self.alpha))
                count = relu_pattern_disagreements(z_plus, z_minus)
            disagree.append(count)
        counts = torch.stack(disagree).tolist() if disagree else []
        agreement = [1.0 - count / (size * batch) for count, size in zip(counts, sizes, strict=True)]
        if not self.hamming or not columns:
            zero = layers[0][2].new_zeros(()) if layers else torch.zeros(())
            return zero, zero.new_zeros((0,)), names, sizes, agreement
        per_layer = torch.stack(columns, dim=1)  # (batch, layers)
        hamming = hamming_term_from_distances(per_layer, form=self.hamming_form)
        return hamming, per_layer.detach().mean(dim=0), names, sizes, agreement

    # the forward passes live in :mod:`._regularizer_passes`
    _concatenated_pass = staticmethod(_concatenated_pass)
    _separate_passes = staticmethod(_separate_passes)

    def _handle_functional(self, calls: int, model: nn.Module) -> None:
        if calls == 0 or self.functional_relus == "ignore" or not self.hamming:
            return
        message = (
            f"{type(model).__name__} applies ReLU as a function (torch.relu / F.relu / Tensor.relu, "
            "clamp(min=0), "
            f"maximum(x, 0), threshold(x, 0, 0)) {calls} time(s) per "
            "forward pass; forward hooks cannot see those pre-activations, so the Hamming regularizer would "
            "ignore them. "
            "Use nn.ReLU modules, or pass functional_relus='warn' or 'ignore' to accept a partial Hamming "
            "term."
        )
        if self.functional_relus == "raise":
            raise ValueError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

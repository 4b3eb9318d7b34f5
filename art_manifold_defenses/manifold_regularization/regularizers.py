"""The manifold regularizers of Jin & Rinard: sparse intrinsic (eq. 11), Hamming (eqs. 13-14) and dense
(eq. 2).

The Hamming term is eq. 13 with the distance that Section 5.4 describes: per sample, the l2 norm of the
relaxed distances (eq. 14) of each ReLU layer divided by twice the layer's size, averaged over the layers,
then **squared** (eq. 13 regularizes ``d_H(x+, x-)^2``, as eq. 11 squares the output difference); mean over
the batch. The sparse intrinsic term carries eq. 11's constant ``1 / (c^2 N)`` with ``c = 2`` samples per
neighbourhood: the ``N`` pairs counted in both orders give ``(1/2) mean_i ||f(x+_i) - f(x-_i)||^2``. Earlier
versions of this package used the unsquared distance and no 1/2; both stay available
(``hamming_form="unsquared"``, ``intrinsic_scale=1.0``).

Each function here implements one equation on tensors. :class:`~.manifold_regularizer.ManifoldRegularizer`
applies them to a model and a batch (forward passes, ReLU recording, batching); the fast forms of the Hamming
term it uses (hand-written autograd, cache-sized blocks, reused buffers: the same values) live in the private
module :mod:`._fused`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._fused import (
    _check_alpha,
    fused_hamming_layer_distances,
    fused_hamming_pair_distances,
    relu_pattern_disagreements,
)

__all__ = [
    "BATCHING_MODES",
    "HAMMING_FORMS",
    "INTRINSIC_TERMS",
    "dense_intrinsic_regularizer",
    "fused_hamming_layer_distances",
    "fused_hamming_pair_distances",
    "hamming_layer_distances",
    "hamming_layer_terms",
    "hamming_regularizer",
    "hamming_relaxation",
    "hamming_term_from_distances",
    "heat_kernel_weights",
    "intrinsic_regularizer",
    "relu_pattern_disagreements",
    "uses_batch_statistics",
]

INTRINSIC_TERMS = ("sparse", "dense", None)
_FUNCTIONAL_POLICIES = ("raise", "warn", "ignore")
#: How :class:`ManifoldRegularizer` sends ``x``, ``x+`` and ``x-`` through the model.
BATCHING_MODES = ("auto", "concatenated", "separate")
#: How the per-sample Hamming distance enters the loss: ``"squared"`` (eq. 13, the default) or ``"unsquared"``
#: (the reading of this package's earlier versions, about 3,500x stronger than eq. 13 at initialisation on
#: C&W's MNIST net).
HAMMING_FORMS = ("squared", "unsquared")


def intrinsic_regularizer(f_plus: Tensor, f_minus: Tensor, *, scale: float = 0.5) -> Tensor:
    """Sparse intrinsic regularizer (eq. 11 with c = 2, section 5.4):
    ``scale * mean_i ||f(x+_i) - f(x-_i)||_2^2``.

    Paper: Jin & Rinard 2020 (paper 003), eq. 11 (Section 5.2) in the form of Section 5.4.

    ``f`` is the network output (the logits, eq. 6). The heat-kernel weight ``L(x+, x-)`` is dropped because
    ``||x+ - x-||`` is the same for every pair (section 5.4). ``scale = 0.5`` is eq. 11's ``1 / (c^2 N)`` with
    ``c = 2``: each of the ``N`` neighbourhoods holds the pair ``(x+, x-)``, counted as ``(j, k)`` and
    ``(k, j)``, so ``(1 / 4N) * 2 * sum_i = (1/2) mean_i``; ``scale = 1.0`` is the reading of earlier
    versions. Returns a scalar.
    """
    if f_plus.shape != f_minus.shape:
        raise ValueError(
            f"f_plus and f_minus must have the same shape, got {tuple(f_plus.shape)} and "
            f"{tuple(f_minus.shape)}"
        )
    if f_plus.ndim < 1 or f_plus.shape[0] == 0:
        raise ValueError(f"f_plus must be a non-empty batch, got shape {tuple(f_plus.shape)}")
    _check_intrinsic_scale(scale, "scale")
    return (f_plus - f_minus).flatten(1).pow(2).sum(dim=1).mean() * scale


def hamming_relaxation(z_plus: Tensor, z_minus: Tensor, *, alpha: float = 8.0) -> Tensor:
    """Continuous relaxation of the Hamming distance between activation patterns (eq. 14), element-wise:
    ``H_alpha(z+, z-) = |tanh(alpha z+) - tanh(alpha z-)|``.

    Paper: Jin & Rinard 2020 (paper 003), eq. 14 (Section 5.3).

    ``alpha = inf`` gives the limit ``|sign(z+) - sign(z-)|``: 2 where the two ReLUs take different branches,
    0 where they agree (1 if exactly one pre-activation is 0).
    """
    if z_plus.shape != z_minus.shape:
        raise ValueError(
            f"z_plus and z_minus must have the same shape, got {tuple(z_plus.shape)} and "
            f"{tuple(z_minus.shape)}"
        )
    _check_alpha(alpha)
    if math.isinf(alpha):
        return (torch.sign(z_plus) - torch.sign(z_minus)).abs()
    return (torch.tanh(alpha * z_plus) - torch.tanh(alpha * z_minus)).abs()


def hamming_layer_distances(
    z_plus: Sequence[Tensor], z_minus: Sequence[Tensor], *, alpha: float = 8.0
) -> Tensor:
    """Per sample and per layer, the normalised relaxed Hamming distance, shape ``(batch, layers)``: for layer
    ``l`` with ``n_l`` pre-activations per sample, ``||H_alpha(z+_il, z-_il)||_2 / (2 n_l)`` (section 5.4: l2
    norm within a layer, normalised by twice the number of elements).

    Paper: Jin & Rinard 2020 (paper 003), eqs. 13-14 as combined in Section 5.4.
    """
    if len(z_plus) != len(z_minus):
        raise ValueError(
            f"z_plus and z_minus must list the same layers, got {len(z_plus)} and {len(z_minus)}"
        )
    if len(z_plus) == 0:
        raise ValueError("no pre-activations given: the Hamming regularizer needs at least one ReLU layer")
    columns = []
    for zp, zm in zip(z_plus, z_minus, strict=True):
        h = hamming_relaxation(zp, zm, alpha=alpha).flatten(1)
        columns.append(torch.linalg.vector_norm(h, dim=1) / (2 * h.shape[1]))
    return torch.stack(columns, dim=1)


def hamming_layer_terms(z_plus: Sequence[Tensor], z_minus: Sequence[Tensor], *, alpha: float = 8.0) -> Tensor:
    """One value per layer, shape ``(layers,)``: the batch mean of :func:`hamming_layer_distances` (a
    diagnostic: their mean over the layers is the ``"unsquared"`` Hamming term; the squared one does not split
    over layers).

    Paper: Jin & Rinard 2020 (paper 003), eqs. 13-14 as combined in Section 5.4.
    """
    return hamming_layer_distances(z_plus, z_minus, alpha=alpha).mean(dim=0)


def hamming_term_from_distances(distances: Tensor, *, form: str = "squared") -> Tensor:
    """The Hamming term from per-sample, per-layer distances ``(batch, layers)``
    (:func:`hamming_layer_distances`): per sample ``d_i = mean_l distances[i, l]`` (section 5.4: summed over
    the layers, divided by their number), then ``mean_i d_i^2`` (``form="squared"``, eq. 13) or ``mean_i d_i``
    (``form="unsquared"``, earlier versions).

    Paper: Jin & Rinard 2020 (paper 003), eq. 13 with the distance of Section 5.4.
    """
    _check_hamming_form(form, "form")
    if distances.ndim != 2 or distances.shape[0] == 0 or distances.shape[1] == 0:
        raise ValueError(
            f"distances must have shape (batch, layers) with both > 0, got {tuple(distances.shape)}"
        )
    per_sample = distances.mean(dim=1)
    return per_sample.pow(2).mean() if form == "squared" else per_sample.mean()


def hamming_regularizer(
    z_plus: Sequence[Tensor], z_minus: Sequence[Tensor], *, alpha: float = 8.0, form: str = "squared"
) -> Tensor:
    """Hamming regularizer (eq. 13 with the relaxation of eq. 14, combined as in section 5.4): per sample the
    mean over layers of :func:`hamming_layer_distances`, squared (``form="squared"``) or not, averaged over
    the batch.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 12-14 and Section 5.4.
    """
    return hamming_term_from_distances(hamming_layer_distances(z_plus, z_minus, alpha=alpha), form=form)


def heat_kernel_weights(points: Tensor, *, scale: float) -> Tensor:
    """Heat-kernel Laplacian weights ``L_pq = exp(-||x_p - x_q||_2^2 / s)`` between all rows of ``points`` (M,
    ...).

    Paper: Jin & Rinard 2020 (paper 003), Section 2, the heat kernel ``L_ij`` of eq. 2 (also Proposition 5.1).
    """
    if (
        not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not scale > 0
        or not math.isfinite(scale)
    ):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    flat = points.flatten(1)
    sq = flat.pow(2).sum(dim=1)
    dist2 = (sq[:, None] + sq[None, :] - 2 * flat @ flat.T).clamp_min(0)
    return torch.exp(-dist2 / scale)


def dense_intrinsic_regularizer(outputs: Tensor, points: Tensor, *, scale: float = 2.0) -> Tensor:
    """Dense intrinsic regularizer (eq. 2, the paper's ablation):
    ``(1/M^2) sum_{p,q} ||f(x_p) - f(x_q)||^2 L_pq`` over all ``M`` points of the batch, with heat-kernel
    weights of scale ``s`` (paper: ``s = 2``).

    Paper: Jin & Rinard 2020 (paper 003), eq. 2 (the dense ablation of Section 6).

    Cost and memory grow as ``M^2``; the paper trains this variant with batch 40.
    """
    if outputs.shape[0] != points.shape[0]:
        raise ValueError(
            f"outputs and points must have the same number of rows, got {outputs.shape[0]} and "
            f"{points.shape[0]}"
        )
    if outputs.shape[0] == 0:
        raise ValueError("dense_intrinsic_regularizer needs a non-empty batch")
    weights = heat_kernel_weights(points.detach(), scale=scale)
    flat = outputs.flatten(1)
    diff2 = (flat[:, None, :] - flat[None, :, :]).pow(2).sum(dim=2)
    return (diff2 * weights).sum() / flat.shape[0] ** 2


def uses_batch_statistics(model: nn.Module) -> bool:
    """Whether a forward pass of ``model`` mixes the rows of its batch through a torch BatchNorm layer
    (training mode, or no running statistics), so that one concatenated pass and separate passes give
    different values.

    Paper: Jin & Rinard 2020 (paper 003), Section 5.4 (one pass over ``[x, x+, x-]``); decides
    whether that fused pass is exact.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.training or not module.track_running_stats or module.running_mean is None:
                return True
    return False


def _check_hamming_form(form: str, name: str = "hamming_form") -> None:
    if form not in HAMMING_FORMS:
        raise ValueError(f"{name} must be one of {HAMMING_FORMS} (eq. 13: 'squared'), got {form!r}")


def _check_intrinsic_scale(scale: float, name: str = "intrinsic_scale") -> None:
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0 (eq. 11: 0.5), got {scale!r}")

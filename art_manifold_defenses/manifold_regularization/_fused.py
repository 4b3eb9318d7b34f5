"""Fast forms of the Hamming term of :mod:`.regularizers` (Jin & Rinard 2020, paper 003, eqs. 13-14): the same
values as :func:`~.regularizers.hamming_layer_distances`, computed in cache-sized blocks with hand-written
autograd functions and buffers reused between training steps (CPU speed-ups; the equations themselves are in
:mod:`.regularizers`).

The one private torch API used here, ``torch._C._autograd._get_current_graph_task_keep_graph``, is wrapped
once (:func:`_keeps_graph`); ``tests/manifold_regularization/test_batching.py`` fails loudly if torch changes
it.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
from torch import Tensor

from ._native import native_hamming_rows

__all__ = ["fused_hamming_layer_distances", "fused_hamming_pair_distances", "relu_pattern_disagreements"]


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or math.isnan(alpha) or alpha <= 0:
        raise ValueError(
            f"alpha must be a number > 0 (float('inf') for the exact Hamming distance), got {alpha!r}"
        )


#: Rows of the pre-activations are processed in blocks of about this many bytes, so that the intermediate
#: sigmoids stay in the CPU cache (faster than whole-tensor passes;
#: ``docs/defences/manifold_regularization.md``).
_HAMMING_BLOCK_BYTES = 1 << 20


def _pattern_disagreements(zp: Tensor, zm: Tensor, out: Tensor, buffers: tuple[Tensor, Tensor]) -> None:
    """Add to ``out`` the number of elements where ``z+ > 0`` and ``z- > 0`` differ (the ReLUs taking
    different branches), for blocks already in cache. Exact: ``sign(z).clamp_min(0)`` is 1 where ``z > 0`` and
    0 elsewhere, so ``|p+ - p-|`` is the indicator of a disagreement, and a float32 (or float64) sum of a
    block's ones is exact below 2^24 elements (comparison ops producing ``bool`` cost about 2.5x more on
    CPU)."""
    p_plus, p_minus = buffers
    torch.sign(zp, out=p_plus).clamp_min_(0.0)
    torch.sign(zm, out=p_minus).clamp_min_(0.0)
    wide = (
        None if p_plus.dtype in (torch.float32, torch.float64) else torch.float32
    )  # half precision would round
    out.add_(p_plus.sub_(p_minus).abs_().sum(dtype=wide))


def relu_pattern_disagreements(z_plus: Tensor, z_minus: Tensor) -> Tensor:
    """The number of pre-activations whose ReLU branch differs between ``z_plus`` and ``z_minus`` (same
    shape): ``count(z+ > 0 xor z- > 0)`` as a 0-dim float64 tensor (exact), computed in cache-sized blocks.

    Paper: Jin & Rinard 2020 (paper 003), Section 5.3 (the activation-pattern Hamming distance that eq. 14
    relaxes).
    """
    if z_plus.shape != z_minus.shape:
        raise ValueError(
            f"z_plus and z_minus must have the same shape, got {tuple(z_plus.shape)} and "
            f"{tuple(z_minus.shape)}"
        )
    flat_p, flat_m = z_plus.detach().reshape(-1), z_minus.detach().reshape(-1)
    count = flat_p.new_zeros((), dtype=torch.float64)
    block = max(1, min(flat_p.numel(), _HAMMING_BLOCK_BYTES // max(1, flat_p.element_size())))
    buffers = flat_p.new_empty((2, block))
    for start in range(0, flat_p.numel(), block):
        stop = min(flat_p.numel(), start + block)
        _pattern_disagreements(
            flat_p[start:stop],
            flat_m[start:stop],
            count,
            (buffers[0, : stop - start], buffers[1, : stop - start]),
        )
    return count


def _hamming_norms(
    zp: Tensor,
    zm: Tensor,
    alpha: float,
    *,
    for_backward: bool,
    disagreements: Tensor | None = None,
    products: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per-row ``||tanh(alpha z+) - tanh(alpha z-)||_2`` of flattened (2-D), detached rows, and what the
    backward needs.

    Finite ``alpha`` uses the identity ``tanh(a) = 2 sigmoid(2a) - 1`` (the same mathematics as eq. 14; on CPU
    ``sigmoid`` costs a fraction of ``tanh`` and the identity also removes the affine map): with
    ``s = sigmoid(2 alpha z)``, ``t+ - t- = 2 (s+ - s-)`` and ``dt/dz = 4 alpha s (1 - s)``. With
    ``for_backward`` it also returns ``a+ = (s+ - s-) s+ (1 - s+)`` and ``a- = (s+ - s-) s- (1 - s-)``, from
    which each gradient is one multiplication by a per-row factor (see :func:`_hamming_grads`).
    ``alpha = inf`` uses ``sign`` (no gradient). The rows go in blocks of about ``_HAMMING_BLOCK_BYTES``
    through reused buffers (the same values, cache-friendly). ``disagreements`` (a 0-dim float64 tensor): the
    number of ReLU pattern disagreements is added to it, counted on the blocks while they are in cache (see
    :func:`_pattern_disagreements`). ``products``: buffers (shaped like ``zp``) to write a+ and a- into,
    instead of new tensors.
    """
    if math.isinf(alpha):
        if disagreements is not None:
            disagreements.add_(relu_pattern_disagreements(zp, zm))
        return torch.linalg.vector_norm(torch.sign(zp) - torch.sign(zm), dim=1), None, None
    rows, features = zp.shape
    a_plus: Tensor | None = None
    a_minus: Tensor | None = None
    if for_backward:
        a_plus, a_minus = products if products is not None else (torch.empty_like(zp), torch.empty_like(zm))
    for_kernel = (a_plus, a_minus) if a_plus is not None and a_minus is not None else None
    native = native_hamming_rows(zp, zm, alpha, for_kernel)
    if native is not None:  # the compiled one-pass form of the loop below (CPU, float32)
        if disagreements is not None:
            disagreements.add_(native[1].sum())
        return native[0], a_plus, a_minus
    block = max(1, min(rows, _HAMMING_BLOCK_BYTES // (zp.element_size() * max(features, 1))))
    norms = zp.new_empty(rows)
    buffers = zp.new_empty((3, block, features))
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        sp, sm, diff = buffers[0, : stop - start], buffers[1, : stop - start], buffers[2, : stop - start]
        torch.mul(zp[start:stop], 2.0 * alpha, out=sp).sigmoid_()
        torch.mul(zm[start:stop], 2.0 * alpha, out=sm).sigmoid_()
        torch.sub(sp, sm, out=diff)
        torch.linalg.vector_norm(diff, dim=1, out=norms[start:stop])
        if a_plus is not None and a_minus is not None:
            # aten's sigmoid_backward(g, s) = g s (1 - s) in one pass
            torch.ops.aten.sigmoid_backward.grad_input(diff, sp, grad_input=a_plus[start:stop])
            torch.ops.aten.sigmoid_backward.grad_input(diff, sm, grad_input=a_minus[start:stop])
        if disagreements is not None:  # sp and sm are free again
            _pattern_disagreements(zp[start:stop], zm[start:stop], disagreements, (sp, sm))
    return norms.mul_(2.0), a_plus, a_minus


def _hamming_grads(
    a_plus: Tensor,
    a_minus: Tensor,
    norms: Tensor,
    grad_output: Tensor,
    scale: float,
    alpha: float,
    grad_p: Tensor,
    grad_m: Tensor,
) -> None:
    """Write the gradients of ``sum_i g_i * scale * ||tanh(alpha z+_i) - tanh(alpha z-_i)||_2`` into
    ``grad_p``/``grad_m`` from the ``(norms, a+, a-)`` of :func:`_hamming_norms`, where ``g``
    (``grad_output``, one value per row) is the gradient of the loss with respect to each row's distance: with
    ``c_i = g_i * scale * 8 alpha / norm_i``, ``grad_p = c a+`` and ``grad_m = -c a-``.

    A zero norm (identical rows, or differences whose squares underflow) gets a zero gradient, as torch's own
    norm backward does; clamping the norm instead would blow tiny differences up by 1/clamp.
    """
    factor = torch.where(
        norms > 0, (grad_output * (scale * 8.0 * alpha)) / norms.masked_fill(norms == 0, 1.0), 0.0
    )
    factor = factor.unsqueeze(1)
    torch.mul(a_plus, factor, out=grad_p)
    torch.mul(a_minus, factor.neg_(), out=grad_m)


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


class _FusedHammingLayerDistances(torch.autograd.Function):
    """One layer's per-sample Hamming distances read straight from the stacked pre-activations ``z`` (rows
    ``[..., x+, x-]``).

    Same values as :func:`hamming_layer_distances` on the two slices, with a hand-written backward that writes
    the gradient of the x+ and x- rows into one buffer (autograd on slices would zero-fill a full-size
    gradient per slice and add them up, which costs as much as the term itself on CPU).
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, batch: int, alpha: float) -> Tensor:  # type: ignore[override]
        flat = z.detach().flatten(1)
        norms, a_plus, a_minus = _hamming_norms(
            flat[-2 * batch : -batch], flat[-batch:], alpha, for_backward=not math.isinf(alpha)
        )
        scale = 1.0 / (2 * flat.shape[1])
        ctx.save_for_backward(a_plus, a_minus, norms)
        ctx.batch, ctx.alpha, ctx.scale, ctx.shape = batch, alpha, scale, z.shape
        return norms * scale

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, None, None]:  # type: ignore[override]
        if math.isinf(ctx.alpha):
            return None, None, None  # sign() is flat almost everywhere
        a_plus, a_minus, norms = ctx.saved_tensors
        batch = ctx.batch
        grad = a_plus.new_empty((ctx.shape[0], a_plus.shape[1]))
        grad[: -2 * batch].zero_()
        _hamming_grads(
            a_plus,
            a_minus,
            norms,
            grad_output,
            ctx.scale,
            ctx.alpha,
            grad[-2 * batch : -batch],
            grad[-batch:],
        )
        return grad.view(ctx.shape), None, None


def fused_hamming_layer_distances(z: Tensor, *, batch: int, alpha: float = 8.0) -> Tensor:
    """Per-sample Hamming distances ``(batch,)`` of one layer from stacked pre-activations whose last
    ``2 * batch`` rows are ``x+`` then ``x-``; equal to ``hamming_layer_distances([z[-2b:-b]], [z[-b:]],
    alpha=alpha)[:, 0]`` but cheaper to differentiate.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 13-14 per layer as in Section 5.4 (an equivalent, faster form).
    """
    _check_alpha(alpha)
    if z.ndim < 2 or z.shape[0] < 2 * batch or batch < 1:
        raise ValueError(f"z must stack at least 2 * batch = {2 * batch} rows, got shape {tuple(z.shape)}")
    if not _needs_grad(z):
        flat = z.flatten(1)
        norms = _hamming_norms(flat[-2 * batch : -batch], flat[-batch:], float(alpha), for_backward=False)[0]
        return norms * (1.0 / (2 * flat.shape[1]))
    return _FusedHammingLayerDistances.apply(z, batch, float(alpha))  # type: ignore[no-any-return]


class _Workspace:
    """Buffers for the saved products a+ and a- of :class:`_FusedHammingPairDistances`, reused from one call
    to the next.

    On CPU, new tensors of a layer's size are page-faulted in again at every training step (glibc hands memory
    of that size back to the system when it is freed; the measured page faults are in
    ``docs/defences/manifold_regularization.md``). A buffer is handed out again only once the autograd node
    that saved it is gone (a weak reference to its ``ctx``), so a graph that is still alive (``retain_graph``,
    a loss still referenced) never sees its saved tensors overwritten. Buffers not taken in the last two calls
    are dropped at :meth:`begin`. Used only by :class:`ManifoldRegularizer`, whose recorded pre-activations
    never leave it, so the gradients that the backward writes into these buffers are consumed by autograd and
    never returned to a caller.
    """

    def __init__(self) -> None:
        self._entries: list[list[Any]] = []  # [buffer, weak reference to the owning ctx, call number]
        self._call = 0

    def begin(self) -> None:
        """Start a call: drop the free buffers that the last two calls did not use."""
        self._call += 1
        self._entries = [e for e in self._entries if e[2] >= self._call - 2 or e[1]() is not None]

    def take(self, like: Tensor, owner: Any) -> Tensor:
        """A free buffer with the shape, dtype and device of ``like`` (new if none), now owned by
        ``owner``."""
        for entry in self._entries:
            buffer, ref, _ = entry
            if (
                ref() is None
                and buffer.shape == like.shape
                and buffer.dtype == like.dtype
                and buffer.device == like.device
            ):
                entry[1], entry[2] = weakref.ref(owner), self._call
                return buffer  # type: ignore[no-any-return]
        buffer = torch.empty(like.shape, dtype=like.dtype, device=like.device)
        self._entries.append([buffer, weakref.ref(owner), self._call])
        return buffer

    def __len__(self) -> int:
        return len(self._entries)


def _keeps_graph() -> bool:
    """Whether the backward pass now running keeps its graph (``retain_graph=True``: the saved tensors may be
    read again); ``True`` when this torch cannot say."""
    probe = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if probe is None else bool(probe())


class _FusedHammingPairDistances(torch.autograd.Function):
    """One layer's per-sample Hamming distances from the pre-activations of two separate forward passes (x+
    and x-), with the hand-written backward of :class:`_FusedHammingLayerDistances` (one multiplication per
    gradient, no slices).

    Returns ``(distances, pattern disagreements)``; the count is not differentiable. When the backward pass
    does not keep the graph, the saved products a+ and a- are scaled in place and returned as the gradients
    (they are not read again), which saves allocating -- and on glibc page-faulting -- two more tensors of the
    layer's size per step.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, z_plus: Tensor, z_minus: Tensor, alpha: float, workspace: _Workspace | None
    ) -> tuple[Tensor, Tensor]:
        flat_p, flat_m = z_plus.detach().flatten(1), z_minus.detach().flatten(1)
        count = flat_p.new_zeros((), dtype=torch.float64)
        products = (
            None
            if workspace is None or math.isinf(alpha)
            else (workspace.take(flat_p, ctx), workspace.take(flat_m, ctx))
        )
        norms, a_plus, a_minus = _hamming_norms(
            flat_p, flat_m, alpha, for_backward=not math.isinf(alpha), disagreements=count, products=products
        )
        scale = 1.0 / (2 * flat_p.shape[1])
        ctx.save_for_backward(a_plus, a_minus, norms)
        ctx.alpha, ctx.scale, ctx.shape = alpha, scale, z_plus.shape
        ctx.mark_non_differentiable(count)
        return norms * scale, count

    @staticmethod
    def backward(
        ctx: Any, grad_output: Tensor, _grad_count: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None, None]:  # type: ignore[override]
        if math.isinf(ctx.alpha):
            return None, None, None, None  # sign() is flat almost everywhere
        a_plus, a_minus, norms = ctx.saved_tensors
        if _keeps_graph():
            grad_p, grad_m = torch.empty_like(a_plus), torch.empty_like(a_minus)
        else:
            grad_p, grad_m = a_plus, a_minus
        _hamming_grads(a_plus, a_minus, norms, grad_output, ctx.scale, ctx.alpha, grad_p, grad_m)
        return grad_p.view(ctx.shape), grad_m.view(ctx.shape), None, None


#: The autograd nodes of a ReLU's output whose backward returns a fresh tensor (``threshold_backward``), which
#: the gradient hook of :class:`_HammingThroughReLUNodes` may therefore add to in place.
_FRESH_GRADIENT_NODES = frozenset({"ReluBackward0", "ReluBackward1"})


class _ReLUNodeGradient:
    """What one side (x+ or x-) of one layer adds to the gradient of its ReLU's input:
    ``sign * factor_i * a_i`` per row, once :class:`_HammingThroughReLUNodes` has computed ``factor`` in its
    backward."""

    def __init__(self, products: Tensor, sign: float) -> None:
        self.products, self.sign = products, sign
        self.factor: Tensor | None = None

    def __call__(
        self, grad_inputs: tuple[Any, ...], grad_outputs: tuple[Any, ...]
    ) -> tuple[Tensor, ...] | None:
        factor, self.factor = (
            self.factor,
            None,
        )  # consumed once: a later backward through the node adds nothing stale
        if factor is None:
            return None
        weights = (factor * self.sign).unsqueeze(1)
        grad = grad_inputs[0]
        if (
            grad is None
        ):  # cannot happen for the nodes hamming_through_relu_nodes accepts; autograd would refuse it
            raise RuntimeError(
                "the Hamming term's gradient was routed through a ReLU node that received no gradient; pass "
                "outputs_in_loss=True to ManifoldRegularizer only when the loss depends on f(x+) and f(x-)"
            )
        if grad.is_contiguous() and grad.numel() == self.products.numel():
            grad.view(self.products.shape).addcmul_(self.products, weights)  # fresh from threshold_backward
            return (grad,)
        return (grad + (self.products * weights).view(grad.shape),)


class _HammingThroughReLUNodes(torch.autograd.Function):
    """One layer's per-sample Hamming distances from the pre-activations ``z+``/``z-`` of two separate passes,
    whose gradient is added by a hook on each ReLU's own backward node instead of being returned.

    The values and gradients are those of :class:`_FusedHammingPairDistances`. The function's differentiable
    inputs are the ReLU *outputs* ``r+``/``r-`` (for which it returns no gradient), so autograd runs its
    backward before the ReLUs' backward; there it only computes the per-row factor ``c_i``, and the hook on
    each ReLU node adds ``c_i a_i`` into the gradient ``threshold_backward`` has just created (one in-place
    ``addcmul_``). Returning the gradient for ``z`` instead makes autograd sum two layer-sized tensors out of
    place (it cannot reuse a saved buffer) after a separate multiplication, and on CPU page-fault the new
    tensor in at every step (``bench/manifold_regularization.py``).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        r_plus: Tensor,
        r_minus: Tensor,
        z_plus: Tensor,
        z_minus: Tensor,
        alpha: float,
        workspace: _Workspace | None,
        sides: tuple[Any, Any],
    ) -> tuple[Tensor, Tensor]:
        flat_p, flat_m = z_plus.detach().flatten(1), z_minus.detach().flatten(1)
        count = flat_p.new_zeros((), dtype=torch.float64)
        products = None if workspace is None else (workspace.take(flat_p, ctx), workspace.take(flat_m, ctx))
        norms, a_plus, a_minus = _hamming_norms(
            flat_p, flat_m, alpha, for_backward=True, disagreements=count, products=products
        )
        assert a_plus is not None and a_minus is not None
        plus, minus = (
            _ReLUNodeGradient(a_plus, 1.0),
            _ReLUNodeGradient(a_minus, -1.0),
        )
        sides[0].register_hook(plus)
        sides[1].register_hook(minus)
        ctx.save_for_backward(norms)
        ctx.scale, ctx.alpha, ctx.hooks = 1.0 / (2 * flat_p.shape[1]), alpha, (plus, minus)
        ctx.mark_non_differentiable(count)
        return norms * ctx.scale, count

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor, _grad_count: Tensor) -> tuple[None, ...]:  # type: ignore[override]
        (norms,) = ctx.saved_tensors
        factor = torch.where(
            norms > 0, (grad_output * (ctx.scale * 8.0 * ctx.alpha)) / norms.masked_fill(norms == 0, 1.0), 0.0
        )
        ctx.hooks[0].factor = ctx.hooks[1].factor = factor
        return (None,) * 7


def graph_nodes(*outputs: Tensor) -> set[Any]:
    """Every autograd node that the gradients of ``outputs`` pass through (a walk of ``next_functions``)."""
    seen: set[Any] = set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(child for child, _ in node.next_functions if child is not None and child not in seen)
    return seen


def hamming_through_relu_nodes(
    z_plus: Tensor,
    z_minus: Tensor,
    r_plus: Any,
    r_minus: Any,
    alpha: float,
    workspace: _Workspace | None,
    reached: set[Any],
) -> tuple[Tensor, Tensor] | None:
    """``_pair_distances_and_disagreements(z_plus, z_minus, alpha, workspace)`` with the gradient routed
    through the ReLUs' backward nodes (see :class:`_HammingThroughReLUNodes`), or ``None`` where that does not
    apply and the caller uses the general form: an infinite ``alpha``, no gradient needed, ``r+``/``r-`` not
    the plain ReLU outputs of ``z+``/``z-``, or a ReLU node not in ``reached``. ``reached`` (see
    :func:`graph_nodes`) must hold only nodes that the loss's gradient is sure to pass through (the caller's
    promise): a node that receives no gradient cannot take one from a hook, and autograd then raises."""
    if math.isinf(alpha) or not _needs_grad(z_plus, z_minus):
        return None
    nodes = []
    for z, r in ((z_plus, r_plus), (z_minus, r_minus)):
        node = getattr(r, "grad_fn", None)
        if (
            not isinstance(r, Tensor)
            or node is None
            or node.name() not in _FRESH_GRADIENT_NODES
            or node not in reached
            or r.shape != z.shape
            or z.ndim < 2
            or z.shape[0] == 0
        ):
            return None
        nodes.append(node)
    return _HammingThroughReLUNodes.apply(  # type: ignore[no-any-return]
        r_plus, r_minus, z_plus, z_minus, float(alpha), workspace, (nodes[0], nodes[1])
    )


def _pair_distances_and_disagreements(
    z_plus: Tensor, z_minus: Tensor, alpha: float, workspace: _Workspace | None = None
) -> tuple[Tensor, Tensor]:
    """``(fused_hamming_pair_distances(z_plus, z_minus), relu_pattern_disagreements(z_plus, z_minus))`` in one
    pass; ``workspace``: where the saved products live (see :class:`_Workspace`)."""
    _check_alpha(alpha)
    if z_plus.shape != z_minus.shape:
        raise ValueError(
            f"z_plus and z_minus must have the same shape, got {tuple(z_plus.shape)} and "
            f"{tuple(z_minus.shape)}"
        )
    if z_plus.ndim < 2 or z_plus.shape[0] == 0:
        raise ValueError(
            f"z_plus must be a non-empty batch of shape (N, ...), got shape {tuple(z_plus.shape)}"
        )
    if not _needs_grad(z_plus, z_minus):
        count = z_plus.new_zeros((), dtype=torch.float64)
        norms = _hamming_norms(
            z_plus.flatten(1), z_minus.flatten(1), float(alpha), for_backward=False, disagreements=count
        )[0]
        return norms * (1.0 / (2 * z_plus[0].numel())), count
    return _FusedHammingPairDistances.apply(z_plus, z_minus, float(alpha), workspace)  # type: ignore[no-any-return]


def fused_hamming_pair_distances(z_plus: Tensor, z_minus: Tensor, *, alpha: float = 8.0) -> Tensor:
    """Per-sample Hamming distances ``(batch,)`` of one layer from the pre-activations of ``x+`` and ``x-``
    taken in two forward passes; equal to ``hamming_layer_distances([z_plus], [z_minus], alpha=alpha)[:, 0]``
    but cheaper to differentiate.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 13-14 per layer as in Section 5.4 (an equivalent, faster form
    for two separate passes).
    """
    return _pair_distances_and_disagreements(z_plus, z_minus, alpha)[0]

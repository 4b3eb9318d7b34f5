"""The fused CPU/GPU form of the radial-basis mapping block of :mod:`.block` (Taghanaki et al., CVPR 2019,
eqs. 2-4): one ``torch.autograd.Function`` per variant with a hand-written backward, working on rows of
channels-last memory in cache-sized chunks of whole images (a speed-up; the equations themselves are in
:mod:`.block`, whose ``fused=False`` path evaluates them with plain autograd operations).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["AuthorsMapping", "FEATURE_BOUND", "PaperMapping", "SQRT_FLOOR"]

#: Features are clamped to this magnitude before the quadratic forms so that f^T M f cannot overflow float32.
FEATURE_BOUND = 1e12
#: Floor under the authors' quadratic form before the square root (gradient of sqrt is finite there).
SQRT_FLOOR = 1e-12

#: Distances and quadratic forms provably below this fraction of the dtype's largest value cannot overflow on
#: the way.
_SAFE_FRACTION = 0.01
#: On CPU the fused path works through the positions in chunks of about this many rows (whole images), so that
#: each chunk's intermediate tensors stay in the core's cache; on other devices everything is one chunk.
CPU_CHUNK_ROWS = 4096


def _image_chunks(x: Tensor, chunk_rows: int | None) -> list[tuple[int, int]]:
    """Ranges of whole images [a, b) with about ``chunk_rows`` positions each (one chunk off the CPU by
    default)."""
    n, _, h, w = x.shape
    target = (
        chunk_rows if chunk_rows is not None else (CPU_CHUNK_ROWS if x.device.type == "cpu" else n * h * w)
    )
    step = max(1, target // max(1, h * w))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def _as_rows(t: Tensor) -> Tensor:
    """(n, C, H, W) -> (n*H*W, C), one row per position (a view for channels-last memory, else a copy)."""
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(n * h * w, c)


def _chunk_features(x: Tensor, out: Tensor | None, a: int, b: int, clamped: bool) -> Tensor:
    """The (clamped) feature rows of images [a, b): read back from a concatenated output, else from x."""
    k = x.shape[1]
    features = _as_rows(out[a:b])[:, :k] if out is not None else _as_rows(x[a:b])
    return features.clamp(-FEATURE_BOUND, FEATURE_BOUND) if clamped else features


def _bound_check(features: Tensor, small: list[float], bound: Any) -> tuple[bool, bool]:
    """(clamped, safe) for one chunk, with one host synchronisation: whether any |feature| reaches the clamp
    bound, and whether ``bound(largest |clamped feature|, *small)`` proves that nothing can overflow (NaN
    fails the test)."""
    low, high = torch.aminmax(features)
    low_value, high_value = torch.stack([low, high]).tolist()
    magnitude = max(abs(low_value), abs(high_value))
    clamped = high_value >= FEATURE_BOUND or low_value <= -FEATURE_BOUND
    if magnitude == magnitude:  # not NaN
        magnitude = min(magnitude, FEATURE_BOUND)
    if any(value != value for value in small):  # NaN parameters: take the guarded path
        return clamped, False
    return clamped, bool(bound(magnitude, *small) < _SAFE_FRACTION * torch.finfo(features.dtype).max)


def _new_output(x: Tensor, out_channels: int, concat: bool) -> Tensor:
    """The output (N, C, H, W) in channels-last memory, so each position's channels form one row of a
    matrix."""
    n, k, h, w = x.shape
    width = k + out_channels if concat else out_channels
    return torch.empty((n, width, h, w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


def _write_grad_input(
    grad_x: Tensor, a: int, b: int, grad_f: Tensor, passed: Tensor | None, x: Tensor, clamped: bool
) -> None:
    """dL/dx of images [a, b) (in x's layout) from dL/d(feature rows) (+ the pass-through half of a
    concatenation)."""
    _, k, h, w = x.shape
    grad = grad_f.view(b - a, h, w, k).permute(0, 3, 1, 2)
    if clamped:  # the clamp passes no gradient where |x| exceeded the bound
        grad.masked_fill_(x[a:b].abs() > FEATURE_BOUND, 0.0)
    if passed is None:
        grad_x[a:b].copy_(grad)
    else:
        torch.add(grad, passed.reshape(b - a, h, w, k).permute(0, 3, 1, 2), out=grad_x[a:b])


class PaperMapping(torch.autograd.Function):
    """Paper variant, fused. Inputs: x (N, K, H, W), M (K, K) symmetric, C M (P, K), c^T M c (P,), beta (P,),
    W (out, P), b (out,), concat (bool), chunk_rows. Output: g, or [x, g] with ``concat`` (channels-last
    memory).

    On the rows f (positions x K) of the clamped features: [f M, c^T M c - 2 f M C^T] is ONE ``addmm`` against
    [M | -2 M C^T] with the bias [0 | c^T M c]; D = that + f^T M f; phi = exp(-beta D); g = phi W^T + b. The
    backward recomputes D and phi chunk by chunk (cheaper than storing them) and, with E = -beta D and Y =
    [dL/dE | f * dL/d(f^T M f)], gets dL/df = Y [2 diag(beta) C M; 2 M] and [dL/d(C M) / (2 beta); dL/dM] =
    Y^T f.
    """

    @staticmethod
    def _phi(f: Tensor, weights: Tensor, offsets: Tensor, beta: Tensor, safe: bool) -> tuple[Tensor, Tensor]:
        k = f.shape[1]
        products = torch.addmm(offsets, f, weights)  # [f M, c^T M c - 2 f M C^T]
        squared_norm = torch.mv(f * products[:, :k], f.new_ones(k))  # f^T M f
        distance = (
            products[:, k:].add_(squared_norm.unsqueeze(1)).clamp_min_(0.0)
        )  # eq. (3); rounding floored at 0
        if not safe:  # an overflow is possible: keep it finite (phi = 0 there)
            big = torch.finfo(distance.dtype).max
            distance.nan_to_num_(nan=big, posinf=big)
        return distance, torch.mul(distance, -beta).exp_()  # eq. (2)

    @staticmethod
    def forward(ctx: Any, *args: Any) -> Tensor:
        x, matrix, center_matrix, center_norms, beta, weight, bias, concat, chunk_rows = args
        k = x.shape[1]
        out = _new_output(x, weight.shape[0], concat)
        weights = torch.cat([matrix, -2.0 * center_matrix]).T
        offsets = torch.cat([center_norms.new_zeros(k), center_norms])
        small = torch.stack(
            [matrix.abs().max(), center_matrix.abs().max(), center_norms.abs().max()]
        ).tolist()

        def bound(magnitude: float, m_max: float, cm_max: float, cc_max: float) -> float:
            partial = k * magnitude * max(m_max, cm_max)  # bounds |f M|, |f M C^T| and every partial sum
            return k * magnitude * partial + 2.0 * partial + cc_max

        chunks, flags = _image_chunks(x, chunk_rows), []
        for a, b in chunks:
            if concat:
                out[a:b, :k].copy_(x[a:b])  # the concatenation, written in place
            features = _as_rows(out[a:b])[:, :k] if concat else _as_rows(x[a:b])
            clamped, safe = _bound_check(features, small, bound)
            f = features.clamp(-FEATURE_BOUND, FEATURE_BOUND) if clamped else features
            _, phi = PaperMapping._phi(f, weights, offsets, beta, safe)
            rows = _as_rows(out[a:b])
            torch.addmm(bias, phi, weight.T, out=rows[:, rows.shape[1] - weight.shape[0] :])  # eq. (4)
            flags.append((clamped, safe))
        ctx.chunks, ctx.flags, ctx.concat = chunks, flags, concat
        ctx.save_for_backward(x, out if concat else None, matrix, center_matrix, center_norms, beta, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        x, out, matrix, center_matrix, center_norms, beta, weight = ctx.saved_tensors
        needs, k, p, o = ctx.needs_input_grad, x.shape[1], center_matrix.shape[0], weight.shape[0]
        weights = torch.cat([matrix, -2.0 * center_matrix]).T
        offsets = torch.cat([center_norms.new_zeros(k), center_norms])
        back = torch.cat([2.0 * beta.unsqueeze(1) * center_matrix, 2.0 * matrix])  # dL/df = Y back
        grad_x = torch.empty_like(x) if needs[0] else None
        grad_weight, grad_bias = weight.new_zeros(o, p), weight.new_zeros(o)
        dot_distance, column_sums, reduced = beta.new_zeros(p), beta.new_zeros(p), matrix.new_zeros(p + k, k)
        for (a, b), (clamped, safe) in zip(ctx.chunks, ctx.flags, strict=True):
            f = _chunk_features(x, out, a, b, clamped)
            distance, phi = PaperMapping._phi(f, weights, offsets, beta, safe)
            grad_rows = _as_rows(grads[0][a:b])
            grad_g = grad_rows[:, grad_rows.shape[1] - o :]
            grad_weight.addmm_(grad_g.T, phi)
            grad_bias.add_(grad_g.sum(0))
            stacked = f.new_empty(f.shape[0], p + k)  # Y
            grad_exponent = torch.mm(grad_g, weight, out=stacked[:, :p]).mul_(phi)  # dL/dE = (dL/dg W) * phi
            dot_distance.add_(torch.linalg.vecdot(grad_exponent, distance, dim=0))
            column_sums.add_(grad_exponent.sum(0))
            grad_squared_norm = torch.mv(
                grad_exponent, -beta
            )  # dL/d(f^T M f) = sum_k dL/dD_k, dL/dD = -beta dL/dE
            torch.mul(f, grad_squared_norm.unsqueeze(1), out=stacked[:, p:])
            reduced.addmm_(stacked.T, f)  # [dL/dE^T f; (f * dL/d(f^T M f))^T f]
            if grad_x is not None:
                passed = grad_rows[:, :k] if ctx.concat else None
                _write_grad_input(grad_x, a, b, torch.mm(stacked, back), passed, x, clamped)
        grad_center_matrix = 2.0 * beta.unsqueeze(1) * reduced[:p]  # -2 dL/dD^T f
        return (
            grad_x,
            reduced[p:],
            grad_center_matrix,
            -beta * column_sums,
            -dot_distance,
            grad_weight,
            grad_bias,
            None,
            None,
        )


class AuthorsMapping(torch.autograd.Function):
    """Authors' variant, fused. Inputs: x (N, K, H, W), 1^T T 1 (scalar), 1^T T C_:k + C_:k^T T 1 (K,), C_:k^T
    T C_:k (K,), beta (K,), W (K, K), b (K,), concat (bool), chunk_rows. Output as for :class:`_PaperMapping`.

    form_k = f_k (f_k 1^T T 1 - linear_k) + constant_k and h_k = sqrt(max(form_k, 1e-12)) are element-wise;
    the backward recomputes them chunk by chunk.
    """

    @staticmethod
    def _phi(
        f: Tensor, total: Tensor, linear: Tensor, constant: Tensor, beta: Tensor, safe: bool
    ) -> tuple[Tensor, ...]:
        form = torch.addcmul(constant, f, torch.addcmul(-linear, f, total))
        if not safe:  # an overflow is possible: keep it finite (phi = 0 there)
            big = torch.finfo(form.dtype).max
            form.nan_to_num_(nan=big, posinf=big, neginf=big)
        distance = form.clamp_min(SQRT_FLOOR).sqrt_()
        return form, distance, torch.mul(distance, -beta).exp_()

    @staticmethod
    def forward(ctx: Any, *args: Any) -> Tensor:
        x, total, linear, constant, beta, weight, bias, concat, chunk_rows = args
        k = x.shape[1]
        out = _new_output(x, weight.shape[0], concat)
        small = torch.stack([total.abs(), linear.abs().max(), constant.abs().max()]).tolist()

        def bound(magnitude: float, t_max: float, l_max: float, c_max: float) -> float:
            return magnitude * (magnitude * t_max + l_max) + c_max

        chunks, flags = _image_chunks(x, chunk_rows), []
        for a, b in chunks:
            if concat:
                out[a:b, :k].copy_(x[a:b])
            features = _as_rows(out[a:b])[:, :k] if concat else _as_rows(x[a:b])
            clamped, safe = _bound_check(features, small, bound)
            f = features.clamp(-FEATURE_BOUND, FEATURE_BOUND) if clamped else features
            phi = AuthorsMapping._phi(f, total, linear, constant, beta, safe)[2]
            rows = _as_rows(out[a:b])
            torch.addmm(bias, phi, weight.T, out=rows[:, rows.shape[1] - weight.shape[0] :])
            flags.append((clamped, safe))
        ctx.chunks, ctx.flags, ctx.concat = chunks, flags, concat
        ctx.save_for_backward(x, out if concat else None, total, linear, constant, beta, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        x, out, total, linear, constant, beta, weight = ctx.saved_tensors
        needs, k, o = ctx.needs_input_grad, x.shape[1], weight.shape[0]
        grad_x = torch.empty_like(x) if needs[0] else None
        grad_weight, grad_bias = weight.new_zeros(o, k), weight.new_zeros(o)
        grad_beta, grad_constant, grad_linear, grad_total = (
            beta.new_zeros(k),
            beta.new_zeros(k),
            beta.new_zeros(k),
            total.new_zeros(()),
        )
        for (a, b), (clamped, safe) in zip(ctx.chunks, ctx.flags, strict=True):
            f = _chunk_features(x, out, a, b, clamped)
            form, distance, phi = AuthorsMapping._phi(f, total, linear, constant, beta, safe)
            grad_rows = _as_rows(grads[0][a:b])
            grad_g = grad_rows[:, grad_rows.shape[1] - o :]
            grad_weight.addmm_(grad_g.T, phi)
            grad_bias.add_(grad_g.sum(0))
            grad_exponent = torch.mm(grad_g, weight).mul_(phi)  # dL/d(-beta h)
            grad_beta.sub_(torch.linalg.vecdot(grad_exponent, distance, dim=0))
            # dL/dform = dL/dh / (2 h) where form >= floor (clamp_min passes the gradient there), 0 below the
            # floor
            grad_form = grad_exponent.mul_(beta * -0.5).div_(distance).masked_fill_(form < SQRT_FLOOR, 0.0)
            grad_constant.add_(grad_form.sum(0))
            scaled = grad_form * f
            grad_linear.sub_(scaled.sum(0))
            grad_total.add_(torch.dot(scaled.view(-1), f.reshape(-1)))
            if grad_x is not None:  # d form / df = 2 f 1^T T 1 - linear
                grad_f = scaled.mul_(2.0 * total).addcmul_(grad_form, linear, value=-1.0)
                _write_grad_input(grad_x, a, b, grad_f, grad_rows[:, :k] if ctx.concat else None, x, clamped)
        return grad_x, grad_total, grad_linear, grad_constant, grad_beta, grad_weight, grad_bias, None, None

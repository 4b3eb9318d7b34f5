"""The radial-basis mapping block of Taghanaki et al. (CVPR 2019), applied at every spatial position of a
feature map.

Two variants, selected with ``variant``:

``"paper"`` (default) -- eqs. (2)-(4) of the paper, with the inverse of the transformation matrix learned
directly:
    M = A A^T + epsilon I (a positive-definite precision, M = Psi^-1; no inverse taken) D_k(f) = (f - c_k)^T M
    (f - c_k) (eq. 3, squared Mahalanobis-like distance) phi_k(f) = exp(-beta_k D_k(f)), beta_k > 0 (eq. 2)
    g(f) = sum_k w_k phi_k(f) + b (eq. 4, ``out_channels`` outputs)

``"authors_code"`` -- what the authors' Keras layer computes (spec notes, section 001): the number of centres
and of output channels equal the number of input channels K; T = Psi^T (element-wise product) Psi, no inverse;
for every channel k the quadratic form runs over the *centre* index, h_k = sqrt(sum_{p,q} (f_k - C_pk) T_pq
(f_k - C_qk)); phi_k = exp(-beta_k h_k) (a Laplacian-type kernel of the distance); g = phi W + b.

Implementation (``fused=True``, the default): the block is one ``torch.autograd.Function`` per variant with a
hand-written backward. It works on rows f (one row of K channels per position): the output is allocated in
channels-last memory, so g (and, for ``concatenate``, the copy of x beside it -- no ``torch.cat``) is written
straight into its rows by a matrix product, and the next convolution reads channels-last input. Paper: [f M,
c^T M c - 2 f M C^T] comes from ONE ``addmm`` against [M | -2 M C^T], then D = that + f^T M f. Authors: the
per-channel form f_k^2 (1^T T 1) - f_k (1^T T C_:k + C_:k^T T 1) + C_:k^T T C_:k is element-wise. On CPU the
positions are processed in chunks of whole images (``chunk_rows``) so the intermediates stay in cache; the
backward recomputes D and phi per chunk instead of storing them. Overflow guards run only when a bound on |f|
and the matrices says an overflow is possible. ``fused=False`` evaluates the same equations with plain
autograd operations (slower; supports double backward).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..utils import check_image_tensor
from ._fused import FEATURE_BOUND, SQRT_FLOOR, AuthorsMapping, PaperMapping

__all__ = ["FEATURE_BOUND", "SQRT_FLOOR", "VARIANTS", "RadialBasisMapping", "kmeans_centers"]

VARIANTS = ("paper", "authors_code")
INITS = ("uniform", "kmeans")
#: The authors' layer adds this constant to Psi at every call (Keras' K.epsilon() was not used; 2.2e-16 is
#: literal).
AUTHORS_PSI_OFFSET = 2.2e-16


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class RadialBasisMapping(nn.Module):
    """Radial-basis (Mahalanobis-like) feature mapping of Taghanaki et al., "A Kernelized Manifold Mapping to
    Diminish the Effect of Adversarial Perturbations", CVPR 2019 (https://arxiv.org/abs/1903.01015),
    eqs. (2)-(5).

    Input (N, K, H, W) -> output (N, out_channels, H, W); the same mapping is applied at every spatial
    position.

    Args:
        in_channels: K, channels of the feature map the block reads.
        n_centers: P, number of learnable centres (default K, as in the authors' code). ``"authors_code"``
            requires P = K.
        variant: ``"paper"`` or ``"authors_code"`` (see the module docstring).
        out_channels: channels of g (default P; the paper concatenates P mapped channels). ``"authors_code"``:
            K only.
        epsilon: the epsilon of M = A A^T + epsilon I (paper variant), keeping M positive definite.
        beta_init: initial width beta (2.0 in the authors' code).
        init: ``"uniform"`` (centres ~ U(0, 1), the authors' initialisation) or ``"kmeans"`` (centres set from
            data by :meth:`initialize_from_features`; until then they are uniform).
        generator: ``torch.Generator`` for the initial centres and W (reproducible initialisation).
        fused: compute the block with the fused autograd functions (default, fast) or, with ``False``, with
            plain autograd operations (same equations; use it if you need double backward through the block).
        chunk_rows: positions per chunk of the fused path (default: about 4096 on CPU, so a chunk's
            intermediates stay in cache; everything at once on other devices). Chunks hold whole images.

    Parameters (paper): ``A`` (K x K, init identity), ``centers`` (P x K, rows c_k), ``beta_raw`` (P; beta =
    softplus(beta_raw), so beta > 0 -- a documented re-parametrisation), ``weight`` (out x P, Glorot uniform),
    ``bias`` (out, zeros). Authors' code: ``psi`` (K x K, identity), ``centers`` (K x K, row p = centre p),
    ``beta_raw`` (K), ``weight`` (K x K), ``bias`` (K). Both have 3K^2 + 2K parameters when P = out = K.

    Known limitations:
        - Psi is learned through its inverse M = A A^T + epsilon I (the paper writes Psi = A A^T and inverts
          it); the two parametrise the same set of positive-definite matrices, but the optimisation path
          differs.
        - The authors' T = Psi^T (element-wise) Psi need not be positive semi-definite; their code would then
          take the square root of a negative number (NaN). Here the form is floored at 1e-12 before the square
          root.
        - Features are clamped to +-1e12 before the quadratic forms (no effect on real networks) so that
          values and gradients stay finite for any finite input. A distance that still overflows (NaN/Inf,
          e.g. from a huge M) is replaced by the largest finite float, so phi = 0 there (the unfused path uses
          +Inf: same phi).
        - The fused path differentiates the expanded distance f^T M f - 2 f^T M c + c^T M c as written,
          without the zero-gradient mask of the floor at 0 that only rounding can reach (there the exact
          gradient 2 M (f - c) is itself ~0); the authors' floor under the square root is differentiated
          exactly.
        - The fused path is differentiable once (no double backward); ``fused=False`` supports higher orders.
        - The mapping does not make a network robust to adaptive attacks: the independent AutoAttack
          evaluation of this defence (Croce & Hein 2020) reports 0% robust accuracy at epsilon 0.3 on MNIST.
    """

    params = [
        "in_channels",
        "n_centers",
        "variant",
        "out_channels",
        "epsilon",
        "beta_init",
        "init",
        "fused",
        "chunk_rows",
    ]

    def __init__(
        self,
        in_channels: int,
        n_centers: int | None = None,
        *,
        variant: str = "paper",
        out_channels: int | None = None,
        epsilon: float = 1e-6,
        beta_init: float = 2.0,
        init: str = "uniform",
        generator: torch.Generator | None = None,
        fused: bool = True,
        chunk_rows: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.n_centers = in_channels if n_centers is None else n_centers
        self.variant = variant
        self.out_channels = self.n_centers if out_channels is None else out_channels
        self.epsilon = epsilon
        self.beta_init = beta_init
        self.init = init
        self.fused = fused
        self.chunk_rows = chunk_rows
        self._check_params()
        k, p, o = self.in_channels, self.n_centers, self.out_channels
        centers = torch.rand(p, k, generator=generator)
        bound = math.sqrt(6.0 / (p + o))
        weight = (torch.rand(o, p, generator=generator) * 2.0 - 1.0) * bound
        self.centers = nn.Parameter(centers)
        self.beta_raw = nn.Parameter(torch.full((p,), _inverse_softplus(beta_init)))
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(o))
        if variant == "paper":
            self.A = nn.Parameter(torch.eye(k))
        else:
            self.psi = nn.Parameter(torch.eye(k))

    def _check_params(self) -> None:
        for name in ("in_channels", "n_centers", "out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.variant == "authors_code":
            if self.n_centers != self.in_channels:
                raise ValueError(
                    f"variant='authors_code' ties the number of centres to in_channels={self.in_channels}; "
                    f"got n_centers={self.n_centers}"
                )
            if self.out_channels != self.in_channels:
                raise ValueError(
                    f"variant='authors_code' ties out_channels to in_channels={self.in_channels}; got "
                    f"out_channels={self.out_channels}"
                )
        if (
            not isinstance(self.epsilon, (int, float))
            or isinstance(self.epsilon, bool)
            or not (self.epsilon >= 0.0)
        ):
            raise ValueError(f"epsilon must be a non-negative number, got {self.epsilon!r}")
        if (
            not isinstance(self.beta_init, (int, float))
            or isinstance(self.beta_init, bool)
            or not (0.0 < self.beta_init < 1e6)
        ):
            raise ValueError(f"beta_init must be a positive number, got {self.beta_init!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not isinstance(self.fused, bool):
            raise TypeError(f"fused must be a bool, got {type(self.fused).__name__}")
        if self.chunk_rows is not None and (
            not isinstance(self.chunk_rows, int) or isinstance(self.chunk_rows, bool) or self.chunk_rows < 1
        ):
            raise ValueError(f"chunk_rows must be a positive integer or None, got {self.chunk_rows!r}")

    @property
    def beta(self) -> Tensor:
        """The widths beta_k > 0 (softplus of the stored parameter)."""
        return nn.functional.softplus(self.beta_raw)

    def precision(self) -> Tensor:
        """The matrix of the quadratic form: M = A A^T + epsilon I (paper) or T = Psi^T (element-wise) Psi
        (authors)."""
        if self.variant == "paper":
            eye = torch.eye(self.in_channels, device=self.A.device, dtype=self.A.dtype)
            return self.A @ self.A.T + self.epsilon * eye
        psi = self.psi + AUTHORS_PSI_OFFSET
        return psi.T * psi

    def _check_input(self, x: Tensor) -> None:
        # features, not images: any finite value (a NaN would come out of the clamp as a silent 0)
        check_image_tensor(x, "x", clip_values=None, channels=self.in_channels)

    def distances(self, features: Tensor) -> Tensor:
        """D for features of shape (..., K): (..., P) squared distances (paper) or (..., K) distances h
        (authors)."""
        f = features.clamp(-FEATURE_BOUND, FEATURE_BOUND)
        matrix = self.precision()
        if self.variant == "paper":
            return mahalanobis_distance(f, self.centers, matrix)
        return authors_channel_distance(f, self.centers, matrix)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if self.fused:
            return self._fused(x, concat=False)
        n, _, h, w = x.shape
        f = x.permute(0, 2, 3, 1).reshape(
            n * h * w, self.in_channels
        )  # one contiguous feature vector per position
        phi = radial_basis_activation(self.distances(f), self.beta)
        g = nn.functional.linear(phi, self.weight, self.bias)
        return g.view(n, h, w, self.out_channels).permute(0, 3, 1, 2)

    def concatenate(self, x: Tensor) -> Tensor:
        """``torch.cat([x, self(x)], dim=1)`` (paper Fig. 2); the fused path writes both halves into one
        buffer."""
        self._check_input(x)
        if self.fused:
            return self._fused(x, concat=True)
        return torch.cat([x, self(x)], dim=1)

    def _fused(self, x: Tensor, *, concat: bool) -> Tensor:
        matrix = self.precision()
        if self.variant == "paper":
            center_matrix = self.centers @ matrix  # C M: (P, K)
            center_norms = (center_matrix * self.centers).sum(-1)  # c_k^T M c_k: (P,)
            out = PaperMapping.apply(
                x,
                matrix,
                center_matrix,
                center_norms,
                self.beta,
                self.weight,
                self.bias,
                concat,
                self.chunk_rows,
            )
        else:
            ones = torch.ones(self.in_channels, device=matrix.device, dtype=matrix.dtype)
            total = matrix.sum()  # 1^T T 1
            linear = (
                ones @ matrix @ self.centers + ones @ matrix.T @ self.centers
            )  # 1^T T C_:k + C_:k^T T 1: (K,)
            constant = ((matrix @ self.centers) * self.centers).sum(0)  # C_:k^T T C_:k: (K,)
            out = AuthorsMapping.apply(
                x, total, linear, constant, self.beta, self.weight, self.bias, concat, self.chunk_rows
            )
        return out  # type: ignore[no-any-return]

    @torch.no_grad()
    def initialize_from_features(
        self,
        x: Tensor,
        *,
        iterations: int = 20,
        generator: torch.Generator | None = None,
        max_points: int = 20000,
    ) -> None:
        """Set the centres by k-means (k-means++ seeding, Lloyd iterations) of the feature vectors of a batch.

        ``x``: (N, K, H, W) features as the block will see them. For ``"authors_code"`` the P = K k-means
        centres become the rows of ``centers`` (centre p, coordinate k), which is how that layer indexes them.
        """
        self._check_input(x)
        points = x.detach().permute(0, 2, 3, 1).reshape(-1, self.in_channels).float()
        if not torch.isfinite(points).all():
            raise ValueError("x contains NaN or Inf values; cannot initialise centres from it")
        if len(points) > max_points:
            pick = torch.randperm(len(points), generator=generator)[:max_points]
            points = points[pick]
        centers = kmeans_centers(points.cpu(), self.n_centers, iterations=iterations, generator=generator)
        self.centers.copy_(centers.to(self.centers.device, self.centers.dtype))

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, n_centers={self.n_centers}, out_channels={self.out_channels}, "
            f"variant={self.variant!r}"
        )


def mahalanobis_distance(features: Tensor, centers: Tensor, matrix: Tensor) -> Tensor:
    """Eq. (3): D_k = (f - c_k)^T M (f - c_k) for every feature vector (..., K) and centre (P, K) -> (..., P).

    Expanded as f^T M f - 2 f^T M c_k + c_k^T M c_k (two small matrix products instead of a (..., P, K)
    difference tensor); rounding can make the expansion slightly negative, so it is floored at 0. ``matrix``
    must be symmetric.
    """
    fm = features @ matrix
    ff = (fm * features).sum(-1, keepdim=True)
    cc = ((centers @ matrix) * centers).sum(-1)
    distance = (ff - 2.0 * (fm @ centers.T) + cc).clamp_min(0.0)
    return torch.where(torch.isfinite(distance), distance, torch.full_like(distance, float("inf")))


def authors_channel_distance(features: Tensor, centers: Tensor, matrix: Tensor) -> Tensor:
    """The authors' distance: for channel k, h_k = sqrt(s^T T s) with s_p = f_k - C_pk (p over the centres).

    Expanded per channel as f_k^2 (1^T T 1) - f_k (1^T T C_:k + C_:k^T T 1) + C_:k^T T C_:k; negative values
    (T need not be PSD) are floored before the square root so values and gradients stay finite.
    """
    ones = torch.ones(matrix.shape[0], device=matrix.device, dtype=matrix.dtype)
    total = matrix.sum()
    linear = ones @ matrix @ centers + ones @ matrix.T @ centers  # (K,)
    constant = ((matrix @ centers) * centers).sum(0)  # (K,)
    form = features * features * total - features * linear + constant
    form = torch.where(torch.isfinite(form), form, torch.full_like(form, float("inf")))
    return form.clamp_min(SQRT_FLOOR).sqrt()


def radial_basis_activation(distance: Tensor, beta: Tensor) -> Tensor:
    """Eq. (2): phi_k = exp(-beta_k D_k) (an infinite distance gives exactly 0)."""
    return torch.exp(-beta * distance)


def kmeans_centers(
    points: Tensor, k: int, *, iterations: int = 20, generator: torch.Generator | None = None
) -> Tensor:
    """k-means (k-means++ seeding, then Lloyd iterations) of ``points`` (n, d); returns (k, d) centres.

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.3 (the centres ``c_k`` of eqs. (2)-(3) are learned
    end-to-end); an optional data-driven initialisation of those centres, used by neither the
    paper nor the authors' code (which draw them from U(0, 1)).

    With fewer distinct points than ``k`` the remaining centres are copies of sampled points.
    """
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"points must be a non-empty (n, d) matrix, got shape {tuple(points.shape)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n = len(points)
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [points[first]]
    closest = ((points - points[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:
            index = int(torch.randint(n, (1,), generator=generator))
        else:
            index = int(torch.multinomial(closest / total, 1, generator=generator))
        centers.append(points[index])
        closest = torch.minimum(closest, ((points - points[index]) ** 2).sum(1))
    c = torch.stack(centers)
    for _ in range(iterations):
        assign = torch.cdist(points, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=k).to(points.dtype).unsqueeze(1)
        c = torch.where(counts > 0, sums / counts.clamp_min(1.0), c)
    return c

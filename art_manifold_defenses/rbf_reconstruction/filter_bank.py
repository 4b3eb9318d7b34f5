"""The RBF layer of RBF-CNN: a bank of Gaussian filters over image patches and their match scores
(paper eq. 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils import resolve_device

__all__ = ["MIN_VARIANCE", "RBFFilterBank", "extract_patches", "match_scores"]

#: Variance floor of the authors' code (``conv`` = sigma^2 is never below it); pure-background filters sit at
#: it.
MIN_VARIANCE = 1e-20


def extract_patches(x: Tensor, patch_size: int) -> Tensor:
    """All ``patch_size`` x ``patch_size`` patches of ``x`` (stride 1, no padding), as ``(N, L, C*k*k)`` rows.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section III-a (the sliding-window patches ``z_i`` scored by
    eq. 2); patch extraction.

    The vector layout is PyTorch's ``unfold`` order (channel-major, then rows, then columns), the same layout
    as :attr:`RBFFilterBank.means`.
    """
    return F.unfold(x, kernel_size=patch_size).transpose(1, 2)


def match_scores(
    x: Tensor, means: Tensor, variances: Tensor, *, patch_size: int, in_channels: int, exact: bool = False
) -> Tensor:
    """Match score of every patch of ``x`` against every filter, as a map ``(N, J, H-k+1, W-k+1)``.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), RBF layer of Section III-a, eq. 2.

    ``s_j(z) = -||z - mu_j||^2 / (2 sigma_j^2) - ln(sigma_j)`` (paper eq. 2 without the constant
    ``-ln sqrt(2 pi)``, as in the authors' code). Expanded as ``z . mu_j / sigma_j^2 - ||z||^2 / (2 sigma_j^2)
    + c_j``, it is ONE convolution of ``[x, x^2]`` with the kernels ``[mu_j / sigma_j^2, -1 / (2 sigma_j^2)]``
    and bias ``c_j = -||mu_j||^2 / (2 sigma_j^2) - ln sigma_j`` -- a matrix product over all patches and
    filters at once. In float32 the expansion can shift a score by ~1e-2 for the tightest non-zero filters
    (sigmoid changes by < 1e-3); ``exact=True`` computes the clamped squared distance first (three extra
    passes over the score map).

    For a filter at the variance floor (the black-background filter, mean 0), ``1 / (2 sigma^2)`` is 5e19:
    scores are about -1e15 or lower for any patch that is not exactly black, finite in float32, with sigmoid 0
    and zero (not NaN) gradients; exactly black patches score ``-ln sigma = 23``.
    """
    if exact:
        kernel = means.view(-1, in_channels, patch_size, patch_size)
        cross = F.conv2d(x, kernel)
        ones = torch.ones(1, in_channels, patch_size, patch_size, dtype=x.dtype, device=x.device)
        patch_sq = F.conv2d(x * x, ones)
        distance = (patch_sq - 2.0 * cross + (means * means).sum(1).view(1, -1, 1, 1)).clamp_min(0.0)
        var = variances.view(1, -1, 1, 1)
        return -distance / (2.0 * var) - 0.5 * torch.log(var)
    inv = 1.0 / variances
    linear = (means * inv[:, None]).view(-1, in_channels, patch_size, patch_size)
    quadratic = (-0.5 * inv).view(-1, 1, 1, 1).expand(-1, in_channels, patch_size, patch_size)
    bias = -0.5 * (means * means).sum(1) * inv - 0.5 * torch.log(variances)
    return F.conv2d(torch.cat([x, x * x], dim=1), torch.cat([linear, quadratic], dim=1), bias)


class RBFFilterBank(nn.Module):
    """A bank of ``J`` RBF filters ``g_j(mu_j, sigma_j)`` over ``patch_size`` x ``patch_size`` patches.

    Paper: Nandy, Hsu and Lee, "Approximate Manifold Defense Against Multiple Adversarial Perturbations",
    IJCNN 2020 / arXiv:2004.02183 (RBF layer, eq. 2; filters learned by non-parametric EM, eq. 3, see
    :func:`~art_manifold_defenses.rbf_reconstruction.fit_rbf_filters`).

    ``means`` ``(J, C*k*k)`` and ``variances`` ``(J,)`` (sigma_j^2: the mean *total* squared distance of the
    assigned patches, as the authors store it) are buffers, so they are part of any state dict holding the
    bank and are restored by :func:`~art_manifold_defenses.checkpoint.load_checkpoint`.

    Limitations: patches are taken with stride 1 and no padding (the authors' ``VALID`` convolution), so
    border pixels are covered by fewer patches than interior ones; variances are floored at
    :data:`MIN_VARIANCE`.
    """

    params = ["patch_size", "in_channels"]

    means: Tensor
    variances: Tensor

    def __init__(
        self,
        means: Tensor | np.ndarray | None = None,
        variances: Tensor | np.ndarray | None = None,
        *,
        patch_size: int = 3,
        in_channels: int = 1,
        num_filters: int | None = None,
        device: str | torch.device | None = "cpu",
    ) -> None:
        """Build a bank from ``means`` and ``variances``, or an all-zero placeholder of ``num_filters``
        filters (to be filled by ``load_state_dict``) when both are ``None``: such an unfitted bank refuses to
        run (``ValueError``) until a state dict is loaded into it."""
        super().__init__()
        self.patch_size = patch_size
        self.in_channels = in_channels
        self._check_params()
        dim = in_channels * patch_size * patch_size
        if means is None and variances is None:
            if not isinstance(num_filters, int) or isinstance(num_filters, bool) or num_filters < 1:
                raise ValueError(
                    f"num_filters must be a positive integer when no means are given, got {num_filters!r}"
                )
            mean_t = torch.zeros(num_filters, dim)
            var_t = torch.ones(num_filters)
        elif means is None or variances is None:
            raise ValueError("means and variances must be given together")
        else:
            mean_t = (
                torch.as_tensor(np.asarray(means) if not isinstance(means, Tensor) else means)
                .float()
                .detach()
                .clone()
            )
            var_t = (
                torch.as_tensor(np.asarray(variances) if not isinstance(variances, Tensor) else variances)
                .float()
                .detach()
                .clone()
            )
            if mean_t.ndim != 2 or mean_t.shape[1] != dim or mean_t.shape[0] < 1:
                raise ValueError(
                    f"means must have shape (J >= 1, {dim}) for in_channels={in_channels}, "
                    f"patch_size={patch_size}; got {tuple(mean_t.shape)}"
                )
            if var_t.shape != (mean_t.shape[0],):
                raise ValueError(f"variances must have shape ({mean_t.shape[0]},), got {tuple(var_t.shape)}")
            if not (torch.isfinite(mean_t).all() and torch.isfinite(var_t).all()):
                raise ValueError("means and variances must be finite")
            if (var_t <= 0).any():
                raise ValueError(
                    "variances must be positive (they are sigma^2; the authors floor them at 1e-20)"
                )
            if num_filters is not None and num_filters != mean_t.shape[0]:
                raise ValueError(
                    f"num_filters={num_filters} does not match the {mean_t.shape[0]} means given"
                )
            var_t = var_t.clamp_min(MIN_VARIANCE)
        #: per-M-step record of the EM that learned the bank (empty for a bank built from given means)
        self.fit_history: list[dict[str, float]] = []
        #: False for a placeholder until ``load_state_dict`` fills it (an all-zero bank would reconstruct
        #: garbage)
        self.fitted = means is not None
        self.register_buffer("means", mean_t)
        self.register_buffer("variances", var_t)
        self.to(resolve_device(device))

    def _check_params(self) -> None:
        for name in ("patch_size", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def num_filters(self) -> int:
        """Number of filters ``J``."""
        return int(self.means.shape[0])

    @property
    def patch_dim(self) -> int:
        """Length of a patch vector, ``C * k * k``."""
        return self.in_channels * self.patch_size * self.patch_size

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "means" in state_dict and prefix + "variances" in state_dict:
            self.fitted = True

    def check_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a clear error if the bank is unfitted or ``x`` is not a non-empty finite ``(N, C, H, W)``
        batch the bank can read."""
        if not self.fitted:
            raise ValueError(
                f"the RBF filter bank is not fitted (an all-zero placeholder of {self.num_filters} filters): "
                "learn it "
                "with fit_rbf_filters / `amd fit-rbf`, load one with RBFFilterBank.load, or load_state_dict "
                "into it"
            )
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{name} has {x.shape[1]} channels but the filter bank expects in_channels={self.in_channels}"
            )
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise ValueError(
                f"{name} of size {tuple(x.shape[2:])} is smaller than patch_size={self.patch_size}"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or Inf values")

    def forward(self, x: Tensor, *, exact: bool = False) -> Tensor:
        """Match scores ``(N, J, H-k+1, W-k+1)`` of every patch of ``x`` against every filter (paper eq. 2);
        see :func:`match_scores` for ``exact``."""
        self.check_input(x)
        return match_scores(
            x.float(),
            self.means,
            self.variances,
            patch_size=self.patch_size,
            in_channels=self.in_channels,
            exact=exact,
        )

    def config(self) -> dict[str, Any]:
        """JSON-serialisable shape information (enough to rebuild an empty bank to load a state dict into)."""
        return {
            "num_filters": self.num_filters,
            "patch_size": self.patch_size,
            "in_channels": self.in_channels,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the bank to ``path`` (an ``.npz`` with ``means``, ``variances``, ``patch_size``,
        ``in_channels``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez(
                handle,
                means=self.means.detach().cpu().numpy(),
                variances=self.variances.detach().cpu().numpy(),
                patch_size=np.int64(self.patch_size),
                in_channels=np.int64(self.in_channels),
            )
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str | torch.device | None = "cpu"
    ) -> RBFFilterBank:
        """Read a bank written by :meth:`save` (no pickled objects are accepted)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"filter bank file {path} not found")
        with np.load(path, allow_pickle=False) as data:
            missing = {"means", "variances", "patch_size", "in_channels"} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not an RBF filter bank: missing {sorted(missing)}")
            return cls(
                data["means"],
                data["variances"],
                patch_size=int(data["patch_size"]),
                in_channels=int(data["in_channels"]),
                device=device,
            )

    def extra_repr(self) -> str:
        sig = self.variances.sqrt()
        return (
            f"num_filters={self.num_filters}, patch_size={self.patch_size}, in_channels={self.in_channels}, "
            f"sigma in [{float(sig.min()):.3g}, {float(sig.max()):.3g}]"
        )

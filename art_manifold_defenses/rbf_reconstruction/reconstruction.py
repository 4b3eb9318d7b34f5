"""The reconstruction layer of RBF-CNN (paper section III-b): weights from match scores, samples from the
filters, weighted patch sums stitched back into an image by averaging the overlaps."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils import resolve_device
from .filter_bank import RBFFilterBank

__all__ = [
    "RBFReconstruction",
    "compute_weights",
    "draw_filter_samples",
    "noise_std_per_filter",
    "overlap_count",
    "stitch_patches",
]

Weighting = Literal["base2", "exp"]
NoiseStd = Literal["authors_code", "paper"]
NoiseDraw = Literal["per_image", "fixed"]
Gradient = Literal["bpda", "full"]

WEIGHTINGS = ("base2", "exp")
NOISE_STDS = ("authors_code", "paper")
NOISE_DRAWS = ("per_image", "fixed")
GRADIENTS = ("bpda", "full")


def compute_weights(scores: Tensor, beta1: float, *, weighting: Weighting = "base2") -> Tensor:
    """Step 1 of the reconstruction: ``v = sigmoid(s)``, then ``w = 2^(beta1 v) / sum_j 2^(beta1 v_j)`` over
    the filter axis (dim 1) -- the authors' code -- or ``exp(beta1 v)`` normalised (``weighting="exp"``, the
    paper's text). Written as a softmax of ``beta1 ln2 v`` so that ``2^125`` never overflows.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section III-b, step 1 (sigmoid of the eq. 2 match scores,
    sharpened by ``beta1`` and normalised; the step itself has no equation number).
    """
    v = torch.sigmoid(scores)
    scale = beta1 * math.log(2.0) if weighting == "base2" else beta1
    return torch.softmax(scale * v, dim=1)


def noise_std_per_filter(variances: Tensor, beta2: float, *, noise_std: NoiseStd = "authors_code") -> Tensor:
    """Per-filter noise standard deviation of paper eq. 4: ``beta2 * sigma_j^2`` (authors' code, which scales
    the stored variance) or ``beta2 * sigma_j`` (``noise_std="paper"``, reading ``N(mu_j, sigma_j beta2 I)``
    as a spread ``sigma_j beta2``)."""
    if noise_std == "authors_code":
        return beta2 * variances
    return beta2 * variances.sqrt()


def draw_filter_samples(
    bank: RBFFilterBank,
    beta2: float,
    *,
    batch: int,
    noise_std: NoiseStd = "authors_code",
    generator: torch.Generator | None = None,
    unit_noise: Tensor | None = None,
) -> Tensor:
    """Step 2: the additive noise ``eps`` of ``z~_j = mu_j + eps_j`` (eq. 4), one draw per image:
    ``(batch, J, D)``.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section III-b, step 2, eq. 4.

    With ``unit_noise`` (standard-normal ``(J, D)``), that fixed draw is scaled instead (the authors' fixed
    noise per model copy) and returned as ``(1, J, D)``.
    """
    std = noise_std_per_filter(bank.variances, beta2, noise_std=noise_std).view(1, -1, 1)
    if unit_noise is not None:
        return unit_noise.unsqueeze(0) * std
    shape = (batch, bank.num_filters, bank.patch_dim)
    eps = torch.randn(shape, generator=generator, device=bank.means.device, dtype=bank.means.dtype)
    return eps * std


def overlap_count(
    height: int, width: int, patch_size: int, *, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """How many stride-1 patches cover each pixel: ``(1, 1, H, W)``, 1 at the corners up to ``k^2`` inside."""
    ones = torch.ones(1, 1, height - patch_size + 1, width - patch_size + 1, device=device, dtype=dtype)
    return F.conv_transpose2d(ones, torch.ones(1, 1, patch_size, patch_size, device=device, dtype=dtype))


def stitch_patches(weights: Tensor, samples: Tensor, *, in_channels: int, patch_size: int) -> Tensor:
    """Reconstruct every patch as ``sum_j w_j z~_j`` and stitch the patches back by averaging overlapping
    pixels.

    Paper: Nandy, Hsu and Lee 2020 (paper 000), Section III-b: each patch is ``w^T Z~`` with the eq. 4
    samples, and the reconstructed image averages the overlapping regions.

    Args:
        weights: ``(N, J, h, w)`` weight maps (one weight vector per patch position).
        samples: ``(J, D)`` filter samples shared by the batch, or ``(N, J, D)`` / ``(1, J, D)`` per image.

    Returns ``(N, C, h+k-1, w+k-1)``. A transposed convolution with the samples as kernels (grouped per image)
    sums the weighted patches; dividing by :func:`overlap_count` averages them.
    """
    n, j, h, w = weights.shape
    if samples.ndim == 2:
        samples = samples.unsqueeze(0)
    if samples.shape[0] == 1:
        samples = samples.expand(n, -1, -1)
    # grouped per image (groups = N, J -> C channels each): much faster on CPU than one J -> C transposed conv
    kernel = samples.reshape(n * j, in_channels, patch_size, patch_size)
    summed = F.conv_transpose2d(weights.reshape(1, n * j, h, w), kernel, groups=n)
    summed = summed.view(n, in_channels, h + patch_size - 1, w + patch_size - 1)
    count = overlap_count(
        h + patch_size - 1, w + patch_size - 1, patch_size, device=weights.device, dtype=weights.dtype
    )
    return summed / count


class RBFReconstruction(nn.Module):
    """RBF layer + reconstruction layer of RBF-CNN: maps an image to a "pseudo-clean" image.

    Paper: Nandy, Hsu and Lee, "Approximate Manifold Defense Against Multiple Adversarial Perturbations",
    arXiv:2004.02183, section III: match scores (eq. 2), weights from the sigmoid of the scores sharpened by
    ``beta1`` (step 1), samples ``z~_j = mu_j + N(0, .)`` from every filter (eq. 4, step 2), reconstructed
    patch ``w^T Z~``, overlapping patches averaged.

    Defaults follow the paper at test time (``beta1 = 25``, ``beta2 = 1.75``, output clipped to [0, 1]); what
    the paper leaves open follows the authors' code (``../shared/notes/reference_implementations.md`` section
    000):

    - ``weighting="base2"``: ``2^(beta1 v)`` (code); ``"exp"``: ``exp(beta1 v)`` (paper's text).
    - ``noise_std="authors_code"``: noise std ``beta2 sigma_j^2``; ``"paper"``: ``beta2 sigma_j``.
    - ``noise_draw="per_image"``: fresh noise for every image at every call; ``"fixed"``: one draw per model
      copy, made once from ``seed`` and reused for every image and call (authors' test script; ``copies``
      draws are kept, one per vote of :class:`~art_manifold_defenses.rbf_reconstruction.RBFCNN`).
    - ``gradient="bpda"`` (the paper's adaptive attack): the forward pass is the real, noisy reconstruction
      but the backward pass is that of the ``beta2 = 0`` reconstruction (``z~_j = mu_j``) without the clip --
      BPDA wired into ``forward`` so every attack that differentiates the module gets it. ``"full"``: plain
      autograd through the noisy, clipped reconstruction.

    Training uses ``beta1 = 125``, ``beta2 = 0`` and no clip (pass them to :meth:`forward`).

    Limitations: the reconstruction is a fixed, non-learned projection; an attacker who knows it (BPDA + EoT)
    is the paper's own strongest attack. Inputs outside [0, 1] are accepted (Gaussian-noise certification
    feeds them).
    """

    params = [
        "beta1",
        "beta2",
        "weighting",
        "noise_std",
        "noise_draw",
        "gradient",
        "clip",
        "chunk_size",
        "copies",
        "seed",
    ]

    fixed_noise: Tensor

    def __init__(
        self,
        filter_bank: RBFFilterBank,
        *,
        beta1: float = 25.0,
        beta2: float = 1.75,
        weighting: Weighting = "base2",
        noise_std: NoiseStd = "authors_code",
        noise_draw: NoiseDraw = "per_image",
        gradient: Gradient = "bpda",
        clip: bool = True,
        chunk_size: int = 1000,
        copies: int = 1,
        seed: int | None = None,
        device: str | torch.device | None = "cpu",
    ) -> None:
        super().__init__()
        if not isinstance(filter_bank, RBFFilterBank):
            raise TypeError(f"filter_bank must be an RBFFilterBank, got {type(filter_bank).__name__}")
        self.bank = filter_bank
        self.beta1 = beta1
        self.beta2 = beta2
        self.weighting = weighting
        self.noise_std = noise_std
        self.noise_draw = noise_draw
        self.gradient = gradient
        self.clip = clip
        self.chunk_size = chunk_size
        self.copies = copies
        self.seed = seed
        self._check_params()
        self._generators: dict[str, torch.Generator] = {}
        self.register_buffer("fixed_noise", self._draw_fixed_noise(), persistent=False)
        self.to(resolve_device(device))

    # --------------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        _check_nonneg_number("beta1", self.beta1, positive=True)
        _check_nonneg_number("beta2", self.beta2)
        _check_choice("weighting", self.weighting, WEIGHTINGS)
        _check_choice("noise_std", self.noise_std, NOISE_STDS)
        _check_choice("noise_draw", self.noise_draw, NOISE_DRAWS)
        _check_choice("gradient", self.gradient, GRADIENTS)
        if not isinstance(self.clip, bool):
            raise TypeError(f"clip must be a bool, got {type(self.clip).__name__}")
        for name in ("chunk_size", "copies"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise TypeError(f"seed must be an int or None, got {self.seed!r}")

    def _draw_fixed_noise(self) -> Tensor:
        shape = (self.copies, self.bank.num_filters, self.bank.patch_dim)
        gen = torch.Generator().manual_seed(self.seed if self.seed is not None else 0)
        return torch.randn(shape, generator=gen)

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def reseed(self, seed: int | None) -> None:
        """Restart the per-image noise stream from ``seed`` (``None``: torch's global generator); redraw fixed
        noise."""
        self.seed = seed
        self._check_params()
        self._generators.clear()
        self.fixed_noise = self._draw_fixed_noise().to(self.bank.means.device)

    @property
    def stochastic(self) -> bool:
        """True when the forward pass injects noise (``beta2 > 0`` and per-image draws)."""
        return self.beta2 > 0 and self.noise_draw == "per_image"

    # --------------------------------------------------------------------------------------------------------
    def deterministic(self, x: Tensor, *, beta1: float | None = None) -> Tensor:
        """The ``beta2 = 0`` reconstruction (``z~_j = mu_j``), unclipped: the BPDA surrogate of
        :meth:`forward`."""
        self.bank.check_input(x)
        b1 = self.beta1 if beta1 is None else beta1
        outs = []
        for start in range(0, x.shape[0], self.chunk_size):
            chunk = x[start : start + self.chunk_size].float()
            weights = compute_weights(self.bank(chunk), b1, weighting=self.weighting)
            outs.append(
                stitch_patches(
                    weights,
                    self.bank.means,
                    in_channels=self.bank.in_channels,
                    patch_size=self.bank.patch_size,
                )
            )
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def forward(
        self,
        x: Tensor,
        *,
        beta1: float | None = None,
        beta2: float | None = None,
        clip: bool | None = None,
        copy: int = 0,
    ) -> Tensor:
        """Reconstruct ``x`` ``(N, C, H, W)``; keyword overrides for one call (training: ``beta1=125, beta2=0,
        clip=False``); ``copy`` selects the fixed noise draw with ``noise_draw="fixed"``."""
        self.bank.check_input(x)
        b1 = self.beta1 if beta1 is None else float(beta1)
        b2 = self.beta2 if beta2 is None else float(beta2)
        do_clip = self.clip if clip is None else clip
        _check_nonneg_number("beta1", b1, positive=True)
        _check_nonneg_number("beta2", b2)
        if not 0 <= copy < self.copies:
            raise ValueError(f"copy must lie in [0, {self.copies - 1}], got {copy}")
        outs = [
            self._reconstruct_chunk(x[start : start + self.chunk_size].float(), b1, b2, do_clip, copy)
            for start in range(0, x.shape[0], self.chunk_size)
        ]
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _reconstruct_chunk(self, x: Tensor, beta1: float, beta2: float, clip: bool, copy: int) -> Tensor:
        k, c = self.bank.patch_size, self.bank.in_channels
        weights = compute_weights(self.bank(x), beta1, weighting=self.weighting)
        base = stitch_patches(weights, self.bank.means, in_channels=c, patch_size=k)
        if beta2 == 0:
            if not clip:
                return base
            # beta2 = 0 stays in [0, 1] up to rounding; clip the value, keep the identity gradient
            return base + (base.clamp(0.0, 1.0) - base).detach()
        unit = self.fixed_noise[copy] if self.noise_draw == "fixed" else None
        eps = draw_filter_samples(
            self.bank,
            beta2,
            batch=x.shape[0],
            noise_std=self.noise_std,
            generator=self._generator(x.device),
            unit_noise=unit,
        )
        if self.gradient == "full":
            out = stitch_patches(weights, self.bank.means.unsqueeze(0) + eps, in_channels=c, patch_size=k)
            return out.clamp(0.0, 1.0) if clip else out
        noise_part = stitch_patches(weights.detach(), eps, in_channels=c, patch_size=k)
        noisy = base.detach() + noise_part
        if clip:
            noisy = noisy.clamp(0.0, 1.0)
        return base + (noisy - base).detach()

    def extra_repr(self) -> str:
        return (
            f"beta1={self.beta1}, beta2={self.beta2}, weighting={self.weighting!r}, "
            f"noise_std={self.noise_std!r}, "
            f"noise_draw={self.noise_draw!r}, gradient={self.gradient!r}, clip={self.clip}"
        )


def _check_nonneg_number(name: str, value: object, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)) or value < 0 or (positive and value == 0):
        raise ValueError(
            f"{name} must be a finite {'positive' if positive else 'non-negative'} number, got {value!r}"
        )


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")

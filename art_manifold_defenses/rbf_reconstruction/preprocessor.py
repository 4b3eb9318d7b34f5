"""ART plug-in: the RBF-CNN reconstruction as a ``PreprocessorPyTorch`` with the paper's BPDA gradient."""

from __future__ import annotations

from typing import Any

import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from torch import Tensor

from .filter_bank import RBFFilterBank
from .reconstruction import NoiseDraw, NoiseStd, RBFReconstruction, Weighting

__all__ = ["RBFReconstructionPyTorch"]


class RBFReconstructionPyTorch(PreprocessorPyTorch):
    """RBF-CNN's RBF + reconstruction layers as an ART preprocessing defence.

    Paper: Nandy, Hsu and Lee, "Approximate Manifold Defense Against Multiple Adversarial Perturbations",
    arXiv:2004.02183 -- RBF layer (eq. 2), reconstruction (eq. 4, steps 1-2), adaptive attack (section IV-A:
    "in the backward propagation ... z_j = mu_j", i.e. BPDA through the ``beta2 = 0`` reconstruction, plus
    EoT).

    ``forward`` is the real, stochastic reconstruction (fresh noise per image and call when ``beta2 > 0``),
    clipped to ``[0, 1]``; its autograd graph is that of the deterministic ``beta2 = 0`` reconstruction (BPDA
    inside ``forward``), because ``PyTorchClassifier.loss_gradient`` differentiates ``forward`` and never
    calls ``estimate_forward``. ``estimate_forward`` returns that same differentiable surrogate. EoT is *not*
    done here (ART attacks have no EoT option): wrap the defended model in an averaging module, e.g. the
    harness' ``EoT``.

    Defaults are the paper's test values (``beta1 = 25``, ``beta2 = 1.75``) and the authors' code for what the
    paper leaves open (base-2 weights, noise std ``beta2 sigma_j^2``); see
    :class:`~art_manifold_defenses.rbf_reconstruction.RBFReconstruction` for the options.

    ``apply_fit`` defaults to False: ``PyTorchClassifier.fit`` would apply it once to the whole training set,
    while RBF-CNN training reconstructs every batch afresh (``beta1 = 125``, ``beta2 = 0``), which
    :class:`~art_manifold_defenses.rbf_reconstruction.RBFCNNTrainer` does itself.

    The reconstruction itself is the public attribute ``reconstruction``, an
    :class:`~art_manifold_defenses.rbf_reconstruction.RBFReconstruction` ``nn.Module`` (images in,
    reconstructed images out, same noise and gradient as ``forward``) for plain PyTorch or Foolbox code, e.g.
    ``nn.Sequential(defence.reconstruction, cnn)``; :meth:`set_params` replaces it with a new one.

    Limitations: one stochastic draw per call, so ART's success checks and ``predict`` see noisy, varying
    outputs; ``clip_values`` bounds are checked on input (set ``clip_values=None`` for Gaussian-noise
    certification inputs).
    """

    params = ["beta1", "beta2", "weighting", "noise_std", "noise_draw", "chunk_size", "clip_values", "seed"]

    def __init__(
        self,
        filter_bank: RBFFilterBank,
        *,
        beta1: float = 25.0,
        beta2: float = 1.75,
        weighting: Weighting = "base2",
        noise_std: NoiseStd = "authors_code",
        noise_draw: NoiseDraw = "per_image",
        chunk_size: int = 1000,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        seed: int | None = None,
        apply_fit: bool = False,
        apply_predict: bool = True,
        device_type: str = "gpu",
    ) -> None:
        super().__init__(
            device_type=device_type, is_fitted=True, apply_fit=apply_fit, apply_predict=apply_predict
        )
        if not isinstance(filter_bank, RBFFilterBank):
            raise TypeError(
                "filter_bank must be an RBFFilterBank (fit one with fit_rbf_filters), got "
                f"{type(filter_bank).__name__}"
            )
        self.filter_bank = filter_bank
        self.beta1 = beta1
        self.beta2 = beta2
        self.weighting = weighting
        self.noise_std = noise_std
        self.noise_draw = noise_draw
        self.chunk_size = chunk_size
        self.clip_values = clip_values
        self.seed = seed
        self._check_params()
        self._build()

    def _reconstruction(self, device: str | torch.device) -> RBFReconstruction:
        """An :class:`RBFReconstruction` with this defence's parameters (BPDA gradient, clipped output) on
        ``device``; its constructor validates them."""
        return RBFReconstruction(
            self.filter_bank,
            beta1=self.beta1,
            beta2=self.beta2,
            weighting=self.weighting,
            noise_std=self.noise_std,
            noise_draw=self.noise_draw,
            gradient="bpda",
            clip=True,
            chunk_size=self.chunk_size,
            seed=self.seed,
            device=device,
        )

    def _build(self) -> None:
        self.reconstruction = self._reconstruction(self.device)

    def set_params(self, **kwargs: Any) -> None:
        """Set ``params`` (validated) and rebuild the reconstruction."""
        unknown = set(kwargs) - set(self.params)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; settable: {self.params}")
        super().set_params(**kwargs)
        self._build()

    def _check_params(self) -> None:
        if self.clip_values is not None:
            if len(self.clip_values) != 2 or not float(self.clip_values[0]) < float(self.clip_values[1]):
                raise ValueError(
                    f"clip_values must be (min, max) with min < max, or None; got {self.clip_values!r}"
                )
        # the remaining parameters are validated by RBFReconstruction (beta1 > 0, beta2 >= 0, choices,
        # chunk_size)
        self._reconstruction(self.filter_bank.means.device)

    def _check_input(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        x = x.float()
        self.filter_bank.check_input(x)
        if self.clip_values is not None:
            low, high = float(self.clip_values[0]), float(self.clip_values[1])
            lo_seen, hi_seen = float(x.detach().min()), float(x.detach().max())
            if lo_seen < low - 1e-4 or hi_seen > high + 1e-4:
                raise ValueError(
                    f"x must lie in clip_values [{low}, {high}], got [{lo_seen:.4g}, {hi_seen:.4g}]"
                )
        return x

    def forward(self, x: Tensor, y: Any | None = None) -> tuple[Tensor, Any | None]:
        """Stochastic reconstruction of ``x`` (clipped to [0, 1]) with the ``beta2 = 0`` reconstruction's
        gradient."""
        x = self._check_input(x)
        return self.reconstruction(x), y

    def estimate_forward(self, x: Tensor, y: Any | None = None) -> Tensor:
        """The differentiable BPDA surrogate: the deterministic ``beta2 = 0`` reconstruction (same gradient as
        :meth:`forward`)."""
        x = self._check_input(x)
        return self.reconstruction.deterministic(x)

    @property
    def stochastic(self) -> bool:
        """True when ``forward`` injects fresh noise (``beta2 > 0`` with per-image draws)."""
        return self.reconstruction.stochastic

    def reseed(self, seed: int | None) -> None:
        """Restart the noise stream from ``seed``."""
        self.seed = seed
        self.reconstruction.reseed(seed)

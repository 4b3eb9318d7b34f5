"""RBF-CNN as one ``nn.Module``: reconstruction + CNN, prediction by voting over m reconstructions
(paper eq. 5)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..utils import resolve_device
from .filter_bank import RBFFilterBank
from .reconstruction import NoiseDraw, NoiseStd, RBFReconstruction, Weighting

__all__ = ["RBFCNN", "StaticRBFCNN"]


class StaticRBFCNN(nn.Module):
    """The deterministic ``beta2 = 0`` RBF-CNN (paper's "static" model, ``z_j = mu_j``): one reconstruction,
    the CNN, logits. It shares the filter bank and the CNN of its :class:`RBFCNN` (no copies).

    Paper: Nandy, Hsu and Lee 2020 (paper 000), eq. 4 with ``beta2 = 0`` (``z_j = mu_j``), the model the
    "static attacks" of Section IV-A target.
    """

    def __init__(self, parent: RBFCNN) -> None:
        super().__init__()
        object.__setattr__(self, "_parent", parent)  # not a submodule: no duplicate state-dict entries

    def forward(self, x: Tensor) -> Tensor:
        parent: RBFCNN = self._parent  # type: ignore[assignment]
        recon = parent.reconstruction(x.float(), beta2=0.0, clip=True)
        return parent.classifier(recon)


class RBFCNN(nn.Module):
    """RBF-CNN classifier: RBF layer + reconstruction layer + any CNN, returning logits.

    Paper: Nandy, Hsu and Lee, "Approximate Manifold Defense Against Multiple Adversarial Perturbations",
    arXiv:2004.02183: reconstruction (section III-b) then the CNN; the prediction is the argmax of the sum of
    the softmax outputs of ``m = votes`` independent reconstructions (eq. 5, ``m = 10``).

    - ``eval()`` mode: ``forward`` returns ``log(mean_k softmax(CNN(recon_k(x))))`` over ``votes`` noisy
      reconstructions (``beta1 = 25``, ``beta2 = 1.75``, clipped): its argmax is eq. 5, and it is a proper
      log-probability for cross-entropy attacks. Gradients follow the paper's adaptive attack (BPDA through
      the ``beta2 = 0`` reconstruction, wired inside the reconstruction's forward).
    - ``train()`` mode: one deterministic reconstruction with the training ``train_beta1 = 125``,
      ``beta2 = 0``, no clip (authors' code), then the CNN's logits.

    Harness contract: ``stochastic`` is True when ``beta2 > 0`` with fresh per-image noise (attack with EoT,
    score by majority vote). The paper's adaptive gradient (noisy forward, ``beta2 = 0`` backward) is already
    wired inside ``forward``, so by default ``bpda_surrogate`` is ``None``: a harness-level BPDA with the
    static model would replace it by the gradient of the static model at ``x`` alone, which ignores the noise
    (the paper's weaker "static" attacks). :meth:`static_model` returns that deterministic ``beta2 = 0`` model
    (:class:`StaticRBFCNN`) for static / transfer attacks; ``expose_static_surrogate=True`` publishes it as
    ``bpda_surrogate``.

    With ``noise_draw="fixed"`` each vote ``k`` uses its own noise draw fixed at construction (``votes`` model
    copies, as in the authors' test script) and the model is deterministic.

    Public attributes: ``reconstruction`` (the :class:`RBFReconstruction` ``nn.Module``, built with
    ``copies=votes``) and ``classifier`` (the CNN); ``nn.Sequential(model.reconstruction, model.classifier)``
    is a one-vote RBF-CNN for plain PyTorch code.

    Limitations: ``votes`` CNN passes per prediction (10x the cost of the CNN); the reconstruction is fixed,
    so an adaptive BPDA + EoT attacker is the relevant threat (the paper reports 39.4 % for rCNN at l-inf 0.3
    on MNIST).
    """

    params = [
        "beta1",
        "beta2",
        "train_beta1",
        "votes",
        "weighting",
        "noise_std",
        "noise_draw",
        "chunk_size",
        "seed",
        "expose_static_surrogate",
    ]

    def __init__(
        self,
        classifier: nn.Module,
        filter_bank: RBFFilterBank,
        *,
        beta1: float = 25.0,
        beta2: float = 1.75,
        train_beta1: float = 125.0,
        votes: int = 10,
        weighting: Weighting = "base2",
        noise_std: NoiseStd = "authors_code",
        noise_draw: NoiseDraw = "per_image",
        chunk_size: int = 1000,
        seed: int | None = None,
        expose_static_surrogate: bool = False,
        device: str | torch.device | None = "cpu",
    ) -> None:
        super().__init__()
        if not isinstance(expose_static_surrogate, bool):
            raise TypeError(f"expose_static_surrogate must be a bool, got {expose_static_surrogate!r}")
        self.expose_static_surrogate = expose_static_surrogate
        if not isinstance(classifier, nn.Module):
            raise TypeError(
                f"classifier must be an nn.Module returning logits, got {type(classifier).__name__}"
            )
        if not isinstance(votes, int) or isinstance(votes, bool) or votes < 1:
            raise ValueError(f"votes must be a positive integer (the paper's m = 10), got {votes!r}")
        if (
            isinstance(train_beta1, bool)
            or not isinstance(train_beta1, (int, float))
            or not (0 < train_beta1 < math.inf)
        ):
            raise ValueError(
                f"train_beta1 must be a finite positive number (authors' code: 125), got {train_beta1!r}"
            )
        self.classifier = classifier
        self.reconstruction = RBFReconstruction(
            filter_bank,
            beta1=beta1,
            beta2=beta2,
            weighting=weighting,
            noise_std=noise_std,
            noise_draw=noise_draw,
            gradient="bpda",
            clip=True,
            chunk_size=chunk_size,
            copies=votes,
            seed=seed,
            device=device,
        )
        self.train_beta1 = float(train_beta1)
        self.votes = votes
        self.to(resolve_device(device))

    # harness contract
    # -------------------------------------------------------------------------------------------
    @property
    def stochastic(self) -> bool:
        """True when predictions are random (``beta2 > 0`` and fresh noise per call)."""
        return self.reconstruction.stochastic

    @property
    def bpda_surrogate(self) -> nn.Module | None:
        """``None`` (the BPDA gradient is inside ``forward``), or the static model with
        ``expose_static_surrogate=True``."""
        return StaticRBFCNN(self) if self.expose_static_surrogate else None

    def static_model(self) -> StaticRBFCNN:
        """The deterministic ``beta2 = 0`` RBF-CNN (shares this model's bank and CNN): the target of the
        paper's static attacks and a transfer-attack source."""
        return StaticRBFCNN(self)

    @property
    def filter_bank(self) -> RBFFilterBank:
        return self.reconstruction.bank

    @property
    def beta2(self) -> float:
        return float(self.reconstruction.beta2)

    def set_beta2(self, beta2: float) -> None:
        """Change the test-time noise level (paper Table VII: the run-time robustness/accuracy trade-off)."""
        self.reconstruction.beta2 = beta2
        self.reconstruction._check_params()

    def config(self) -> dict[str, Any]:
        """Hyper-parameters and bank shape: the ``params`` of the checkpoint's defence metadata."""
        r = self.reconstruction
        return {
            **self.filter_bank.config(),
            "beta1": r.beta1,
            "beta2": r.beta2,
            "train_beta1": self.train_beta1,
            "votes": self.votes,
            "weighting": r.weighting,
            "noise_std": r.noise_std,
            "noise_draw": r.noise_draw,
            "chunk_size": r.chunk_size,
            "seed": r.seed,
        }

    # forward
    # ------------------------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        if self.training:
            return self.classifier(self.reconstruction(x, beta1=self.train_beta1, beta2=0.0, clip=False))
        if self.reconstruction.beta2 == 0:
            # every vote would be the same deterministic reconstruction
            return torch.log_softmax(self.classifier(self.reconstruction(x)), dim=1)
        probs = None
        for k in range(self.votes):
            p = torch.softmax(self.classifier(self.reconstruction(x, copy=k)), dim=1)
            probs = p if probs is None else probs + p
        assert probs is not None
        return torch.log(probs / self.votes + 1e-12)

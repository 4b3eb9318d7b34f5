"""An ``nn.Module`` view of a Gaussian-smoothed classifier, for the evaluation harness and for checkpoints."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..utils import check_image_tensor, check_positive_int

__all__ = ["SmoothedClassifier"]


class SmoothedClassifier(nn.Module):
    """``x -> base(x + N(0, sigma^2 I))``: the randomized classifier of Li et al. (2019), Algorithm 1, step 3.

    | Paper link: https://arxiv.org/abs/1809.03113

    Every forward pass draws fresh noise, so the module is stochastic (``stochastic = True``): the evaluation
    harness attacks it with EoT (the gradient of the noise addition is the identity, so no BPDA surrogate is
    needed) and scores it by majority vote, which is the smoothed classifier's prediction. With
    ``samples > 1`` a forward pass returns ``log(mean softmax)`` over that many noisy copies (a soft vote;
    cross-entropy on it is the loss of the smoothed soft classifier); ``samples = 1`` returns the base logits
    of one noisy copy.

    Certification is done by :class:`~art_manifold_defenses.smoothing.RenyiSmoothingPyTorch` (the noise here
    is not clipped either, as in the papers).

    Args:
        base: the base classifier (logits).
        sigma: noise standard deviation in input space.
        samples: noisy copies per forward pass.
        generator: optional torch generator (on the input's device) for reproducible noise.
    """

    params = ["sigma", "samples"]

    def __init__(
        self, base: nn.Module, sigma: float, *, samples: int = 1, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.base = base
        self.sigma = sigma
        self.samples = samples
        self.generator = generator
        self.stochastic = True
        self._check_params()

    def _check_params(self) -> None:
        if not isinstance(self.base, nn.Module):
            raise TypeError(f"base must be an nn.Module, got {type(self.base).__name__}")
        if (
            isinstance(self.sigma, bool)
            or not isinstance(self.sigma, (int, float))
            or not 0 < float(self.sigma) < float("inf")
        ):
            raise ValueError(f"sigma must be a positive finite float, got {self.sigma!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"samples must be a positive integer, got {self.samples!r}")

    def add_noise(self, x: Tensor) -> Tensor:
        """``x + sigma * N(0, I)``."""
        noise = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x + float(self.sigma) * noise

    def forward(self, x: Tensor) -> Tensor:
        check_image_tensor(x, "x")  # images in [0, 1]: sigma is in those units
        x = x.float()
        if self.samples == 1:
            return self.base(self.add_noise(x))
        log_probs = torch.stack(
            [torch.log_softmax(self.base(self.add_noise(x)), dim=1) for _ in range(self.samples)]
        )
        return torch.logsumexp(log_probs, dim=0) - torch.log(
            torch.tensor(float(self.samples), device=x.device)
        )

    @torch.no_grad()
    def predict_vote(self, x: Tensor, n: int = 100) -> Tensor:
        """Majority vote of the base classifier over ``n`` noisy copies (ties -> lowest class index)."""
        check_positive_int(n, "n")
        check_image_tensor(x, "x")
        x = x.float()
        votes: Tensor | None = None
        for _ in range(n):
            logits = self.base(self.add_noise(x))
            if votes is None:
                votes = torch.zeros(logits.shape, dtype=torch.int64, device=x.device)
            votes[torch.arange(len(x), device=x.device), logits.argmax(dim=1)] += 1
        assert votes is not None
        return votes.argmax(dim=1)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, samples={self.samples}"

"""Wrappers that turn a defended model into something every attack library can attack adaptively.

* :class:`EoT` -- Expectation over Transformation (Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust
  Adversarial Examples", ICML 2018, https://arxiv.org/abs/1707.07397; used against randomized defences in
  Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018,
  https://arxiv.org/abs/1802.00420, Sec. 4.3).
* :class:`BPDA` -- Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner 2018, Sec. 4.1).

Both are plain :class:`torch.nn.Module` objects returning logits, so they work unchanged in ART
(``PyTorchClassifier``), Foolbox (``PyTorchModel``), CleverHans (``model_fn``) and torchattacks: none of these
libraries has an EoT option of its own (see ``notes/art_api.md`` Sec. 2.3), and ART differentiates
``forward()`` directly, so the BPDA gradient must live inside ``forward()``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["BPDA", "EoT"]

_AVERAGES = ("logits", "probabilities")


class EoT(nn.Module):
    r"""Expectation over Transformation: the average output of ``samples`` stochastic passes of ``module``.

    With ``average="logits"`` the output is :math:`\frac1k \sum_{i=1}^k f_i(x)` (the mean of the logits, the
    convention of Foolbox's ``ExpectationOverTransformationWrapper``). With ``average="probabilities"`` it is
    :math:`\log \frac1k \sum_i \operatorname{softmax}(f_i(x))`, the log of the mean softmax (Athalye
    et al. 2018, Eq. 1 averages the loss/probability over transformations); it is computed with ``logsumexp``
    for numerical stability and, being a log-probability vector, it is itself a valid logit input for
    cross-entropy, argmax and every attack library. The gradient of either output is the average of the
    per-pass gradients, i.e. a Monte-Carlo estimate of the gradient of the expectation.

    :param module: the stochastic model (any ``nn.Module`` mapping an input batch to logits ``(N, C)``).
    :param samples: number of stochastic passes ``k`` averaged per call (``>= 1``).
    :param average: ``"logits"`` or ``"probabilities"`` (see above).
    :param vectorize: when ``True`` the ``k`` passes run as one forward on a batch repeated ``k`` times
    (faster on a
        GPU, ``k`` times the memory). Only valid when the module draws its randomness independently per
        sample; a module that draws one random transformation per *batch* must use the default sequential
        passes.

    Known limitations: the estimate is unbiased for the mean logits/probabilities but the log of the mean
    softmax is a biased (Jensen) estimate of the log of the expectation; ``k`` passes cost ``k`` forwards and
    backwards. The wrapper does not make predictions deterministic: the harness scores stochastic models by
    majority vote.
    """

    params = ["samples", "average", "vectorize"]

    def __init__(
        self, module: nn.Module, samples: int = 8, *, average: str = "logits", vectorize: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.samples = samples
        self.average = average
        self.vectorize = vectorize
        self._check_params()

    def _check_params(self) -> None:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {self.samples!r}")
        if self.average not in _AVERAGES:
            raise ValueError(f"average must be one of {_AVERAGES}, got {self.average!r}")
        if not isinstance(self.vectorize, bool):
            raise TypeError(f"vectorize must be a bool, got {type(self.vectorize).__name__}")

    @property
    def stochastic(self) -> bool:
        """Whether the wrapped module is stochastic (read from its ``stochastic`` attribute, default
        ``True``)."""
        return bool(getattr(self.module, "stochastic", True))

    def _passes(self, x: Tensor) -> Tensor:
        """The ``k`` outputs stacked as ``(k, N, C)``."""
        if self.vectorize:
            out = self.module(x.repeat(self.samples, *([1] * (x.dim() - 1))))
            return out.reshape(self.samples, x.shape[0], *out.shape[1:])
        return torch.stack([self.module(x) for _ in range(self.samples)])

    def forward(self, x: Tensor) -> Tensor:
        outputs = self._passes(x)
        if outputs.dim() != 3:
            raise ValueError(
                "EoT expects the wrapped module to return logits of shape (N, C), got "
                f"{tuple(outputs.shape[1:])}"
            )
        if self.average == "logits":
            return outputs.mean(dim=0)
        log_probs = torch.log_softmax(outputs, dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(self.samples)

    def extra_repr(self) -> str:
        return f"samples={self.samples}, average={self.average!r}, vectorize={self.vectorize}"


class BPDA(nn.Module):
    r"""Backward Pass Differentiable Approximation as a straight-through module.

    The forward value is ``module(x)``; the backward pass is the gradient of ``surrogate(x)`` (Athalye,
    Carlini & Wagner 2018, Sec. 4.1: replace a non-differentiable or gradient-masking layer :math:`f^i` by a
    differentiable :math:`g \approx f^i` on the backward pass only). It is implemented as

    .. math:: \text{out} = s(x) + \operatorname{stopgrad}(m(x) - s(x)),

    so the value equals :math:`m(x)` exactly and :math:`\partial\,\text{out}/\partial x = \partial
    s(x)/\partial x`. With ``surrogate=None`` the surrogate is the identity (the paper's choice for
    preprocessors with :math:`f(x) \approx x`, e.g. quantisation or JPEG), which requires ``module`` to
    preserve the input shape.

    Two uses:

    * wrap a non-differentiable *preprocessor* (``BPDA(quantise)``) and compose it with the classifier;
    * wrap a whole defended *model* with its deterministic stand-in
      (``BPDA(defended, defended.bpda_surrogate)``), as the harness does for models exposing
      ``bpda_surrogate``.

    :param module: the real (possibly non-differentiable or stochastic) module; its own gradient is never
    used, so it
        is evaluated without building a graph.
    :param surrogate: a differentiable module with the same output shape as ``module``; ``None`` = identity.

    Known limitations: the attack only sees the surrogate's gradient; a poor surrogate gives a weak attack
    (the forward value is always the real model's, so the attack's success is never overstated).
    """

    params = ["surrogate"]

    def __init__(self, module: nn.Module, surrogate: nn.Module | None = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if surrogate is not None and not isinstance(surrogate, nn.Module):
            raise TypeError(f"surrogate must be a torch.nn.Module or None, got {type(surrogate).__name__}")
        self.module = module
        self.surrogate = surrogate

    @property
    def stochastic(self) -> bool:
        """Whether the wrapped module is stochastic (its ``stochastic`` attribute, default ``False``)."""
        return bool(getattr(self.module, "stochastic", False))

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            value = self.module(x.detach())
        approx = x if self.surrogate is None else self.surrogate(x)
        if approx.shape != value.shape:
            which = "the input (identity surrogate)" if self.surrogate is None else "the surrogate's output"
            raise ValueError(
                f"BPDA needs the module output shape {tuple(value.shape)} to equal the shape of {which} "
                f"{tuple(approx.shape)}; pass a surrogate with the module's output shape"
            )
        return approx + (value.to(approx.dtype) - approx).detach()

    def extra_repr(self) -> str:
        return "surrogate=identity" if self.surrogate is None else ""

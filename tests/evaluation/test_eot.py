"""EoT and BPDA wrappers: averaging, gradients, straight-through behaviour, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.evaluation.attacks import AttackSpec, run_attack
from art_manifold_defenses.evaluation.eot import BPDA, EoT


class CountingLogits(nn.Module):
    """Deterministic 'stochastic' module: pass i returns ``linear(x) + i`` (i = 0, 1, 2, ...)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x) + float(self.calls)
        self.calls += 1
        return out


class RandomScale(nn.Module):
    """A randomized model: logits of ``x * s`` with ``s ~ U(0.5, 1.5)`` drawn per sample and per pass."""

    stochastic = True

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 0.5 + torch.rand(x.shape[0], 1)
        return self.linear(x * scale)


class Quantise(nn.Module):
    """A gradient-masking preprocessor: ``round(x * levels) / levels`` has a zero gradient almost
    everywhere."""

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * self.levels) / self.levels


def test_eot_logits_is_mean_of_k_passes() -> None:
    module = CountingLogits()
    x = torch.randn(5, 4)
    base = module.linear(x).detach()
    out = EoT(module, samples=4)(x)
    assert module.calls == 4
    torch.testing.assert_close(out, base + 1.5)  # mean of offsets 0, 1, 2, 3


def test_eot_probabilities_is_log_of_mean_softmax() -> None:
    module = CountingLogits()
    x = torch.randn(5, 4)
    base = module.linear(x).detach()
    out = EoT(module, samples=3, average="probabilities")(x)
    expected = torch.log(torch.stack([torch.softmax(base + i, dim=1) for i in range(3)]).mean(0))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(torch.logsumexp(out, dim=1), torch.zeros(5))  # valid log-probabilities


def test_eot_averages_away_randomness() -> None:
    torch.manual_seed(0)
    module = RandomScale()
    x = torch.randn(3, 4)
    single = torch.stack([module(x) for _ in range(20)]).std(0).mean()
    averaged = torch.stack([EoT(module, samples=32)(x) for _ in range(20)]).std(0).mean()
    assert averaged < single / 3  # std shrinks ~ 1/sqrt(32)


def test_eot_gradient_is_mean_of_per_pass_gradients() -> None:
    module = RandomScale()
    x = torch.randn(2, 4, requires_grad=True)
    torch.manual_seed(5)
    EoT(module, samples=6)(x)[:, 0].sum().backward()
    assert x.grad is not None
    eot_grad = x.grad.clone()
    assert torch.isfinite(eot_grad).all() and eot_grad.abs().sum() > 0
    torch.manual_seed(5)
    x2 = x.detach().clone().requires_grad_(True)
    manual = torch.stack([module(x2)[:, 0] for _ in range(6)]).mean(0).sum()
    manual.backward()
    assert x2.grad is not None
    torch.testing.assert_close(eot_grad, x2.grad)


def test_eot_vectorized_matches_sequential_for_deterministic_module() -> None:
    torch.manual_seed(0)
    module = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    torch.testing.assert_close(EoT(module, 3, vectorize=True)(x), module(x))
    torch.testing.assert_close(
        EoT(module, 3, average="probabilities", vectorize=True)(x), torch.log_softmax(module(x), 1)
    )


def test_eot_validates_arguments() -> None:
    with pytest.raises(ValueError, match="samples"):
        EoT(nn.Linear(2, 2), samples=0)
    with pytest.raises(ValueError, match="samples"):
        EoT(nn.Linear(2, 2), samples=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="average"):
        EoT(nn.Linear(2, 2), average="median")
    with pytest.raises(TypeError, match="module"):
        EoT(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        EoT(nn.Identity(), samples=2)(torch.zeros(2, 1, 3, 3))


def test_eot_stochastic_flag_follows_module() -> None:
    assert EoT(RandomScale()).stochastic is True
    det = nn.Linear(2, 2)
    det.stochastic = False  # type: ignore[assignment]
    assert EoT(det).stochastic is False


def test_bpda_identity_forward_equals_module_and_gradient_is_identity() -> None:
    quantise = Quantise()
    x = torch.rand(3, 1, 4, 4, requires_grad=True)
    weights = torch.randn(3, 1, 4, 4)
    raw = (quantise(x) * weights).sum()
    raw.backward()
    assert x.grad is not None and torch.count_nonzero(x.grad) == 0  # the masked gradient
    x.grad = None
    out = BPDA(quantise)(x)
    torch.testing.assert_close(out, quantise(x.detach()))
    (out * weights).sum().backward()
    torch.testing.assert_close(x.grad, weights)  # d(identity)/dx


def test_bpda_surrogate_gradient_and_module_value() -> None:
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    defended = nn.Sequential(Quantise(), classifier)
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    out = BPDA(defended, surrogate=classifier)(x)
    torch.testing.assert_close(out, defended(x.detach()))
    out[:, 1].sum().backward()
    assert x.grad is not None
    x2 = x.detach().clone().requires_grad_(True)
    classifier(x2)[:, 1].sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert torch.count_nonzero(x.grad) > 0


def test_bpda_validates_shapes_and_types() -> None:
    with pytest.raises(ValueError, match="shape"):
        BPDA(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))(torch.rand(2, 1, 4, 4))
    with pytest.raises(TypeError, match="surrogate"):
        BPDA(Quantise(), surrogate="identity")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="module"):
        BPDA(None)  # type: ignore[arg-type]


def test_bpda_pgd_breaks_a_quantising_defence_that_masks_gradients(
    trained_tiny: nn.Module, mnist_small: tuple
) -> None:
    """Plain PGD sees zero gradients through the quantiser; the BPDA-wrapped model is broken by the same
    PGD."""
    _, _, x_test, y_test = mnist_small
    x, y = x_test[:16], y_test[:16]
    defended = nn.Sequential(Quantise(levels=2), trained_tiny).eval()
    spec = AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": 10, "num_random_init": 0})
    with torch.no_grad():
        clean_acc = float((defended(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    plain = run_attack(spec, defended, x, y, seed=0)
    adaptive = run_attack(spec, BPDA(defended, surrogate=trained_tiny), x, y, seed=0)
    with torch.no_grad():
        plain_acc = float((defended(torch.from_numpy(plain)).argmax(1).numpy() == y).mean())
        bpda_acc = float((defended(torch.from_numpy(adaptive)).argmax(1).numpy() == y).mean())
    assert np.array_equal(plain, x)  # zero gradient: PGD without random start cannot move
    assert plain_acc == clean_acc
    assert bpda_acc < clean_acc - 0.3
    assert np.abs(adaptive - x).max() <= 0.3 + 1e-5

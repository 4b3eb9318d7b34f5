"""Resampling x+ and x- (section 5.4)."""

from __future__ import annotations

import pytest
import torch

from art_manifold_defenses.manifold_regularization import perturbed_pair, sample_maximal_perturbation


def test_linf_perturbation_is_a_random_vertex_of_the_eps_cube() -> None:
    x = torch.rand(8, 1, 6, 6)
    rho = sample_maximal_perturbation(x, eps=0.25, norm="linf", generator=torch.Generator().manual_seed(0))
    assert rho.shape == x.shape
    assert torch.allclose(rho.abs(), torch.full_like(rho, 0.25))
    share_positive = float((rho > 0).float().mean())
    assert 0.35 < share_positive < 0.65  # both signs, roughly balanced


def test_l2_perturbation_lies_on_the_sphere_and_draws_are_reproducible() -> None:
    x = torch.rand(5, 3, 4, 4)
    a = sample_maximal_perturbation(x, eps=0.5, norm="l2", generator=torch.Generator().manual_seed(3))
    b = sample_maximal_perturbation(x, eps=0.5, norm="l2", generator=torch.Generator().manual_seed(3))
    c = sample_maximal_perturbation(x, eps=0.5, norm="l2", generator=torch.Generator().manual_seed(4))
    assert torch.allclose(a.flatten(1).norm(dim=1), torch.full((5,), 0.5), atol=1e-6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_perturbed_pair_is_symmetric_and_clipped() -> None:
    x = torch.tensor([[0.0, 0.5, 1.0]])
    rho = torch.tensor([[0.2, -0.2, 0.2]])
    plus, minus = perturbed_pair(x, rho)
    assert torch.allclose(plus, torch.tensor([[0.2, 0.3, 1.0]]))
    assert torch.allclose(minus, torch.tensor([[0.0, 0.7, 0.8]]))
    plus, minus = perturbed_pair(x, rho, clip_values=None)
    assert torch.allclose(plus - minus, 2 * rho)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"eps": -0.1}, "eps"), ({"eps": float("nan")}, "eps"), ({"eps": 0.1, "norm": "l1"}, "norm")],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_maximal_perturbation(torch.rand(2, 3), **kwargs)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        sample_maximal_perturbation(torch.rand(0, 3), eps=0.1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        sample_maximal_perturbation([[0.1]], eps=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        perturbed_pair(torch.rand(2, 3), torch.rand(2, 4))

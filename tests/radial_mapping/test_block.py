"""The radial-basis mapping block: shapes, the equations, finiteness, parameters, initialisation."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from art_manifold_defenses.radial_mapping.block import RadialBasisMapping, kmeans_centers

# the literal one-centre-at-a-time implementation lives beside the tests (it is not part of the package)
_spec = importlib.util.spec_from_file_location("radial_reference", Path(__file__).with_name("reference.py"))
assert _spec is not None and _spec.loader is not None
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
per_center_forward = _reference.per_center_forward

VARIANTS = ["paper", "authors_code"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shape(variant: str) -> None:
    block = RadialBasisMapping(6, variant=variant)
    out = block(torch.rand(3, 6, 5, 7))
    assert out.shape == (3, 6, 5, 7)


def test_paper_variant_configurable_centres_and_outputs() -> None:
    block = RadialBasisMapping(6, 9, out_channels=4)
    assert block(torch.rand(2, 6, 3, 3)).shape == (2, 4, 3, 3)
    assert block.centers.shape == (9, 6) and block.weight.shape == (4, 9) and block.A.shape == (6, 6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_per_centre_reference(variant: str) -> None:
    block = RadialBasisMapping(5, variant=variant, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # make the matrices non-trivial
        if variant == "paper":
            block.A.add_(0.3 * torch.randn(5, 5))
        else:
            block.psi.add_(0.1 * torch.randn(5, 5))
    x = torch.rand(2, 5, 4, 4)
    torch.testing.assert_close(block(x), per_center_forward(block, x), rtol=1e-4, atol=1e-5)


def test_paper_equations_by_hand() -> None:
    """One position, two channels, one centre: g = w exp(-beta (f-c)^T M (f-c)) + b with M = A A^T + eps I."""
    block = RadialBasisMapping(2, 1, out_channels=1, epsilon=0.0)
    with torch.no_grad():
        block.A.copy_(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
        block.centers.copy_(torch.tensor([[0.5, -0.5]]))
        block.weight.fill_(3.0)
        block.bias.fill_(0.25)
    f = torch.tensor([1.0, 0.0])
    d = f - torch.tensor([0.5, -0.5])
    m = torch.tensor([[4.0, 2.0], [2.0, 2.0]])
    expected = 3.0 * math.exp(-2.0 * float(d @ m @ d)) + 0.25
    out = block(f.view(1, 2, 1, 1))
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_authors_equations_by_hand() -> None:
    """Identity Psi: h_k = ||f_k 1 - C[:, k]||_2 (distance over the centre axis) and phi = exp(-beta h)."""
    block = RadialBasisMapping(2, variant="authors_code")
    with torch.no_grad():
        block.centers.copy_(torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
        block.weight.copy_(torch.eye(2))
        block.bias.zero_()
    f = torch.tensor([1.0, 1.0])
    h0 = math.sqrt((1 - 0.0) ** 2 + (1 - 2.0) ** 2)
    h1 = math.sqrt((1 - 1.0) ** 2 + (1 - 3.0) ** 2)
    out = block(f.view(1, 2, 1, 1)).flatten()
    assert out.tolist() == pytest.approx([math.exp(-2 * h0), math.exp(-2 * h1)], rel=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["random", "zeros", "large", "huge", "centres"])
def test_values_and_gradients_finite(variant: str, kind: str) -> None:
    block = RadialBasisMapping(4, variant=variant)
    if kind == "random":
        x = torch.randn(2, 4, 3, 3)
    elif kind == "zeros":
        x = torch.zeros(2, 4, 3, 3)
    elif kind == "large":
        x = 1e6 * torch.randn(2, 4, 3, 3)
    elif kind == "huge":
        x = torch.full((2, 4, 3, 3), 1e30)
    else:  # every feature vector exactly on a centre: distance 0 (sqrt at 0 for the authors' variant)
        x = block.centers.detach()[0].view(1, 4, 1, 1).expand(2, 4, 3, 3).clone()
        if variant == "authors_code":
            x = block.centers.detach()[:, 0].mean().expand(2, 4, 3, 3).clone()
            with torch.no_grad():
                block.centers.fill_(float(x[0, 0, 0, 0]))
    x.requires_grad_(True)
    out = block(x)
    assert torch.isfinite(out).all()
    (out.sum() + (out**2).sum()).backward()
    assert torch.isfinite(x.grad).all()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_authors_non_psd_matrix_stays_finite() -> None:
    """Psi^T (element-wise) Psi with negative off-diagonals is not PSD: the authors' code would take sqrt(<0)
    = NaN."""
    block = RadialBasisMapping(3, variant="authors_code")
    with torch.no_grad():
        block.psi.copy_(torch.tensor([[1.0, -3.0, 0.0], [3.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert torch.linalg.eigvalsh(block.precision()).min() < 0
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    out = block(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_precision_positive_definite_and_initialisation() -> None:
    block = RadialBasisMapping(5)
    torch.testing.assert_close(block.A.detach(), torch.eye(5))
    torch.testing.assert_close(block.beta.detach(), torch.full((5,), 2.0))
    assert block.centers.min() >= 0 and block.centers.max() <= 1
    with torch.no_grad():
        block.A.copy_(torch.zeros(5, 5))
    assert torch.linalg.eigvalsh(block.precision()).min() > 0  # epsilon I keeps M positive definite
    with torch.no_grad():
        block.beta_raw.fill_(-50.0)
    assert (block.beta > 0).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_count(variant: str) -> None:
    k = 7
    block = RadialBasisMapping(k, variant=variant)
    # A (or Psi) k*k, centres k*k, beta k, W k*k, b k
    assert sum(p.numel() for p in block.parameters()) == 3 * k * k + 2 * k


def test_seeded_initialisation_is_reproducible() -> None:
    a = RadialBasisMapping(4, generator=torch.Generator().manual_seed(5))
    b = RadialBasisMapping(4, generator=torch.Generator().manual_seed(5))
    c = RadialBasisMapping(4, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a.centers, b.centers)
    assert not torch.equal(a.centers, c.centers)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"in_channels": 4, "n_centers": -1}, "n_centers"),
        ({"in_channels": 4, "variant": "keras"}, "variant"),
        ({"in_channels": 4, "variant": "authors_code", "n_centers": 3}, "n_centers"),
        ({"in_channels": 4, "variant": "authors_code", "out_channels": 2}, "out_channels"),
        ({"in_channels": 4, "epsilon": -1.0}, "epsilon"),
        ({"in_channels": 4, "beta_init": 0.0}, "beta_init"),
        ({"in_channels": 4, "init": "zeros"}, "init"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RadialBasisMapping(**kwargs)


def test_bad_input_shapes() -> None:
    block = RadialBasisMapping(4)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        block(torch.rand(2, 3, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        block(torch.rand(4, 5, 5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        block([[1.0]])  # type: ignore[arg-type]


def test_kmeans_initialisation_finds_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    true_centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    points = torch.cat([c + 0.1 * torch.randn(100, 2, generator=g) for c in true_centres])
    found = kmeans_centers(points, 3, generator=g)
    distance = torch.cdist(true_centres, found).min(1).values
    assert distance.max() < 0.1
    block = RadialBasisMapping(2, 3, init="kmeans")
    features = points.T.reshape(1, 2, 15, 20)
    block.initialize_from_features(features, generator=torch.Generator().manual_seed(0))
    assert torch.cdist(true_centres, block.centers.detach()).min(1).values.max() < 0.1
    with pytest.raises(ValueError, match="NaN"):
        block.initialize_from_features(torch.full((1, 2, 2, 2), float("nan")))

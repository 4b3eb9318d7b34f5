"""The fused (hand-written backward) block against the literal per-centre reference and the unfused autograd
path."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from art_manifold_defenses.models import build_model
from art_manifold_defenses.radial_mapping import RadialMappingConcat, add_radial_mapping, mapping_blocks
from art_manifold_defenses.radial_mapping._fused import AuthorsMapping, PaperMapping
from art_manifold_defenses.radial_mapping.block import FEATURE_BOUND, RadialBasisMapping

# the literal one-centre-at-a-time implementation lives beside the tests (it is not part of the package)
_spec = importlib.util.spec_from_file_location("radial_reference", Path(__file__).with_name("reference.py"))
assert _spec is not None and _spec.loader is not None
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
per_center_forward = _reference.per_center_forward

VARIANTS = ["paper", "authors_code"]


def _block(variant: str, k: int = 5, seed: int = 3, **kwargs: object) -> RadialBasisMapping:
    block = RadialBasisMapping(k, variant=variant, generator=torch.Generator().manual_seed(seed), **kwargs)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial matrices and widths
        if variant == "paper":
            block.A.add_(0.3 * torch.randn(k, k, generator=g))
        else:
            block.psi.add_(0.1 * torch.randn(k, k, generator=g))
        block.beta_raw.add_(0.2 * torch.randn(k, generator=g))
        block.bias.copy_(0.1 * torch.randn(k, generator=g))
    return block


def _input(kind: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.rand(shape, generator=g)
    if kind == "zeros":
        return torch.zeros(shape)
    return 30.0 * torch.randn(shape, generator=g)  # "large": phi is ~0 at most positions, exactly 0 at some


def _values_and_grads(
    block: nn.Module, x: torch.Tensor, weight: torch.Tensor, fn: object
) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    block.zero_grad(set_to_none=True)
    out = fn(block, x)  # type: ignore[operator]
    (out * weight).sum().backward()
    return [out.detach(), x.grad.detach()] + [p.grad.detach() for p in block.parameters()]  # type: ignore[union-attr]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["random", "zeros", "large"])
@pytest.mark.parametrize("chunk_rows", [None, 12])  # 12 rows = one 3x4 image per chunk: several chunks
def test_fused_matches_float64_reference(variant: str, kind: str, chunk_rows: int | None) -> None:
    """Values and gradients (input and every parameter) of the float32 fused block equal the literal
    per-centre reference evaluated in float64."""
    block = _block(variant, chunk_rows=chunk_rows)
    reference = copy.deepcopy(block).double()
    x = _input(kind, (3, 5, 3, 4))
    weight = torch.randn(3, 5, 3, 4, generator=torch.Generator().manual_seed(9))
    got = _values_and_grads(block, x, weight, lambda b, t: b(t))
    expected = _values_and_grads(reference, x.double(), weight.double(), per_center_forward)
    names = ["output", "x"] + [name for name, _ in block.named_parameters()]
    for name, a, b in zip(names, got, expected, strict=True):
        scale = float(b.abs().max()) + 1.0
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=2e-5 * scale, msg=name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_concatenate_matches_cat_and_unfused_gradients(variant: str) -> None:
    block = _block(variant, chunk_rows=20)  # 4x5 images: one image per chunk
    unfused = copy.deepcopy(block)
    unfused.fused = False
    x = torch.randn(4, 5, 4, 5)
    weight = torch.randn(4, 10, 4, 5)
    got = _values_and_grads(block, x, weight, lambda b, t: b.concatenate(t))
    expected = _values_and_grads(unfused, x, weight, lambda b, t: torch.cat([t, b(t)], dim=1))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    out = block.concatenate(x)
    assert out.is_contiguous(memory_format=torch.channels_last)  # what the next convolution reads fastest
    assert torch.equal(out[:, :5], x)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("concat", [False, True])
def test_gradcheck_float64(variant: str, concat: bool) -> None:
    """torch.autograd.gradcheck of the hand-written backward (through the block's parametrisation, two
    chunks)."""
    block = _block(variant, k=3, chunk_rows=6).double()
    x = torch.rand(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    params = tuple(
        block.parameters()
    )  # gradcheck perturbs these very tensors, so the block sees each perturbation

    def fn(inputs: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
        return block.concatenate(inputs) if concat else block(inputs)

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_clamped_features_pass_no_gradient(variant: str) -> None:
    block = _block(variant, k=4)
    unfused = copy.deepcopy(block)
    unfused.fused = False
    x = torch.rand(2, 4, 3, 3)
    x[0, 1, 1, 1] = 1e30  # beyond FEATURE_BOUND: clamped
    x[1, 2, 0, 0] = -1e20
    weight = torch.randn(2, 8, 3, 3)
    got = _values_and_grads(block, x, weight, lambda b, t: b.concatenate(t))
    expected = _values_and_grads(unfused, x, weight, lambda b, t: torch.cat([t, b(t)], dim=1))
    for a, b in zip(got, expected, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert abs(float(x.abs().max())) > FEATURE_BOUND


@pytest.mark.parametrize("variant", VARIANTS)
def test_overflowing_matrix_stays_finite(variant: str) -> None:
    """A huge (finite) matrix makes the quadratic forms overflow float32: the guarded path gives phi = 0 there
    and finite gradients (autograd through the unfused path gives NaN for beta: 0 * inf)."""
    block = _block(variant, k=3)
    with torch.no_grad():
        if variant == "paper":
            block.A.fill_(1e15)  # M ~ 3e30: M f finite, f^T M f ~ 1e41 = inf
        else:
            block.psi.fill_(1e15)  # T ~ 1e30, 1^T T 1 f^2 ~ 1e41 = inf
    x = torch.full((1, 3, 2, 2), 1e5, requires_grad=True)
    out = block(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, block.bias.detach().view(1, 3, 1, 1).expand(1, 3, 2, 2))  # phi = 0: g = b
    out.sum().backward()
    assert torch.isfinite(x.grad).all()  # type: ignore[arg-type]
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_nchw_input_gets_nchw_gradient_and_retain_graph_repeats() -> None:
    block = _block("paper", k=4)
    x = torch.rand(2, 4, 3, 3, requires_grad=True)
    out = block.concatenate(x)
    out.sum().backward(retain_graph=True)
    first = x.grad.clone()  # type: ignore[union-attr]
    assert x.grad.is_contiguous()  # type: ignore[union-attr]
    out.sum().backward()  # ART's class_gradient backpropagates several times through one graph
    torch.testing.assert_close(x.grad, 2 * first)


def test_inplace_change_of_output_is_detected() -> None:
    block = _block("paper", k=4)
    x = torch.rand(2, 4, 3, 3, requires_grad=True)
    out = block.concatenate(x)
    loss = (out * out).sum()
    out.add_(1.0)  # the backward reads the features back from the output: must not be silently wrong
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_double_backward_needs_unfused_path() -> None:
    """A second derivative through the fused block raises (never silently drops its terms); ``fused=False``
    works."""
    block = _block("paper", k=3)
    x = torch.rand(1, 3, 2, 2, requires_grad=True)
    upstream = torch.rand(
        1, 3, 2, 2, requires_grad=True
    )  # e.g. a later layer's weights: the gradient has a graph
    (grad,) = torch.autograd.grad((block(x) * upstream).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.square().sum().backward()
    block.fused = False
    (grad,) = torch.autograd.grad((block(x) * upstream).sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(x.grad).all()  # type: ignore[arg-type]


def test_forward_hooks_on_the_block_still_see_g() -> None:
    """With a hook on the block the concatenation calls the block module (hooks run) and cats; same values."""
    model = add_radial_mapping(build_model("cleverhans_cnn"))
    x = torch.rand(2, 1, 28, 28)
    fast = model(x)
    seen: list[tuple[int, ...]] = []
    concat = next(m for m in model if isinstance(m, RadialMappingConcat))
    handle = concat.mapping.register_forward_hook(
        lambda module, inputs, output: seen.append(tuple(output.shape))
    )
    try:
        slow = model(x)
    finally:
        handle.remove()
    assert seen == [(2, 16, 14, 14)]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_state_dict_keys_unchanged() -> None:
    """Checkpoints of earlier versions load: the fused path adds no parameters or buffers."""
    for variant, matrix in (("paper", "A"), ("authors_code", "psi")):
        block = RadialBasisMapping(4, variant=variant)
        assert sorted(block.state_dict()) == sorted(["centers", "beta_raw", "weight", "bias", matrix])
    mapped = add_radial_mapping(build_model("cleverhans_cnn"))
    fresh = add_radial_mapping(build_model("cleverhans_cnn"), seed=7)
    fresh.load_state_dict(mapped.state_dict())
    x = torch.rand(2, 1, 28, 28)
    unfused = copy.deepcopy(mapped)
    for block in mapping_blocks(unfused):
        block.fused = False
    torch.testing.assert_close(fresh(x), unfused(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"fused": 1}, TypeError), ({"chunk_rows": 0}, ValueError), ({"chunk_rows": 2.5}, ValueError)],
)
def test_invalid_fused_options(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        RadialBasisMapping(4, **kwargs)


def test_functions_are_the_fused_path() -> None:
    """The fused path really runs the hand-written functions (a regression here would silently use
    autograd)."""
    for variant, function in (("paper", PaperMapping), ("authors_code", AuthorsMapping)):
        out = RadialBasisMapping(3, variant=variant)(torch.rand(1, 3, 2, 2, requires_grad=True))
        assert type(out.grad_fn).__name__ == function.__name__ + "Backward"

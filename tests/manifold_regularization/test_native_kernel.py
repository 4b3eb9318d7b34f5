"""The compiled Hamming kernel (``_native.py``) computes what the torch form of ``_fused._hamming_norms``
computes, and the package falls back to the torch form, with one warning, where it cannot be built."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from art_manifold_defenses.manifold_regularization import _fused, _native


def _torch_form(zp: torch.Tensor, zm: torch.Tensor, alpha: float, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        patch.setenv("AMD_NATIVE_KERNELS", "0")
        count = torch.zeros((), dtype=torch.float64)
        norms, a_plus, a_minus = _fused._hamming_norms(zp, zm, alpha, for_backward=True, disagreements=count)
    return norms, a_plus, a_minus, count


@pytest.fixture(scope="module")
def kernel():
    module = _native.hamming_kernel()
    if module is None:
        pytest.skip("no C++ toolchain here: the kernel cannot be built (the fallback is tested below)")
    return module


@pytest.mark.parametrize(("rows", "features"), [(1, 1), (3, 7), (5, 33), (16, 1000), (2, 21632)])
@pytest.mark.parametrize("alpha", [8.0, 0.5])
def test_kernel_matches_the_torch_form(kernel, rows: int, features: int, alpha: float, monkeypatch) -> None:
    generator = torch.Generator().manual_seed(rows * 1000 + features)
    zp = torch.randn(rows, features, generator=generator) * 2
    zm = zp + 0.05 * torch.randn(rows, features, generator=generator)
    zm[:, ::5] = -zm[:, ::5]  # many pattern disagreements
    zp[:, ::7] = 0.0  # exact zeros: z > 0 is false for them
    zp[0, 0] = 200.0  # saturated sigmoids (the exponential's clamp)
    zm[0, 0] = -200.0
    ref_norms, ref_plus, ref_minus, ref_count = _torch_form(zp, zm, alpha, monkeypatch)

    used = []

    def spy(*args, **kwargs):
        used.append(_native.native_hamming_rows(*args, **kwargs))
        return used[-1]

    monkeypatch.setattr(_fused, "native_hamming_rows", spy)
    count = torch.zeros((), dtype=torch.float64)
    norms, a_plus, a_minus = _fused._hamming_norms(zp, zm, alpha, for_backward=True, disagreements=count)
    assert len(used) == 1 and used[0] is not None  # the compiled form computed these
    assert count.item() == ref_count.item() == ((zp > 0) != (zm > 0)).sum().item()
    torch.testing.assert_close(norms, ref_norms, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a_plus, ref_plus, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(a_minus, ref_minus, rtol=1e-4, atol=1e-7)
    # the product-free form (no backward) gives the same norms and count
    no_grad = _native.native_hamming_rows(zp, zm, alpha, None)
    assert no_grad is not None
    torch.testing.assert_close(no_grad[0], norms, rtol=0, atol=0)
    assert no_grad[1].sum().item() == ref_count.item()


def test_kernel_is_used_only_where_it_applies(kernel) -> None:
    z = torch.randn(4, 10)
    assert _native.native_hamming_rows(z, z.clone(), 8.0, None) is not None
    assert _native.native_hamming_rows(z.double(), z.double(), 8.0, None) is None  # float64: torch form
    assert _native.native_hamming_rows(z.t(), z.t(), 8.0, None) is None  # not contiguous
    assert _native.native_hamming_rows(z, z[:, :5].contiguous(), 8.0, None) is None  # shapes differ


def test_fused_gradients_use_the_kernel_and_agree_with_autograd(kernel) -> None:
    generator = torch.Generator().manual_seed(0)
    zp = torch.randn(6, 50, generator=generator, requires_grad=True)
    zm = (zp.detach() + 0.1 * torch.randn(6, 50, generator=generator)).requires_grad_()
    distances, _ = _fused._FusedHammingPairDistances.apply(zp, zm, 8.0, None)
    (distances**2).sum().backward()
    grad_p, grad_m = zp.grad.clone(), zm.grad.clone()
    zp.grad = zm.grad = None
    reference = torch.linalg.vector_norm(torch.tanh(8 * zp) - torch.tanh(8 * zm), dim=1) / (2 * 50)
    (reference**2).sum().backward()
    torch.testing.assert_close(distances, reference.detach(), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(grad_p, zp.grad, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(grad_m, zm.grad, rtol=1e-4, atol=1e-9)


def test_a_failed_build_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils.cpp_extension as cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(cpp_extension, "load_inline", no_compiler)
    monkeypatch.setattr(_native, "_state", {"module": None, "tried": False})
    monkeypatch.delenv("AMD_NATIVE_KERNELS", raising=False)
    zp, zm = torch.randn(3, 8), torch.randn(3, 8)
    with pytest.warns(RuntimeWarning, match="Ninja is required.*AMD_NATIVE_KERNELS=0"):
        assert _native.native_hamming_rows(zp, zm, 8.0, None) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call neither warns nor tries again
        assert _native.hamming_kernel() is None
        norms, _, _ = _fused._hamming_norms(zp, zm, 8.0, for_backward=False)
    expected = torch.linalg.vector_norm(torch.tanh(8 * zp) - torch.tanh(8 * zm), dim=1)
    torch.testing.assert_close(norms, expected, rtol=1e-5, atol=1e-6)
    assert not math.isnan(norms.sum().item())


def test_the_switch_turns_the_kernel_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMD_NATIVE_KERNELS", "0")
    monkeypatch.setattr(_native, "_state", {"module": object(), "tried": True})
    assert _native.hamming_kernel() is None

"""A compiled CPU kernel for the forward of the Hamming term (a speed-up of :mod:`._fused`, same values).

One pass over the pre-activations of a layer computes, per row, what :func:`._fused._hamming_norms` computes
in about ten elementwise passes: ``s = sigmoid(2 alpha z)`` for x+ and x-, the norm ``2 ||s+ - s-||_2``, the
products ``a+ = (s+ - s-) s+ (1 - s+)`` and ``a- = (s+ - s-) s- (1 - s-)`` the backward needs, and the number
of ReLU pattern disagreements ``count(z+ > 0 xor z- > 0)``. The exponential is the Cephes single-precision
polynomial (relative error about 1e-7), written so that the compiler vectorises the loop; rows are spread over
torch's intra-op threads. Measurements: ``docs/defences/manifold_regularization.md`` (Cost).

The kernel is compiled with ``torch.utils.cpp_extension.load_inline`` on first use (a C++ compiler and ninja
are needed; once per machine, then cached in torch's extension folder, ``TORCH_EXTENSIONS_DIR``). Where
it cannot be built, :func:`hamming_kernel` warns once and returns ``None``, and the torch form is used. Set
``AMD_NATIVE_KERNELS=0`` to use the torch form always. Only float32, contiguous CPU tensors use the kernel.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import sys
import warnings
from typing import Any

import torch
from torch import Tensor

__all__ = ["hamming_kernel", "native_hamming_rows"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// exp(x) for x in [-87, 88]: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by Cephes' degree-6 polynomial,
// 2^n through the exponent bits. Branch-free, so that the loop below vectorises.
static inline float cephes_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// Per row of zp, zm (rows x features): norms[row] = 2 ||s+ - s-||, a+/a- (if write_products),
// counts[row] = number of features where (z+ > 0) != (z- > 0); s = sigmoid(2 alpha z).
void hamming_rows(torch::Tensor zp, torch::Tensor zm, double alpha, torch::Tensor norms,
                  torch::Tensor counts, torch::Tensor a_plus, torch::Tensor a_minus, bool write_products) {
  const int64_t rows = zp.size(0), features = zp.size(1);
  const float* p = zp.data_ptr<float>();
  const float* m = zm.data_ptr<float>();
  float* out = norms.data_ptr<float>();
  double* cnt = counts.data_ptr<double>();
  float* ap = write_products ? a_plus.data_ptr<float>() : nullptr;
  float* am = write_products ? a_minus.data_ptr<float>() : nullptr;
  const float k = -2.0f * (float)alpha;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(features, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* __restrict__ pr = p + row * features;
      const float* __restrict__ mr = m + row * features;
      float sum = 0.0f, disagree = 0.0f;
      if (write_products) {
        float* __restrict__ apr = ap + row * features;
        float* __restrict__ amr = am + row * features;
#pragma omp simd reduction(+ : sum, disagree)
        for (int64_t j = 0; j < features; ++j) {
          const float sp = 1.0f / (1.0f + cephes_exp(k * pr[j]));
          const float sm = 1.0f / (1.0f + cephes_exp(k * mr[j]));
          const float d = sp - sm;
          sum += d * d;
          apr[j] = d * sp * (1.0f - sp);
          amr[j] = d * sm * (1.0f - sm);
          disagree += ((pr[j] > 0.0f) != (mr[j] > 0.0f)) ? 1.0f : 0.0f;
        }
      } else {
#pragma omp simd reduction(+ : sum, disagree)
        for (int64_t j = 0; j < features; ++j) {
          const float d = 1.0f / (1.0f + cephes_exp(k * pr[j])) - 1.0f / (1.0f + cephes_exp(k * mr[j]));
          sum += d * d;
          disagree += ((pr[j] > 0.0f) != (mr[j] > 0.0f)) ? 1.0f : 0.0f;
        }
      }
      out[row] = 2.0f * std::sqrt(sum);
      cnt[row] = (double)disagree;  // exact: a float32 sum of ones is exact below 2^24 features
    }
  });
}
"""

#: Above this many features a row's float32 count of disagreements could round; such layers use the torch
#: form.
_MAX_FEATURES = 1 << 24

_state: dict[str, Any] = {"module": None, "tried": False}


def _build_name() -> str:
    """An extension name per machine kind: the kernel is built with ``-march=native``, so a build folder
    shared between different CPUs (a network home) must not hand one CPU's binary to another."""
    flags = platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            flags += next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    digest = hashlib.sha1((flags + _SOURCE).encode()).hexdigest()[:12]
    return f"amd_hamming_{digest}"


def hamming_kernel() -> Any | None:
    """The compiled kernel module, building it on first use; ``None`` when ``AMD_NATIVE_KERNELS=0`` or the
    build fails (warned once, with the reason)."""
    if os.environ.get("AMD_NATIVE_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            from torch.utils.cpp_extension import get_default_build_root, load_inline

            name = _build_name()
            root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
            if not glob.glob(os.path.join(glob.escape(root), "*", name, f"{name}*.so")) and not glob.glob(
                os.path.join(glob.escape(root), name, f"{name}*.so")
            ):
                print(
                    "building the compiled Hamming kernel of manifold regularization (once per machine, "
                    f"about 30 s; cached under {root}; AMD_NATIVE_KERNELS=0 skips it)",
                    file=sys.stderr,
                    flush=True,
                )
            cflags, ldflags = ["-O3", "-fno-math-errno", "-fopenmp-simd"], []
            if platform.machine() in ("x86_64", "AMD64"):
                cflags.append("-march=native")
            if platform.system() == "Linux":  # at::parallel_for's OpenMP form; elsewhere one thread per call
                cflags.append("-fopenmp")
                ldflags.append("-fopenmp")
            _state["module"] = load_inline(
                name,
                cpp_sources=_SOURCE,
                functions=["hamming_rows"],
                extra_cflags=cflags,
                extra_ldflags=ldflags,
                verbose=False,
            )
        except Exception as error:  # no compiler, no ninja, a read-only cache folder, ...
            warnings.warn(
                "could not build the compiled Hamming kernel of manifold regularization "
                f"({type(error).__name__}: {str(error).strip()[:300]}); using the torch form (same values, "
                "slower on CPU). Set AMD_NATIVE_KERNELS=0 to skip the attempt.",
                RuntimeWarning,
                stacklevel=3,
            )
    return _state["module"]


def native_hamming_rows(
    zp: Tensor, zm: Tensor, alpha: float, products: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor] | None:
    """``(norms, counts)`` per row of the 2-D ``zp``/``zm`` (see the module docstring), writing a+ and a- into
    ``products`` when given; ``None`` when the kernel does not apply (not float32 contiguous CPU tensors, a
    row too long for an exact count) or is not available -- the caller then uses the torch form."""
    if not (
        zp.device.type == "cpu"
        and zp.dtype == torch.float32
        and zm.dtype == torch.float32
        and zp.is_contiguous()
        and zm.is_contiguous()
        and zp.ndim == 2
        and zp.shape == zm.shape
        and zp.shape[1] < _MAX_FEATURES
        and (products is None or all(t.is_contiguous() and t.shape == zp.shape for t in products))
    ):
        return None
    kernel = hamming_kernel()
    if kernel is None:
        return None
    norms = zp.new_empty(zp.shape[0])
    counts = zp.new_empty(zp.shape[0], dtype=torch.float64)
    a_plus, a_minus = products if products is not None else (norms, norms)
    kernel.hamming_rows(zp, zm, float(alpha), norms, counts, a_plus, a_minus, products is not None)
    return norms, counts

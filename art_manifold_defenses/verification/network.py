"""A PyTorch ReLU network as an exact chain of affine maps and ReLUs (float64, sparse), for bounds and the
MILP.

Conv2d, Linear, Flatten, Unflatten, Identity, Dropout (eval), AvgPool2d and BatchNorm1d/2d (eval statistics)
are affine; consecutive affine layers are composed into one (this is where BatchNorm is folded into the
preceding convolution). ReLU separates the affine layers. Anything else raises a ``TypeError`` that names the
layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

__all__ = ["AffineLayer", "ReluNetwork", "extract_network"]

#: Modules that act as the identity on the flattened representation (in eval mode).
_IDENTITY_TYPES: tuple[type[nn.Module], ...] = (
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
)
#: Affine modules without a dedicated converter: their matrix is read off by probing with unit vectors
#: (float64).
_PROBED_TYPES: tuple[type[nn.Module], ...] = (nn.AvgPool2d, nn.ZeroPad2d, nn.ConvTranspose2d)


@dataclass
class AffineLayer:
    """``z = weight @ a + bias`` on flattened (C-order) activations; ``weight`` is a float64 CSR matrix.

    Paper: Jin & Rinard 2020 (paper 003), eq. 4 (``z_i = A_i z_{i-1} + b_i``).
    """

    weight: sp.csr_matrix
    bias: np.ndarray

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, a: np.ndarray) -> np.ndarray:
        """Apply to a batch ``a`` of shape (N, in_features)."""
        return np.asarray(self.weight @ a.T).T + self.bias


@dataclass
class ReluNetwork:
    """``f(x) = L_n(relu(L_{n-1}(... relu(L_1(x)))))``: ``layers[k]`` produces pre-activation ``z_{k+1}``.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 3-7 (a ReLU network as affine maps and ReLUs), the form the
    MILP of Tjeng et al. 2019 encodes.

    Every layer but the last is followed by a ReLU; ``input_shape`` is the per-sample shape of ``x`` (C, H,
    W)."""

    layers: list[AffineLayer]
    input_shape: tuple[int, ...]

    @property
    def num_hidden(self) -> int:
        """Number of ReLU layers."""
        return len(self.layers) - 1

    @property
    def relu_count(self) -> int:
        """Total number of ReLUs."""
        return sum(layer.out_features for layer in self.layers[:-1])

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_features

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """The pre-activations ``z_1 .. z_{n-1}`` of every ReLU layer and the logits, for a batch (N, ...)."""
        a = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        out = []
        for k, layer in enumerate(self.layers):
            z = layer(a)
            out.append(z)
            if k < self.num_hidden:
                a = np.maximum(z, 0.0)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (float64) of a batch."""
        return self.pre_activations(x)[-1]


def _flatten_modules(module: nn.Module) -> Iterator[nn.Module]:
    """Leaves of nested ``nn.Sequential`` containers (and of the package's ``Float32Input`` wrapper), in
    order."""
    if isinstance(module, nn.Sequential):
        for child in module:
            yield from _flatten_modules(child)
    elif type(module).__name__ == "Float32Input" and isinstance(getattr(module, "module", None), nn.Module):
        inner = module.module
        assert isinstance(inner, nn.Module)
        yield from _flatten_modules(inner)
    else:
        yield module


def _linear_matrix(layer: nn.Linear, in_shape: tuple[int, ...]) -> AffineLayer:
    if len(in_shape) != 1:
        return _probe_matrix(layer, in_shape)
    weight = layer.weight.detach().cpu().double().numpy()
    bias = layer.bias.detach().cpu().double().numpy() if layer.bias is not None else np.zeros(weight.shape[0])
    return AffineLayer(sp.csr_matrix(weight), bias)


def _conv_matrix(conv: nn.Conv2d, in_shape: tuple[int, ...]) -> AffineLayer:
    """The exact sparse matrix of a zero-padded Conv2d, built from index arithmetic (no probing)."""
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        return _probe_matrix(conv, in_shape)
    c_in, h_in, w_in = in_shape
    weight = conv.weight.detach().cpu().double().numpy()  # (C_out, C_in/groups, KH, KW)
    c_out, c_group, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    h_out = (h_in + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w_in + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out_per_group = c_out // conv.groups
    co, cg, ki, kj, oh, ow = np.meshgrid(
        np.arange(c_out),
        np.arange(c_group),
        np.arange(kh),
        np.arange(kw),
        np.arange(h_out),
        np.arange(w_out),
        indexing="ij",
    )
    ih = oh * sh - ph + ki * dh
    iw = ow * sw - pw + kj * dw
    ci = (co // out_per_group) * c_group + cg
    keep = (ih >= 0) & (ih < h_in) & (iw >= 0) & (iw < w_in)
    rows = ((co * h_out + oh) * w_out + ow)[keep]
    cols = ((ci * h_in + ih) * w_in + iw)[keep]
    values = weight[co[keep], cg[keep], ki[keep], kj[keep]]
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(c_out * h_out * w_out, c_in * h_in * w_in))
    matrix.eliminate_zeros()
    bias = np.zeros(c_out) if conv.bias is None else conv.bias.detach().cpu().double().numpy()
    return AffineLayer(matrix, np.repeat(bias, h_out * w_out))


def _batchnorm_matrix(bn: nn.modules.batchnorm._BatchNorm, in_shape: tuple[int, ...]) -> AffineLayer:
    """BatchNorm with its running statistics (eval mode) as a diagonal affine map."""
    if bn.running_mean is None or bn.running_var is None:
        raise TypeError(
            f"{type(bn).__name__} without running statistics (track_running_stats=False) is not affine"
        )
    channels = in_shape[0]
    spatial = int(np.prod(in_shape[1:])) if len(in_shape) > 1 else 1
    mean = bn.running_mean.detach().cpu().double().numpy()
    var = bn.running_var.detach().cpu().double().numpy()
    gamma = bn.weight.detach().cpu().double().numpy() if bn.weight is not None else np.ones(channels)
    beta = bn.bias.detach().cpu().double().numpy() if bn.bias is not None else np.zeros(channels)
    scale = gamma / np.sqrt(var + bn.eps)
    shift = beta - mean * scale
    return AffineLayer(sp.diags(np.repeat(scale, spatial)).tocsr(), np.repeat(shift, spatial))


def _probe_matrix(module: nn.Module, in_shape: tuple[int, ...]) -> AffineLayer:
    """Matrix of an affine module read off in float64: ``b = f(0)``, column ``j`` = ``f(e_j) - b``."""
    n_in = int(np.prod(in_shape))
    probe = _double_copy(module)
    with torch.no_grad():
        zero = torch.zeros((1, *in_shape), dtype=torch.float64)
        bias = probe(zero).reshape(-1)
        columns = []
        for start in range(0, n_in, 512):
            eye = torch.eye(n_in, dtype=torch.float64)[start : start + 512].reshape(-1, *in_shape)
            columns.append((probe(eye).reshape(len(eye), -1) - bias).T)
        weight = torch.cat(columns, dim=1).numpy()
    matrix = sp.csr_matrix(weight)
    matrix.eliminate_zeros()
    return AffineLayer(matrix, bias.numpy())


def _double_copy(module: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(module).double().cpu()
    clone.eval()
    return clone


def _compose(second: AffineLayer, first: AffineLayer) -> AffineLayer:
    weight = (second.weight @ first.weight).tocsr()
    weight.eliminate_zeros()
    return AffineLayer(weight, second.weight @ first.bias + second.bias)


def _identity(n: int) -> AffineLayer:
    return AffineLayer(sp.identity(n, format="csr", dtype=np.float64), np.zeros(n))


def extract_network(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    affine_types: Sequence[type[nn.Module]] = (),
) -> ReluNetwork:
    """Convert ``model`` (nested ``nn.Sequential`` of supported layers) into a :class:`ReluNetwork`.

    Paper: Jin & Rinard 2020 (paper 003), eqs. 3-7 (the network written as affine layers and ReLUs); no
    equation of its own: the conversion from PyTorch.

    Args:
        model: the classifier; its eval-mode function is converted (BatchNorm uses running statistics).
        input_shape: per-sample input shape, e.g. ``(1, 28, 28)``.
        affine_types: extra module types the caller asserts are affine in eval mode (e.g. a normalisation
            layer); their matrix is read off by probing with unit vectors.

    Raises:
        TypeError: a layer is neither affine nor a ReLU (MaxPool, ELU, a custom ``forward``), or ``model`` is
            not a module.
        ValueError: ``input_shape`` is not a tuple of positive integers, or the model has no affine layer.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(
            f"input_shape must be a tuple of positive integers such as (1, 28, 28), got {tuple(input_shape)}"
        )
    probed = _PROBED_TYPES + tuple(affine_types)
    layers: list[AffineLayer] = []
    pending: AffineLayer | None = None  # affine map accumulated since the last ReLU
    current = shape
    after_relu = False
    sample = torch.zeros((1, *shape), dtype=torch.float64)  # tracks the activation shape layer by layer
    for module in _flatten_modules(model):
        if isinstance(module, nn.ReLU):
            if pending is None:
                if after_relu:
                    continue  # relu(relu(z)) = relu(z)
                pending = _identity(int(np.prod(current)))  # a ReLU applied to the input itself
            layers.append(pending)
            pending = None
            after_relu = True
            continue
        if isinstance(module, nn.Linear):
            affine = _linear_matrix(module, current)
        elif isinstance(module, nn.Conv2d):
            affine = _conv_matrix(module, current)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            affine = _batchnorm_matrix(module, current)
        elif isinstance(module, _IDENTITY_TYPES):
            affine = None
        elif isinstance(module, probed):
            affine = _probe_matrix(module, current)
        else:
            raise TypeError(
                f"cannot encode layer {type(module).__name__} exactly; supported: Conv2d, Linear, ReLU, "
                "Flatten, "
                "BatchNorm (eval), AvgPool2d, Dropout/Identity (pass affine_types=... for other affine "
                "layers)"
            )
        with torch.no_grad():
            sample = _double_copy(module)(sample)
        current = tuple(sample.shape[1:])
        if affine is not None:
            if affine.out_features != int(np.prod(current)):
                raise ValueError(f"internal shape mismatch converting {type(module).__name__}")
            pending = affine if pending is None else _compose(affine, pending)
            after_relu = False
    if pending is None:
        if not layers:
            raise ValueError("the model has no affine layer to verify")
        pending = _identity(int(np.prod(current)))
    layers.append(pending)
    return ReluNetwork(layers, shape)

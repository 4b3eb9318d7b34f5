"""Widening the layer that reads a mapping block's channels in ``"concat"`` mode (Taghanaki et al. 2019, paper
001, Fig. 2: ``[f, g(f)]`` feeds the next layer): a copy of a ``Conv2d``, ``Linear`` or ``BatchNorm2d`` with
room for the block's extra channels, keeping the original weights on the original channels and giving the new
slices PyTorch's default initialisation from a seeded draw."""

from __future__ import annotations

import torch
from torch import nn


def _seeded_reset(module: nn.Module, generator: torch.Generator) -> None:
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        module.reset_parameters()  # type: ignore[operator]
    finally:
        torch.random.set_rng_state(state)


def _widen_consumer(layer: nn.Module, channels: int, extra: int, generator: torch.Generator) -> nn.Module:
    """A copy of ``layer`` that reads ``channels + extra`` channels; the first ``channels`` slices keep their
    weights."""
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1:
            raise ValueError(
                f"cannot widen a grouped convolution (groups={layer.groups}) after a mapping block"
            )
        if layer.in_channels != channels:
            raise ValueError(
                f"channel mismatch: the next Conv2d reads {layer.in_channels} channels, expected {channels}"
            )
        wide = nn.Conv2d(
            layer.in_channels + extra,
            layer.out_channels,
            layer.kernel_size,  # type: ignore[arg-type]
            stride=layer.stride,  # type: ignore[arg-type]
            padding=layer.padding,  # type: ignore[arg-type]
            dilation=layer.dilation,  # type: ignore[arg-type]
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
        )
        wide = wide.to(layer.weight.device, layer.weight.dtype)
        _seeded_reset(wide, generator)
        with torch.no_grad():
            wide.weight[:, :channels] = layer.weight
            if layer.bias is not None and wide.bias is not None:
                wide.bias.copy_(layer.bias)
        return wide
    if isinstance(layer, nn.Linear):
        if layer.in_features % channels:
            raise ValueError(
                f"the Linear layer reads {layer.in_features} features, not a multiple of {channels} channels"
            )
        positions = layer.in_features // channels
        wide_linear = nn.Linear(
            (channels + extra) * positions, layer.out_features, bias=layer.bias is not None
        )
        wide_linear = wide_linear.to(layer.weight.device, layer.weight.dtype)
        _seeded_reset(wide_linear, generator)
        with torch.no_grad():
            # Flatten is channel-major, so the original channels are the first channels * positions features.
            wide_linear.weight[:, : channels * positions] = layer.weight
            if layer.bias is not None and wide_linear.bias is not None:
                wide_linear.bias.copy_(layer.bias)
        return wide_linear
    raise ValueError(
        f"cannot rewire a {type(layer).__name__} after a mapping block"
    )  # pragma: no cover - guarded by _consumer_path


def _widen_batchnorm(layer: nn.BatchNorm2d, extra: int) -> nn.BatchNorm2d:
    wide = nn.BatchNorm2d(
        layer.num_features + extra,
        eps=layer.eps,
        momentum=layer.momentum,
        affine=layer.affine,
        track_running_stats=layer.track_running_stats,
    )
    reference = layer.weight if layer.weight is not None else layer.running_mean
    if reference is not None:
        wide = wide.to(reference.device)
    k = layer.num_features
    with torch.no_grad():
        if (
            layer.affine
            and wide.weight is not None
            and layer.weight is not None
            and wide.bias is not None
            and layer.bias is not None
        ):
            wide.weight[:k] = layer.weight
            wide.bias[:k] = layer.bias
        if layer.track_running_stats and wide.running_mean is not None and layer.running_mean is not None:
            assert wide.running_var is not None and layer.running_var is not None
            wide.running_mean[:k] = layer.running_mean
            wide.running_var[:k] = layer.running_var
    return wide

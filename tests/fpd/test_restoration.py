"""Image-restoration module: FPN top-down structure, output sizes, and the fused smoothing+decoder equals the
layers."""

from __future__ import annotations

import pytest
import torch

from art_manifold_defenses.fpd.restoration import ImageRestorationModule


def _features(double: bool = True) -> list[torch.Tensor]:
    dtype = torch.float64 if double else torch.float32
    return [
        torch.randn(2, 8, 8, 8, dtype=dtype, requires_grad=True),
        torch.randn(2, 16, 4, 4, dtype=dtype),
        torch.randn(2, 32, 2, 2, dtype=dtype),
    ]


@pytest.mark.parametrize(("steps", "channels"), [(0, 1), (1, 3), (2, 3), (3, 1)])
def test_fused_forward_equals_layer_by_layer(steps: int, channels: int) -> None:
    torch.manual_seed(0)
    module = ImageRestorationModule(
        (8, 16, 32), out_channels=channels, fpn_channels=32, upsample_steps=steps
    ).double()
    features = _features()
    fused, layered = module(features, fused=True), module(features, fused=False)
    assert fused.shape == (2, channels, 8 * 2**steps, 8 * 2**steps)
    torch.testing.assert_close(fused, layered, rtol=1e-10, atol=1e-10)
    inputs = [*module.parameters(), features[0]]
    grads_fused = torch.autograd.grad(fused.square().sum(), inputs)
    grads_layered = torch.autograd.grad(layered.square().sum(), inputs)
    for a, b in zip(grads_fused, grads_layered, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_top_down_pathway_uses_bilinear_upsampling_and_laterals() -> None:
    torch.manual_seed(0)
    module = ImageRestorationModule((8, 16), out_channels=1, fpn_channels=4, upsample_steps=0).double()
    c2, c3 = torch.randn(1, 8, 4, 4, dtype=torch.float64), torch.randn(1, 16, 2, 2, dtype=torch.float64)
    top = module.top(c3)
    expected = torch.nn.functional.interpolate(
        top, size=(4, 4), mode="bilinear", align_corners=False
    ) + module.laterals[0](c2)
    torch.testing.assert_close(module.top_down([c2, c3]), expected)


def test_output_size_and_errors() -> None:
    module = ImageRestorationModule((8, 16, 32), out_channels=3, fpn_channels=16, upsample_steps=1)
    assert module([f.float().detach() for f in _features()], output_size=(15, 15)).shape == (2, 3, 15, 15)
    with pytest.raises(ValueError, match="3 stage outputs"):
        module(_features()[:2])
    with pytest.raises(ValueError, match="upsample_steps"):
        ImageRestorationModule((8,), out_channels=1, upsample_steps=-1)
    with pytest.raises(ValueError, match=r"stage_channels\[1\]"):
        ImageRestorationModule((8, 0), out_channels=1)

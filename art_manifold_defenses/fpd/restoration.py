"""Image-restoration module of the Feature Pyramid Decoder (paper 002, Sec. 3.2): an FPN-style top-down
decoder that fuses the stage outputs of the front denoising module and turns them back into an image of the
input's size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ImageRestorationModule"]


def _positive_int(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class ImageRestorationModule(nn.Module):
    """FPN top-down restoration ``FPD_R`` (paper Sec. 3.2, Fig. 1; structure of the authors' code).

    Paper: Li et al. 2020 (paper 002), Section 3.2, Fig. 1.

    1. a 1x1 "top" convolution maps the deepest stage output to ``fpn_channels``;
    2. going up, each shallower stage output gets a 1x1 lateral convolution, and the coarser map is upsampled
       **bilinearly** to its size and added;
    3. a 3x3 smoothing convolution is applied to the finest map only;
    4. ``upsample_steps`` transposed convolutions (kernel 2, stride 2) with widths
       ``fpn_channels / 4, / 16, ...`` (at least 16) and a final 1x1 transposed convolution to
       ``out_channels`` bring it to the input resolution.

    There are no activations and no output squashing (as in the authors' code), so the restored image is not
    confined to [0, 1]. Because steps 3-4 are all affine and the transposed convolutions have kernel = stride
    (no overlap), the smoothing convolution and the whole decoder are one affine map from each 3x3
    neighbourhood of the pyramid to a ``(out_channels, 2**upsample_steps, 2**upsample_steps)`` block of
    pixels. With ``fused=True`` (default) the forward pass composes the weights into a single 3x3 convolution
    to ``out_channels * 4**upsample_steps`` channels followed by a pixel shuffle: the same function and the
    same parameters (gradients reach every original weight), at a fraction of the cost of the 256 -> 256
    smoothing convolution. ``fused=False`` runs the layers one by one. When the input size is not
    ``2 ** upsample_steps`` times the finest feature map (odd sizes), the output is resized bilinearly to
    ``output_size`` as a last step.

    Args:
        stage_channels: channels of the stage outputs, shallow to deep (e.g. ``(256, 512, 1024, 2048)``).
        out_channels: channels of the restored image (the input's).
        fpn_channels: width of the pyramid (256 in the paper's code).
        upsample_steps: number of stride-2 transposed convolutions (2 for the ImageNet ResNet stem, 0 for the
            small-image stem).
    """

    params = ["stage_channels", "out_channels", "fpn_channels", "upsample_steps"]

    def __init__(
        self,
        stage_channels: Sequence[int],
        *,
        out_channels: int,
        fpn_channels: int = 256,
        upsample_steps: int = 2,
    ) -> None:
        super().__init__()
        self.stage_channels = tuple(stage_channels)
        self.out_channels = out_channels
        self.fpn_channels = fpn_channels
        self.upsample_steps = upsample_steps
        self._check_params()
        self.top = nn.Conv2d(self.stage_channels[-1], fpn_channels, 1)
        # laterals[i] reads stage i (all but the deepest, which the top layer reads)
        self.laterals = nn.ModuleList(nn.Conv2d(c, fpn_channels, 1) for c in self.stage_channels[:-1])
        self.smooth: nn.Conv2d = nn.Conv2d(fpn_channels, fpn_channels, 3, padding=1)
        layers: list[nn.Module] = []
        width = fpn_channels
        for _ in range(upsample_steps):
            next_width = max(16, width // 4)
            layers.append(nn.ConvTranspose2d(width, next_width, 2, stride=2))
            width = next_width
        layers.append(nn.ConvTranspose2d(width, out_channels, 1))
        self.decode = nn.Sequential(*layers)

    def _check_params(self) -> None:
        if len(self.stage_channels) < 1:
            raise ValueError("stage_channels must list at least one stage")
        for index, channels in enumerate(self.stage_channels):
            _positive_int(channels, f"stage_channels[{index}]")
        _positive_int(self.out_channels, "out_channels")
        _positive_int(self.fpn_channels, "fpn_channels")
        if (
            not isinstance(self.upsample_steps, int)
            or isinstance(self.upsample_steps, bool)
            or self.upsample_steps < 0
        ):
            raise ValueError(f"upsample_steps must be a non-negative integer, got {self.upsample_steps!r}")

    def top_down(self, features: Sequence[Tensor]) -> Tensor:
        """Fused finest pyramid level ``p`` (before smoothing) from the stage outputs ``features`` (shallow to
        deep)."""
        if len(features) != len(self.stage_channels):
            raise ValueError(
                f"features must hold {len(self.stage_channels)} stage outputs, got {len(features)}"
            )
        pyramid = self.top(features[-1])
        for lateral, feature in zip(reversed(self.laterals), reversed(features[:-1]), strict=True):
            pyramid = F.interpolate(
                pyramid, size=feature.shape[-2:], mode="bilinear", align_corners=False
            ) + lateral(feature)
        return pyramid

    def fused_smooth_and_decode(self) -> tuple[Tensor, Tensor]:
        """Weight ``(out_channels * S * S, fpn_channels, 3, 3)`` and bias of the single convolution equal to
        smoothing followed by the decoder, ``S = 2 ** upsample_steps`` (channel index
        ``c * S * S + row * S + column``)."""
        width = self.fpn_channels
        smooth = self.smooth
        smooth_bias = smooth.bias if smooth.bias is not None else torch.zeros_like(smooth.weight[:, 0, 0, 0])
        basis = torch.eye(width, dtype=smooth.weight.dtype, device=smooth.weight.device).reshape(
            width, width, 1, 1
        )
        zero = torch.zeros_like(basis[:1])
        blocks = self.decode(
            torch.cat([zero, basis])
        )  # (1 + width, C, S, S): the affine decoder on unit vectors
        offset = blocks[0].reshape(-1)  # decoder bias, (C*S*S,)
        linear = (blocks[1:] - blocks[:1]).reshape(width, -1).T  # (C*S*S, width)
        weight = torch.einsum("oj,jikl->oikl", linear, smooth.weight)
        bias = linear @ smooth_bias + offset
        return weight, bias

    def forward(
        self, features: Sequence[Tensor], output_size: Sequence[int] | None = None, *, fused: bool = True
    ) -> Tensor:
        """Restored image from the stage outputs; ``output_size=(H, W)`` forces the spatial size."""
        pyramid = self.top_down(features)
        if fused:
            weight, bias = self.fused_smooth_and_decode()
            image = F.pixel_shuffle(F.conv2d(pyramid, weight, bias, padding=1), 2**self.upsample_steps)
        else:
            image = self.decode(self.smooth(pyramid))
        if output_size is not None and tuple(image.shape[-2:]) != tuple(output_size):
            image = F.interpolate(image, size=tuple(output_size), mode="bilinear", align_corners=False)
        return image

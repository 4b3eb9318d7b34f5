"""The Feature Pyramid Decoder network (paper 002): a block-based CNN enhanced with shared front/back denoising
modules, an image-restoration module, a middle denoising layer and a Lipschitz-constrained (tanh) classifier."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .backbone import check_backbone, find_linear, swap_relu_for_elu
from .denoising import MIDDLE_VARIANTS, InnerDenoisingLayer, MiddleDenoisingLayer
from .restoration import ImageRestorationModule

__all__ = ["FeaturePyramidDecoder", "LipschitzConstrainedClassifier"]

MIDDLE_CHOICES = (*MIDDLE_VARIANTS, "none")


class LipschitzConstrainedClassifier(nn.Module):
    """``FPD_LCC`` (paper Sec. 3.3, Theorem 1, Fig. 3): global average pooling, [dropout], linear, **tanh**.

    Paper: Li et al. 2020 (paper 002), Section 3.3, Theorem 1 and Fig. 3.

    The logits lie in (-1, 1); they are fed to the cross-entropy as they are (as in the paper and the authors' code), so
    the softmax of the logits can never be confident. Known limitation: this squashing shrinks cross-entropy gradients
    and can mask gradients for attacks that use the cross-entropy; evaluate with margin (C&W / DLR) losses too.
    """

    def __init__(self, linear: nn.Linear, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = linear
        self.squash = nn.Tanh()

    def forward(self, features: Tensor) -> Tensor:
        return self.squash(self.linear(self.dropout(torch.flatten(self.pool(features), 1))))


class FeaturePyramidDecoder(nn.Module):
    """Feature Pyramid Decoder (FPD) around a block-based CNN.

    Paper: Li et al. 2020 (paper 002), Section 3, Fig. 1; trained by Algorithm 1.

    Reference: G. Li, S. Ding, J. Luo, C. Liu, "Enhancing Intrinsic Adversarial Robustness via Feature Pyramid
    Decoder", CVPR 2020 (https://arxiv.org/abs/2005.02552). Structure (Fig. 1):

    - **front / back denoising modules** ``FPD_FD`` / ``FPD_BD`` (Sec. 3.1): the backbone's ``stem`` and ``stages``
      with inner denoising layers (:class:`InnerDenoisingLayer`, dot-product non-local mean + identity) after the
      positions in ``denoise_after`` (``0`` = after the stem, ``i`` = after stage ``i``; default ``(0, 1)`` = the
      "shallow" blocks). Front and back are **the same modules called twice** (one set of parameters);
    - **image restoration** ``FPD_R`` (Sec. 3.2): :class:`ImageRestorationModule` over the front pass's stage
      outputs (taken before their denoising layer), giving ``x'`` with the input's shape;
    - **middle denoising layer** (Fig. 2c): :class:`MiddleDenoisingLayer` on ``x'`` (``middle_denoising="paper"``),
      on the network input as in the authors' code (``"authors_code"``), or none (``"none"``, an ablation);
    - **Lipschitz-constrained classifier** ``FPD_LCC`` (Sec. 3.3): pooling, linear, tanh (logits in (-1, 1));
    - all ``nn.ReLU`` modules of the backbone become ``nn.ELU`` (``swap_activation=True``, Sec. 3.3).

    ``forward(x)`` returns the tanh logits (what ART and the evaluation harness use);
    ``forward_with_restoration(x)`` returns ``(x', logits)`` for training. The model is deterministic
    (``stochastic = False``) and fully differentiable, so white-box attacks need no BPDA surrogate.

    The backbone must follow the protocol of :mod:`art_manifold_defenses.fpd.backbone` (``stem``, ``stages``, optional
    ``head``); its stem and stages are moved into this module (the backbone's own ``head`` is dropped, its last linear
    layer is reused by ``FPD_LCC``). A probe run at construction (batch 1, ``input_size``, eval mode, no gradient)
    finds the feature sizes, so the restoration module gets enough transposed convolutions to return to the input
    resolution.

    Args:
        backbone: the CNN to enhance (e.g. ``build_model("resnet101", in_channels=3, input_size=64)``).
        in_channels: image channels (default: read from the stem's first convolution).
        input_size: image height (= width) used for the probe run (other sizes still work; odd ones are resized).
        num_classes: classes (default: the output width of the backbone head's last linear layer).
        denoise_after: positions of the inner denoising layers.
        bottleneck: use the bottleneck inner denoising layer (Fig. 2a) instead of the plain one (Fig. 2b).
        bottleneck_reduction: channel reduction of the bottleneck embeddings.
        middle_denoising: ``"paper"``, ``"authors_code"`` or ``"none"``.
        fpn_channels: width of the restoration pyramid (256 in the authors' code).
        swap_activation: replace the backbone's ReLUs by ELUs.
        dropout: dropout before the classifier's linear layer (0 for MNIST, 0.5 in the authors' SVHN/CALTECH code).
        device: where to put the model (default: where the backbone already is).

    Known limitations: the tanh head bounds logits and weakens cross-entropy gradients (an honest evaluation needs
    margin-loss attacks); batch-norm statistics are shared by the two passes (as in the authors' code). The non-local
    layers are cubic in their input and have no normalisation of their own, so an *untrained* network in eval mode
    (batch-norm running statistics still at their initial values) can overflow to inf/NaN; train it first (or run it
    in train mode) -- after training, the running statistics match the feature scales.
    """

    params = [
        "in_channels", "input_size", "num_classes", "denoise_after", "bottleneck", "bottleneck_reduction",
        "middle_denoising", "fpn_channels", "swap_activation", "dropout",
    ]  # fmt: skip
    stochastic = False

    def __init__(
        self,
        backbone: nn.Module,
        *,
        in_channels: int | None = None,
        input_size: int = 32,
        num_classes: int | None = None,
        denoise_after: Sequence[int] = (0, 1),
        bottleneck: bool = False,
        bottleneck_reduction: int = 2,
        middle_denoising: str = "paper",
        fpn_channels: int = 256,
        swap_activation: bool = True,
        dropout: float = 0.0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        stem, stages = check_backbone(backbone)
        head_linear = find_linear(getattr(backbone, "head", None))
        if in_channels is None:
            first_conv = next((m for m in stem.modules() if isinstance(m, nn.Conv2d)), None)
            if first_conv is None:
                raise ValueError("in_channels must be given: the backbone's stem has no nn.Conv2d to read it from")
            in_channels = first_conv.in_channels
        if num_classes is None:
            if head_linear is None:
                raise ValueError("num_classes must be given: the backbone has no `head` with an nn.Linear to read it from")
            num_classes = head_linear.out_features
        self.in_channels = in_channels
        self.input_size = input_size
        self.num_classes = num_classes
        self.denoise_after = tuple(denoise_after) if isinstance(denoise_after, (list, tuple)) else denoise_after
        self.bottleneck = bottleneck
        self.bottleneck_reduction = bottleneck_reduction
        self.middle_denoising_variant = middle_denoising
        self.fpn_channels = fpn_channels
        self.swap_activation = swap_activation
        self.dropout = dropout
        self._check_params(len(stages))

        if swap_activation:
            swap_relu_for_elu(stem)
            for stage in stages:
                swap_relu_for_elu(stage)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        probe_device = next((p.device for p in backbone.parameters()), torch.device("cpu"))
        channels, sizes = self._probe(in_channels, input_size, probe_device)
        declared = getattr(backbone, "stage_channels", None)
        if declared is not None and list(declared) != channels[1:]:
            raise ValueError(f"backbone.stage_channels={list(declared)} but the probe run found {channels[1:]}")
        self.stage_channels = channels[1:]
        self.inner_denoising = nn.ModuleDict(
            {
                str(pos): InnerDenoisingLayer(channels[pos], bottleneck=bottleneck, reduction=bottleneck_reduction)
                for pos in self.denoise_after
            }
        )
        ratio = input_size / sizes[1]
        upsample_steps = max(0, round(math.log2(ratio))) if ratio > 0 else 0
        self.restoration = ImageRestorationModule(
            self.stage_channels, out_channels=in_channels, fpn_channels=fpn_channels, upsample_steps=upsample_steps
        )
        self.middle_denoising: MiddleDenoisingLayer | None = (
            None if middle_denoising == "none" else MiddleDenoisingLayer(variant=middle_denoising)
        )
        if head_linear is None or head_linear.in_features != self.stage_channels[-1] or head_linear.out_features != num_classes:
            head_linear = nn.Linear(self.stage_channels[-1], num_classes)
        self.head = LipschitzConstrainedClassifier(head_linear, dropout=dropout)
        self.to(probe_device if device is None else torch.device(device))

    def _check_params(self, num_stages: int) -> None:
        for name in ("in_channels", "input_size", "num_classes", "fpn_channels", "bottleneck_reduction"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if not isinstance(self.denoise_after, tuple) or not all(
            isinstance(p, int) and not isinstance(p, bool) for p in self.denoise_after
        ):
            raise TypeError(f"denoise_after must be a sequence of integers, got {self.denoise_after!r}")
        if len(set(self.denoise_after)) != len(self.denoise_after) or any(
            p < 0 or p > num_stages for p in self.denoise_after
        ):
            raise ValueError(
                f"denoise_after must hold distinct positions in [0, {num_stages}] (0 = after the stem, i = after stage i), "
                f"got {self.denoise_after}"
            )
        if not isinstance(self.bottleneck, bool):
            raise TypeError(f"bottleneck must be a bool, got {type(self.bottleneck).__name__}")
        if self.middle_denoising_variant not in MIDDLE_CHOICES:
            raise ValueError(f"middle_denoising must be one of {MIDDLE_CHOICES}, got {self.middle_denoising_variant!r}")
        if not isinstance(self.swap_activation, bool):
            raise TypeError(f"swap_activation must be a bool, got {type(self.swap_activation).__name__}")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")

    @torch.no_grad()
    def _probe(self, in_channels: int, input_size: int, device: torch.device) -> tuple[list[int], list[int]]:
        """Channels and heights of the stem output and of every stage output on a zero image (eval mode)."""
        modules = [self.stem, *self.stages]
        modes = [m.training for m in modules]
        for module in modules:
            module.eval()
        try:
            out = self.stem(torch.zeros(1, in_channels, input_size, input_size, device=device))
            channels, sizes = [out.shape[1]], [out.shape[-1]]
            for stage in self.stages:
                out = stage(out)
                if out.dim() != 4:
                    raise ValueError(f"every stage must return a 4-D feature map; got shape {tuple(out.shape)}")
                channels.append(out.shape[1])
                sizes.append(out.shape[-1])
        except RuntimeError as exc:
            raise ValueError(
                f"the backbone cannot process a ({in_channels}, {input_size}, {input_size}) image: {str(exc).splitlines()[0]}"
            ) from exc
        finally:
            for module, mode in zip(modules, modes, strict=True):
                module.train(mode)
        return [int(c) for c in channels], [int(s) for s in sizes]

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this network around a fresh backbone."""
        return {
            "in_channels": self.in_channels,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "denoise_after": list(self.denoise_after),
            "bottleneck": self.bottleneck,
            "bottleneck_reduction": self.bottleneck_reduction,
            "middle_denoising": self.middle_denoising_variant,
            "fpn_channels": self.fpn_channels,
            "swap_activation": self.swap_activation,
            "dropout": float(self.dropout),
        }

    def _check_input(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch")
        return x.float()

    def denoising_module(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The shared front/back denoising module: returns the stage outputs (each before its own inner denoising
        layer, which is what the restoration pyramid reads) and the final feature map (after any denoising)."""
        out = self.stem(x)
        if "0" in self.inner_denoising:
            out = self.inner_denoising["0"](out)
        features = []
        for index, stage in enumerate(self.stages, start=1):
            out = stage(out)
            features.append(out)
            key = str(index)
            if key in self.inner_denoising:
                out = self.inner_denoising[key](out)
        return features, out

    def restore(self, x: Tensor) -> Tensor:
        """Front pass and image restoration: ``x' = FPD_R(FPD_FD(x))``, with the shape of ``x``."""
        x = self._check_input(x)
        features, _ = self.denoising_module(x)
        return self.restoration(features, output_size=x.shape[-2:])

    def classify_restored(self, restored: Tensor, x: Tensor) -> Tensor:
        """Middle denoising, back pass and classifier on a restored image ``x'`` of the input ``x``."""
        cleaned = restored if self.middle_denoising is None else self.middle_denoising(restored, x)
        _, last = self.denoising_module(cleaned)
        return self.head(last)

    def forward_with_restoration(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(x', logits)``: the restored image (before the middle layer) and the tanh logits in (-1, 1)."""
        x = self._check_input(x)
        restored = self.restore(x)
        return restored, self.classify_restored(restored, x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_restoration(x)[1]

    # ----- parameter groups (Algorithm 1 restricts phase-1 updates to FPD_FD and FPD_R) -----
    def front_denoising_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of ``FPD_FD`` (= ``FPD_BD``, shared): stem, stages and inner denoising layers."""
        for module in (self.stem, self.stages, self.inner_denoising):
            yield from module.parameters()

    def restoration_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of ``FPD_R``."""
        yield from self.restoration.parameters()

    def classifier_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of ``FPD_LCC``."""
        yield from self.head.parameters()

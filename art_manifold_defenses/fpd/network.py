"""The Feature Pyramid Decoder network (paper 002): a block-based CNN enhanced with shared front/back
denoising modules, an image-restoration module, a middle denoising layer and a Lipschitz-constrained (tanh)
classifier."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..utils import check_image_tensor
from ._network_backbone import _copy_backbone, _read_sizes, _warn_if_forward_differs
from .backbone import functional_relu_calls, swap_relu_for_elu
from .denoising import DENOISING_FORMS, MIDDLE_VARIANTS, InnerDenoisingLayer, MiddleDenoisingLayer
from .restoration import ImageRestorationModule

__all__ = ["FeaturePyramidDecoder", "LipschitzConstrainedClassifier"]

MIDDLE_CHOICES = (*MIDDLE_VARIANTS, "none")


class LipschitzConstrainedClassifier(nn.Module):
    """``FPD_LCC`` (paper Sec. 3.3, Theorem 1, Fig. 3): global average pooling, [dropout], linear, **tanh**.

    Paper: Li et al. 2020 (paper 002), Section 3.3, Theorem 1 and Fig. 3.

    The logits lie in (-1, 1); they are fed to the cross-entropy as they are (as in the paper and the authors'
    code), so the softmax of the logits can never be confident. Known limitation: this squashing shrinks
    cross-entropy gradients and can mask gradients for attacks that use the cross-entropy; evaluate with
    margin (C&W / DLR) losses too.
    """

    def __init__(self, linear: nn.Linear, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = linear
        self.squash = nn.Tanh()

    def forward(self, features: Tensor) -> Tensor:
        return self.squash(self.linear(self.dropout(torch.flatten(self.pool(features), 1))))


#: how far (a fraction of the clip_values width) a classified input may leave clip_values (inputs a little
#: outside, e.g. noisy images, are harmless; [0, 255] images are not)
_RANGE_MARGIN = 0.5


def _as_range(clip_values: Any) -> tuple[float, float] | None:
    if clip_values is None:
        return None
    try:
        low, high = (float(v) for v in clip_values)
    except (TypeError, ValueError):
        raise ValueError(
            f"clip_values must be None or (low, high) with finite low < high, got {clip_values!r}"
        ) from None
    return low, high


class FeaturePyramidDecoder(nn.Module):
    """Feature Pyramid Decoder (FPD) around a block-based CNN.

    Paper: Li et al. 2020 (paper 002), Section 3, Fig. 1; trained by Algorithm 1.

    Reference: G. Li, S. Ding, J. Luo, C. Liu, "Enhancing Intrinsic Adversarial Robustness via Feature Pyramid
    Decoder", CVPR 2020 (https://arxiv.org/abs/2005.02552). Structure (Fig. 1):

    - **front / back denoising modules** ``FPD_FD`` / ``FPD_BD`` (Sec. 3.1): the backbone's ``stem`` and
      ``stages`` with inner denoising layers (:class:`InnerDenoisingLayer`, dot-product non-local mean +
      identity, joined as ``denoising_form`` says: by default through a zero-initialised gate, so the layer
      starts as the identity) after the positions in ``denoise_after`` (``0`` = after the stem, ``i`` = after
      stage ``i``; default ``(0, 1)`` = the "shallow" blocks). Front and back are **the same modules called
      twice** (one set of parameters);
    - **image restoration** ``FPD_R`` (Sec. 3.2): :class:`ImageRestorationModule` over the front pass's stage
      outputs (taken before their denoising layer), giving ``x'`` with the input's shape;
    - **middle denoising layer** (Fig. 2c): :class:`MiddleDenoisingLayer` on ``x'``
      (``middle_denoising="paper"``), on the network input as in the authors' code (``"authors_code"``), or
      none (``"none"``, an ablation);
    - **Lipschitz-constrained classifier** ``FPD_LCC`` (Sec. 3.3): pooling, linear, tanh (logits in (-1, 1));
    - all ``nn.ReLU`` modules of the backbone become ``nn.ELU`` (``swap_activation=True``, Sec. 3.3).

    ``forward(x)`` returns the tanh logits (what ART and the evaluation harness use);
    ``forward(x, return_restored=True)`` (= ``forward_with_restoration(x)``) returns ``(x', logits)`` for
    training. The model is deterministic (``stochastic = False``) and fully differentiable, so white-box
    attacks need no BPDA surrogate.

    The backbone must follow the protocol of :mod:`art_manifold_defenses.fpd.backbone` (``stem``, ``stages``,
    optional ``head``) or have torchvision's ResNet layout (``conv1, bn1, relu, maxpool, layer1..4, avgpool,
    fc``, adapted automatically). **The backbone is copied**: the user's module is never changed (its ReLUs
    stay ReLUs, its weights are not trained by training the FPD); the copy's stem and stages become this
    module's (the backbone's ``head`` is dropped, its last linear layer's weights are reused by ``FPD_LCC``).
    Two checks at construction warn instead of silently ignoring what the protocol cannot see: a backbone
    whose own ``forward()`` differs from ``head(stages(stem(x)))`` (e.g. a normalisation or activation written
    in ``forward``), and functional ReLU calls (``F.relu``) in the stem or stages, which the ELU swap cannot
    replace. A probe run at construction (batch 1, ``input_size``, eval mode, no gradient) finds the feature
    sizes, so the restoration module gets enough transposed convolutions to return to the input resolution.

    Args:
        backbone: the CNN to enhance (e.g. ``build_model("resnet101", in_channels=3, input_size=64)``).
        in_channels: image channels (default: read from the stem's first convolution).
        input_size: image height (= width) used for the probe run (other sizes still work; odd ones are
            resized).
        num_classes: classes (default: the output width of the backbone head's last linear layer).
        denoise_after: positions of the inner denoising layers.
        bottleneck: use the bottleneck inner denoising layer (Fig. 2a) instead of the plain one (Fig. 2b).
        bottleneck_reduction: channel reduction of the bottleneck embeddings.
        middle_denoising: ``"paper"``, ``"authors_code"`` or ``"none"``.
        denoising_form: how the non-local terms of the inner and middle layers join their residual:
            ``"gated"`` (default; ``x + gamma * NL(x)``, ``gamma = 0`` at initialisation), ``"bn_zero"``
            (``x + BN(NL(x))``, BN weight 0 at initialisation, Xie et al.'s form) or ``"authors_code"``
            (``x + NL(x)``, the authors' network, which trains at chance on ``resnet18``; see
            :mod:`art_manifold_defenses.fpd.denoising`).
        fpn_channels: width of the restoration pyramid (256 in the authors' code).
        swap_activation: replace the backbone's ReLUs by ELUs.
        dropout: dropout before the classifier's linear layer (0 for MNIST, 0.5 in the authors' SVHN/CALTECH
            code).
        clip_values: the input range (default ``(0, 1)``, the range the restoration module reconstructs); a
            batch further outside it than half its width is refused by ``forward(x)`` with a ``ValueError``
            (images in [0, 255] gave all-NaN logits: the non-local means multiply features three times). The
            training passes (``return_restored=True``; Algorithm 1's second pass restores ``x'``) only require
            finite values. ``None`` accepts any finite input (e.g. normalised images).
        device: where to put the model (default: where the backbone already is).

    Known limitations: the tanh head bounds logits and weakens cross-entropy gradients (an honest evaluation
    needs margin-loss attacks); batch-norm statistics are shared by the two passes (as in the authors' code).
    With ``denoising_form="authors_code"`` the non-local layers are cubic in their input with no scale of
    their own: the untrained network is far from its backbone (reconstruction MSE ~600 on MNIST against T = 3)
    and trains at chance on ``resnet18`` (measured); use it as the faithful-to-the-code ablation only. The
    backbone copy doubles its memory while the user keeps the original.
    """

    params = [
        "in_channels",
        "input_size",
        "num_classes",
        "denoise_after",
        "bottleneck",
        "bottleneck_reduction",
        "middle_denoising",
        "denoising_form",
        "fpn_channels",
        "swap_activation",
        "dropout",
    ]
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
        denoising_form: str = "gated",
        fpn_channels: int = 256,
        swap_activation: bool = True,
        dropout: float = 0.0,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        original, backbone, stem, stages, head_linear = _copy_backbone(backbone)
        in_channels, num_classes = _read_sizes(stem, head_linear, in_channels, num_classes)
        self.in_channels = in_channels
        self.input_size = input_size
        self.num_classes = num_classes
        self.denoise_after = (
            tuple(denoise_after) if isinstance(denoise_after, (list, tuple)) else denoise_after
        )
        self.bottleneck = bottleneck
        self.bottleneck_reduction = bottleneck_reduction
        self.middle_denoising_variant = middle_denoising
        self.denoising_form = denoising_form
        self.fpn_channels = fpn_channels
        self.swap_activation = swap_activation
        self.dropout = dropout
        self.clip_values = _as_range(clip_values)
        self._check_params(len(stages))

        probe_device = next((p.device for p in backbone.parameters()), torch.device("cpu"))
        self._warn_if_forward_differs(
            original, getattr(backbone, "head", None), stem, stages, in_channels, input_size, probe_device
        )
        self._adopt_stem_and_stages(stem, stages, probe_device)  # FPD_FD = FPD_BD, with ELUs
        channels, sizes = self._probe(in_channels, input_size, probe_device)
        declared = getattr(backbone, "stage_channels", None)
        if declared is not None and list(declared) != channels[1:]:
            raise ValueError(
                f"backbone.stage_channels={list(declared)} but the probe run found {channels[1:]}"
            )
        self.stage_channels = channels[1:]
        self.inner_denoising = nn.ModuleDict(
            {
                str(pos): InnerDenoisingLayer(
                    channels[pos], bottleneck=bottleneck, reduction=bottleneck_reduction, form=denoising_form
                )
                for pos in self.denoise_after
            }
        )
        ratio = input_size / sizes[1]
        upsample_steps = max(0, round(math.log2(ratio))) if ratio > 0 else 0
        self.restoration = ImageRestorationModule(
            self.stage_channels,
            out_channels=in_channels,
            fpn_channels=fpn_channels,
            upsample_steps=upsample_steps,
        )
        self.middle_denoising: MiddleDenoisingLayer | None = (
            None
            if middle_denoising == "none"
            else MiddleDenoisingLayer(variant=middle_denoising, form=denoising_form, channels=in_channels)
        )
        if (
            head_linear is None
            or head_linear.in_features != self.stage_channels[-1]
            or head_linear.out_features != num_classes
        ):
            head_linear = nn.Linear(self.stage_channels[-1], num_classes)
        self.head = LipschitzConstrainedClassifier(head_linear, dropout=dropout)
        self.to(probe_device if device is None else torch.device(device))

    def _adopt_stem_and_stages(
        self, stem: nn.Module, stages: Sequence[nn.Module], probe_device: torch.device
    ) -> None:
        """Make the backbone copy's stem and stages this module's, their ReLUs swapped for ELUs with
        ``swap_activation`` (Sec. 3.3); warn about the functional ReLUs a probe run finds, which stay."""
        if self.swap_activation:
            swap_relu_for_elu(stem)
            for stage in stages:
                swap_relu_for_elu(stage)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        left = functional_relu_calls(lambda: self._probe(self.in_channels, self.input_size, probe_device))
        if self.swap_activation and left:
            warnings.warn(
                f"the backbone's stem/stages make {left} functional ReLU call(s) (F.relu / torch.relu) on a "
                "probe image: "
                "swap_activation=True only replaces nn.ReLU modules, so these stay ReLUs; use nn.ReLU "
                "modules to get the "
                "paper's ELUs everywhere",
                UserWarning,
                stacklevel=3,
            )

    def _check_params(self, num_stages: int) -> None:
        if self.clip_values is not None and not (
            all(math.isfinite(v) for v in self.clip_values) and self.clip_values[0] < self.clip_values[1]
        ):
            raise ValueError(
                f"clip_values must be None or (low, high) with finite low < high, got {self.clip_values!r}"
            )
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
                f"denoise_after must hold distinct positions in [0, {num_stages}] (0 = after the stem, i = "
                "after stage i), "
                f"got {self.denoise_after}"
            )
        if not isinstance(self.bottleneck, bool):
            raise TypeError(f"bottleneck must be a bool, got {type(self.bottleneck).__name__}")
        if self.middle_denoising_variant not in MIDDLE_CHOICES:
            raise ValueError(
                f"middle_denoising must be one of {MIDDLE_CHOICES}, got {self.middle_denoising_variant!r}"
            )
        if self.denoising_form not in DENOISING_FORMS:
            raise ValueError(f"denoising_form must be one of {DENOISING_FORMS}, got {self.denoising_form!r}")
        if not isinstance(self.swap_activation, bool):
            raise TypeError(f"swap_activation must be a bool, got {type(self.swap_activation).__name__}")
        if (
            not isinstance(self.dropout, (int, float))
            or isinstance(self.dropout, bool)
            or not 0 <= self.dropout < 1
        ):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")

    _warn_if_forward_differs = staticmethod(_warn_if_forward_differs)  # in :mod:`._network_backbone`

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
                    raise ValueError(
                        f"every stage must return a 4-D feature map; got shape {tuple(out.shape)}"
                    )
                channels.append(out.shape[1])
                sizes.append(out.shape[-1])
        except RuntimeError as exc:
            raise ValueError(
                f"the backbone cannot process a ({in_channels}, {input_size}, {input_size}) image: "
                f"{str(exc).splitlines()[0]}"
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
            "denoising_form": self.denoising_form,
            "fpn_channels": self.fpn_channels,
            "swap_activation": self.swap_activation,
            "dropout": float(self.dropout),
            "clip_values": None if self.clip_values is None else list(self.clip_values),
        }

    def _check_input(self, x: Tensor, *, check_range: bool = True) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        check_image_tensor(x, "x", clip_values=None, channels=self.in_channels)
        if check_range and self.clip_values is not None:
            low, high = self.clip_values
            margin = _RANGE_MARGIN * (high - low)
            seen_low, seen_high = (float(v) for v in torch.aminmax(x.detach().float()))
            if seen_low < low - margin or seen_high > high + margin:
                raise ValueError(
                    f"x must lie in clip_values [{low:g}, {high:g}] (up to {margin:g} outside), got values "
                    f"in [{seen_low:.4g}, {seen_high:.4g}]; images in [0, 255] must be "
                    "divided by 255 first, normalised inputs need clip_values=None"
                )
        return x.float()

    def denoising_module(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The shared front/back denoising module: returns the stage outputs (each before its own inner
        denoising layer, which is what the restoration pyramid reads) and the final feature map (after any
        denoising)."""
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
        """Front pass and image restoration: ``x' = FPD_R(FPD_FD(x))``, with the shape of ``x``; ``x`` must be
        finite (not necessarily inside ``clip_values``: Algorithm 1's second pass restores the restored image
        ``x'``)."""
        return self._restore(self._check_input(x, check_range=False))

    def _restore(self, x: Tensor) -> Tensor:
        features, _ = self.denoising_module(x)
        return self.restoration(features, output_size=x.shape[-2:])

    def classify_restored(self, restored: Tensor, x: Tensor) -> Tensor:
        """Middle denoising, back pass and classifier on a restored image ``x'`` of the input ``x``."""
        cleaned = restored if self.middle_denoising is None else self.middle_denoising(restored, x)
        _, last = self.denoising_module(cleaned)
        return self.head(last)

    def forward_with_restoration(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(x', logits)``: the restored image (before the middle layer) and the tanh logits in (-1, 1). The
        training interface: ``x`` must be finite but may leave ``clip_values`` (Algorithm 1 feeds noisy images
        and, in its second pass, the restored ``x'``)."""
        return self._restored_and_logits(self._check_input(x, check_range=False))

    def _restored_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        restored = self._restore(x)
        return restored, self.classify_restored(restored, x)

    def forward(self, x: Tensor, return_restored: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """The tanh logits; with ``return_restored=True`` the pair ``(x', logits)`` of
        :meth:`forward_with_restoration` (the trainer calls it this way so that ``DistributedDataParallel``
        sees the whole training pass). Without ``return_restored`` (classification: ART, the attacks) ``x``
        must also lie in ``clip_values``."""
        restored, logits = self._restored_and_logits(self._check_input(x, check_range=not return_restored))
        return (restored, logits) if return_restored else logits

    # ----- parameter groups (Algorithm 1 restricts phase-1 updates to FPD_FD and FPD_R) -----
    def front_denoising_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of ``FPD_FD`` (= ``FPD_BD``, shared): stem, stages and inner denoising layers."""
        for module in (self.stem, self.stages, self.inner_denoising):
            yield from module.parameters()

    def restoration_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of ``FPD_R``."""
        yield from self.restoration.parameters()

    def middle_denoising_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the middle denoising layer (its gate or batch norm; none for ``"authors_code"``). It
        acts on ``x'`` before the back pass only, so phase 1 (which trains the reconstruction of ``x'``)
        leaves it alone."""
        if self.middle_denoising is not None:
            yield from self.middle_denoising.parameters()

    def classifier_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of ``FPD_LCC``."""
        yield from self.head.parameters()

"""``add_radial_mapping``: equip any CNN with radial-basis mapping blocks (paper 001, Fig. 2).

Two ways of inserting a block, chosen with ``mode``:

``"concat"`` (flat ``nn.Sequential`` models; the paper's Fig. 2): after a convolution and its activation, the
block's
    output g(f) is concatenated with the conv features f on the channel axis, and the next layer that reads
    those channels is rewired: a ``Conv2d`` gets more input channels, a ``Linear`` after ``Flatten`` more
    input features, a ``BatchNorm2d`` in between more channels. The original weights are kept; the new input
    slices get PyTorch's default initialisation.

``"project"`` (any other model, e.g. ResNets with identity shortcuts or a U-Net with skip concatenations,
where the
    consumers of a feature map cannot all be widened): the chosen module's output f is replaced by
    ``Conv1x1([f, g(f)])`` back to f's channel count, the 1x1 convolution initialised to ``[I, 0]`` so the
    model computes exactly what it did before the insertion and learns how to use g. This is the paper's
    concatenation followed by a learned linear read-out, a documented deviation needed for these
    architectures.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ._transform_widen import _seeded_reset as _seeded_reset
from ._transform_widen import _widen_batchnorm, _widen_consumer
from .block import INITS, VARIANTS, RadialBasisMapping

__all__ = [
    "MODES",
    "RadialMappingConcat",
    "RadialMappingProjection",
    "add_radial_mapping",
    "mapping_blocks",
    "mapping_points",
]

MODES = ("auto", "concat", "project")
_ACTIVATIONS = (
    nn.ReLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
    nn.PReLU,
    nn.SELU,
)
_PASS_THROUGH = (
    *_ACTIVATIONS,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)


class RadialMappingConcat(nn.Module):
    """x -> cat([x, g(x)], channel axis), with g a :class:`RadialBasisMapping` (paper Fig. 2).

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.2, Fig. 2 and eq. (7) (concatenation of ``g(f)`` and
    ``f``).
    """

    def __init__(self, mapping: RadialBasisMapping) -> None:
        super().__init__()
        self.mapping = mapping

    def forward(self, x: Tensor) -> Tensor:
        return _concatenate(self.mapping, x)


class RadialMappingProjection(nn.Module):
    """x -> Conv1x1(cat([f, g(f)])) with f = module(x); the 1x1 convolution starts as ``[I, 0]`` (no change).

    Paper: Taghanaki et al. 2019 (paper 001), Fig. 2 / eq. (7) concatenation followed by a learned 1x1
    read-out; a documented deviation for models whose consumers cannot be widened.
    """

    def __init__(self, module: nn.Module, mapping: RadialBasisMapping) -> None:
        super().__init__()
        self.module = module
        self.mapping = mapping
        k = mapping.in_channels
        self.projection = nn.Conv2d(k + mapping.out_channels, k, 1)
        with torch.no_grad():
            self.projection.weight.zero_()
            self.projection.weight[:, :k, 0, 0] = torch.eye(k)
            if self.projection.bias is not None:
                self.projection.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        f = self.module(x)
        return self.projection(_concatenate(self.mapping, f))


def _has_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` would run hooks (its own or global ones) that a direct method call would
    skip."""
    state = nn.modules.module
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
        or state._global_forward_hooks
        or state._global_forward_pre_hooks
        or state._global_backward_hooks
        or state._global_backward_pre_hooks
    )


def _concatenate(mapping: nn.Module, x: Tensor) -> Tensor:
    """cat([x, g(x)]): the block's fused concatenation, or ``torch.cat`` around ``mapping(x)`` when hooks
    watch the block (a direct method call would skip them) or the mapping was replaced by another module."""
    if isinstance(mapping, RadialBasisMapping) and not _has_hooks(mapping):
        return mapping.concatenate(x)
    return torch.cat([x, mapping(x)], dim=1)


def mapping_blocks(model: nn.Module) -> list[RadialBasisMapping]:
    """The radial-basis mapping blocks of a model, in module order.

    Paper: Taghanaki et al. 2019 (paper 001), Fig. 2; lists the inserted eq. (5) blocks.
    """
    return [m for m in model.modules() if isinstance(m, RadialBasisMapping)]


def mapping_points(model: nn.Module) -> list[str]:
    """Recommended insertion points (``after="blocks"``): the outputs of the feature stages.

    Paper: Taghanaki et al. 2019 (paper 001), Fig. 2 (a block after each convolutional layer);
    where blocks go in architectures the paper does not cover.

    ResNet-like models (``stem`` + ``stages``): the stem and every stage. The zoo's U-Net: every double-conv
    block (``down.i``, ``bottleneck``, ``up_conv.i``). Flat ``nn.Sequential``: every consumable convolution
    (as ``"all_conv"``).
    """
    names = dict(model.named_modules())
    if isinstance(model, nn.Sequential):
        return [str(i) for i in _consumable_convs(list(model))]
    if "stem" in names and isinstance(names.get("stages"), nn.ModuleList):
        stages = names["stages"]
        assert isinstance(stages, nn.ModuleList)
        return ["stem", *[f"stages.{i}" for i in range(len(stages))]]
    if (
        isinstance(names.get("down"), nn.ModuleList)
        and "bottleneck" in names
        and isinstance(names.get("up_conv"), nn.ModuleList)
    ):
        down, up = names["down"], names["up_conv"]
        assert isinstance(down, nn.ModuleList) and isinstance(up, nn.ModuleList)
        return [
            *[f"down.{i}" for i in range(len(down))],
            "bottleneck",
            *[f"up_conv.{i}" for i in range(len(up))],
        ]
    raise ValueError(
        f"after='blocks' does not know the stages of {type(model).__name__}; pass a list of module names"
    )


def add_radial_mapping(
    model: nn.Module,
    *,
    after: str | Sequence[str] = "all_conv",
    n_centers: int | None = None,
    variant: str = "paper",
    out_channels: int | None = None,
    mode: str = "auto",
    epsilon: float = 1e-6,
    beta_init: float = 2.0,
    init: str = "uniform",
    init_data: Any = None,
    kmeans_iterations: int = 20,
    seed: int = 0,
    inplace: bool = False,
) -> nn.Module:
    """Insert radial-basis mapping blocks into ``model`` and return the mapped model (an ordinary
    ``nn.Module``).

    Paper: Taghanaki et al. 2019 (paper 001), Section 2.2 and Fig. 2 (a block ``g^(l)`` of eq. (5) after each
    convolutional layer ``l``).

    Args:
        model: a flat ``nn.Sequential`` CNN (``cleverhans_cnn``, ``cw_mnist``, ...) or any ``nn.Module``
            (``resnet18``, ``unet``, ...).
        after: ``"all_conv"`` (every ``Conv2d``; in ``"concat"`` mode every conv whose channels a later layer
            reads), ``"blocks"`` (see :func:`mapping_points`), or a list of module names
            (``model.named_modules()``; in ``"concat"`` mode top-level indices of ``Conv2d`` layers such as
            ``["0", "2"]``).
        n_centers: centres per block (default: the channel count of the features the block reads, as in the
            authors' code).
        variant: ``"paper"`` or ``"authors_code"`` (see :class:`RadialBasisMapping`).
        out_channels: mapped channels per block (default ``n_centers``).
        mode: ``"concat"``, ``"project"`` or ``"auto"`` (``"concat"`` for ``nn.Sequential``, else
            ``"project"``).
        epsilon, beta_init: see :class:`RadialBasisMapping`.
        init: ``"uniform"`` centres, or ``"kmeans"`` of the features of ``init_data`` (a batch of inputs),
            block by block in order so every block sees the features of the already initialised ones.
        kmeans_iterations: Lloyd iterations for ``init="kmeans"``.
        seed: seeds the centres, output weights and rewired slices (reproducible).
        inplace: modify ``model`` itself instead of a deep copy.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "kmeans" and init_data is None:
        raise ValueError("init='kmeans' needs init_data, a batch of input images (N, C, H, W)")
    for name, value in (("n_centers", n_centers), ("out_channels", out_channels)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    if not isinstance(kmeans_iterations, int) or kmeans_iterations < 0:
        raise ValueError(f"kmeans_iterations must be a non-negative integer, got {kmeans_iterations!r}")
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if isinstance(after, str) and after not in ("all_conv", "blocks"):
        raise ValueError(f"after must be 'all_conv', 'blocks' or a list of module names, got {after!r}")
    if not isinstance(after, str):
        after = [str(a) for a in after]
        if not after:
            raise ValueError("after is an empty list; name at least one module")
    resolved = mode if mode != "auto" else ("concat" if isinstance(model, nn.Sequential) else "project")
    if resolved == "concat" and not isinstance(model, nn.Sequential):
        raise ValueError(
            f"mode='concat' needs a flat nn.Sequential model, got {type(model).__name__}; use mode='project'"
        )

    target: nn.Module = model if inplace else copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    options = {
        "n_centers": n_centers,
        "variant": variant,
        "out_channels": out_channels,
        "epsilon": epsilon,
        "beta_init": beta_init,
        "init": init,
    }
    if resolved == "concat":
        assert isinstance(target, nn.Sequential)
        sequential = _map_sequential(target, after, options, generator)
        mapped: nn.Module = sequential
        if inplace:
            _replace_children(target, list(sequential))
            mapped = target
    else:
        _map_project(target, after, options, generator)
        mapped = target
    if init == "kmeans":
        _kmeans_initialise(mapped, init_data, iterations=kmeans_iterations, generator=generator)
    return mapped


def _make_block(
    channels: int, options: dict[str, Any], generator: torch.Generator, like: nn.Module
) -> RadialBasisMapping:
    n_centers = options["n_centers"] if options["n_centers"] is not None else channels
    out = options["out_channels"]
    block = RadialBasisMapping(
        channels,
        n_centers,
        variant=options["variant"],
        out_channels=out,
        epsilon=options["epsilon"],
        beta_init=options["beta_init"],
        init=options["init"],
        generator=generator,
    )
    reference = next(like.parameters(), None)
    return block.to(reference.device) if reference is not None else block


def _consumer_path(layers: list[nn.Module], start: int) -> int | None:
    """Index of the first layer after ``start`` that reads the channels (Conv2d, or Linear after Flatten);
    None if none."""
    flattened = False
    for j in range(start, len(layers)):
        layer = layers[j]
        if isinstance(layer, nn.Conv2d) and not flattened:
            return j
        if isinstance(layer, nn.Linear) and flattened:
            return j
        if isinstance(layer, nn.Flatten):
            flattened = True
            continue
        if isinstance(layer, (*_PASS_THROUGH, nn.BatchNorm2d)):
            continue
        return None
    return None


def _consumable_convs(layers: list[nn.Module]) -> list[int]:
    return [
        i
        for i, layer in enumerate(layers)
        if isinstance(layer, nn.Conv2d) and _consumer_path(layers, i + 1) is not None
    ]


def _map_sequential(
    model: nn.Sequential, after: str | list[str], options: dict[str, Any], generator: torch.Generator
) -> nn.Sequential:
    layers = list(model)
    if after in ("all_conv", "blocks"):
        targets = _consumable_convs(layers)
        if not targets:
            raise ValueError("the model has no convolution whose output channels a later Conv2d/Linear reads")
    else:
        targets = []
        for name in after:
            if not name.isdigit() or int(name) >= len(layers) or not isinstance(layers[int(name)], nn.Conv2d):
                convs = [str(i) for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
                raise ValueError(
                    f"in mode='concat', after must name top-level Conv2d layers ({convs}), got {name!r}"
                )
            index = int(name)
            if _consumer_path(layers, index + 1) is None:
                raise ValueError(
                    f"no later Conv2d/Linear reads the channels of layer {name!r}; cannot concatenate there"
                )
            targets.append(index)
        targets = sorted(set(targets))
    insert_after: dict[int, RadialMappingConcat] = {}
    for i in targets:
        conv = layers[i]
        assert isinstance(conv, nn.Conv2d)
        position = i
        while position + 1 < len(layers) and isinstance(layers[position + 1], _ACTIVATIONS):
            position += 1
        block = _make_block(conv.out_channels, options, generator, conv)
        insert_after[position] = RadialMappingConcat(block)
        consumer = _consumer_path(layers, position + 1)
        assert consumer is not None
        extra = block.out_channels
        for j in range(position + 1, consumer):
            if isinstance(layers[j], nn.BatchNorm2d):
                layers[j] = _widen_batchnorm(layers[j], extra)  # type: ignore[arg-type]
        layers[consumer] = _widen_consumer(layers[consumer], conv.out_channels, extra, generator)
    new_layers: list[nn.Module] = []
    for index, layer in enumerate(layers):
        new_layers.append(layer)
        if index in insert_after:
            new_layers.append(insert_after[index])
    return nn.Sequential(*new_layers)


def _replace_children(model: nn.Sequential, layers: list[nn.Module]) -> None:
    for key in list(model._modules):
        del model._modules[key]
    for index, layer in enumerate(layers):
        model.add_module(str(index), layer)


def _output_channels(module: nn.Module, name: str) -> int:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return module.out_channels
    convs = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    if not convs:
        raise ValueError(
            f"module {name!r} ({type(module).__name__}) contains no convolution; cannot tell its channel "
            "count"
        )
    return convs[-1].out_channels


def _map_project(
    model: nn.Module, after: str | list[str], options: dict[str, Any], generator: torch.Generator
) -> None:
    modules = dict(model.named_modules())
    if after == "all_conv":
        names = [name for name, m in modules.items() if isinstance(m, nn.Conv2d) and name]
        if not names:
            raise ValueError(f"{type(model).__name__} has no Conv2d layer")
    elif after == "blocks":
        names = mapping_points(model)
    else:
        names = list(after)
        for name in names:
            if name not in modules or not name:
                raise ValueError(f"after names {name!r}, which is not a submodule of {type(model).__name__}")
        for a in names:
            for b in names:
                if a != b and b.startswith(a + "."):
                    raise ValueError(f"after names both {a!r} and its submodule {b!r}; name only one of them")
    for name in names:
        module = modules[name]
        block = _make_block(_output_channels(module, name), options, generator, module)
        wrapper = RadialMappingProjection(module, block)
        reference = next(module.parameters(), None)
        if reference is not None:
            wrapper.projection.to(reference.device)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, wrapper)


@torch.no_grad()
def _kmeans_initialise(
    model: nn.Module, init_data: Any, *, iterations: int, generator: torch.Generator
) -> None:
    reference = next(model.parameters())
    x = torch.as_tensor(init_data, dtype=torch.float32).to(reference.device)
    if x.ndim != 4 or len(x) == 0 or not torch.isfinite(x).all():
        raise ValueError(
            f"init_data must be a non-empty finite batch (N, C, H, W), got shape {tuple(x.shape)}"
        )
    was_training = model.training
    model.eval()
    try:
        for block in mapping_blocks(model):

            def hook(
                module: nn.Module, inputs: tuple[Tensor, ...], block: RadialBasisMapping = block
            ) -> None:
                block.initialize_from_features(inputs[0], iterations=iterations, generator=generator)

            handle = block.register_forward_pre_hook(hook)
            try:
                model(x)
            finally:
                handle.remove()
    finally:
        model.train(was_training)

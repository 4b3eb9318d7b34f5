"""The names of the zoo's architectures, without importing torch: the ``amd`` command offers them as
``--model`` choices when it builds its parser. :data:`art_manifold_defenses.models.MODELS` maps the same names
to their builders.
"""

from __future__ import annotations

__all__ = ["ZOO_NAMES"]

#: Every key of :data:`art_manifold_defenses.models.MODELS`, sorted (what :func:`~.registry.model_names`
#: returns).
ZOO_NAMES: tuple[str, ...] = (
    "cleverhans_cnn",
    "cw_mnist",
    "cw_mnist_paper",
    "preact_resnet18",
    "resnet101",
    "resnet18",
    "resnet50",
    "stn_cifar",
    "tramer_a",
    "unet",
    "vgg16",
    "wong_small",
)

"""Reference architectures of the five papers, written without torchvision.

``build_model(name, in_channels=..., num_classes=..., input_size=..., activation=...)`` builds any of them;
see :data:`MODELS` for the names. Every activation is an ``nn.ReLU``/``nn.ELU`` module (never functional), so
forward hooks (manifold regularization) and module surgery (radial mapping, ELU swap) see them.

The names are imported on first use (PEP 562); :data:`.names.ZOO_NAMES` lists the architectures without torch.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .mnist_nets import cleverhans_cnn, cw_mnist, cw_mnist_paper, tramer_a, wong_small
    from .registry import MODELS, build_model, make_activation, model_names
    from .resnet import PreActResNet18, ResNet, preact_resnet18, resnet18, resnet50, resnet101
    from .small_nets import UNet, stn_cifar, unet, vgg16

__all__ = [
    "MODELS",
    "PreActResNet18",
    "ResNet",
    "UNet",
    "build_model",
    "cleverhans_cnn",
    "cw_mnist",
    "cw_mnist_paper",
    "make_activation",
    "model_names",
    "preact_resnet18",
    "resnet18",
    "resnet50",
    "resnet101",
    "stn_cifar",
    "tramer_a",
    "unet",
    "vgg16",
    "wong_small",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ("cleverhans_cnn", "cw_mnist", "cw_mnist_paper", "tramer_a", "wong_small"), ".mnist_nets"
        ),
        **dict.fromkeys(("MODELS", "build_model", "make_activation", "model_names"), ".registry"),
        **dict.fromkeys(
            ("PreActResNet18", "ResNet", "preact_resnet18", "resnet18", "resnet50", "resnet101"), ".resnet"
        ),
        **dict.fromkeys(("UNet", "stn_cifar", "unet", "vgg16"), ".small_nets"),
    },
)

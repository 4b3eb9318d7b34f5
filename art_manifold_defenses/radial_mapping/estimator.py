"""``RadialMappingClassifierPyTorch``: an ART ``PyTorchClassifier`` built from a user's model plus the mapping
options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from ..estimator import _classifier_arguments, _image_input_shape
from .block import INITS, VARIANTS
from .transform import MODES, add_radial_mapping, mapping_blocks

__all__ = ["RadialMappingClassifierPyTorch"]


class RadialMappingClassifierPyTorch(PyTorchClassifier):
    """ART classifier of a CNN equipped with radial-basis feature mapping blocks (Taghanaki et al., CVPR 2019,
    https://arxiv.org/abs/1903.01015, eqs. 2-5 and Fig. 2).

    The user's ``model`` is transformed by :func:`~art_manifold_defenses.radial_mapping.add_radial_mapping`
    (on a copy); centres, widths and the distance matrix are then learned with the CNN by back-propagation,
    e.g. with ART's ``fit`` (an Adam optimiser with ``learning_rate`` is created when none is given; the
    paper uses Adam 1e-3, batch 128). Inputs are cast to float32 before the model.

    Args:
        model: the user's CNN (logits out); not modified.
        input_shape, nb_classes: as for ``PyTorchClassifier``.
        after, n_centers, variant, out_channels, mode, epsilon, beta_init, init, init_data, seed: mapping
            options, see :func:`~art_manifold_defenses.radial_mapping.add_radial_mapping`.
        loss: default ``nn.CrossEntropyLoss()``.
        optimizer: default Adam(lr=``learning_rate``) over the mapped model's parameters.
        clip_values: default (0, 1).
        device_type: ART's ``"cpu"`` or ``"gpu"`` (GPU when available).

    Known limitations: the mapping is deterministic and fully differentiable, so standard white-box attacks
    apply unchanged; the independent AutoAttack evaluation of this defence (Croce & Hein 2020) found 0% robust
    accuracy at l_inf epsilon 0.3 on MNIST. No gradient obfuscation is added here to hide that.
    """

    mapping_params = [
        "after",
        "n_centers",
        "variant",
        "out_channels",
        "mode",
        "epsilon",
        "beta_init",
        "init",
        "seed",
    ]

    def __init__(
        self,
        model: nn.Module,
        *,
        input_shape: Sequence[int],
        nb_classes: int,
        after: str | Sequence[str] = "all_conv",
        n_centers: int | None = None,
        variant: str = "paper",
        out_channels: int | None = None,
        mode: str = "auto",
        epsilon: float = 1e-6,
        beta_init: float = 2.0,
        init: str = "uniform",
        init_data: Any = None,
        seed: int = 0,
        loss: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        learning_rate: float = 1e-3,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        preprocessing_defences: Any = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = (0.0, 1.0),
        device_type: str = "gpu",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        shape = _image_input_shape(input_shape)
        if not isinstance(nb_classes, int) or isinstance(nb_classes, bool) or nb_classes < 2:
            raise ValueError(f"nb_classes must be an integer >= 2, got {nb_classes!r}")
        if not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        if device_type not in ("cpu", "gpu"):
            raise ValueError(f"device_type must be 'cpu' or 'gpu', got {device_type!r}")
        self.after = after if isinstance(after, str) else [str(a) for a in after]
        self.n_centers = n_centers
        self.variant = variant
        self.out_channels = out_channels
        self.mode = mode
        self.epsilon = epsilon
        self.beta_init = beta_init
        self.init = init
        self.seed = seed
        self._check_mapping_params()
        mapped = add_radial_mapping(
            model,
            after=self.after,
            n_centers=n_centers,
            variant=variant,
            out_channels=out_channels,
            mode=mode,
            epsilon=epsilon,
            beta_init=beta_init,
            init=init,
            init_data=init_data,
            seed=seed,
        )
        if optimizer is None:
            optimizer = torch.optim.Adam(mapped.parameters(), lr=float(learning_rate))
        mapped.eval()
        super().__init__(
            **_classifier_arguments(mapped, shape, nb_classes, loss),
            optimizer=optimizer,
            clip_values=clip_values,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=device_type,
        )
        self._mapped_model = mapped

    def _check_mapping_params(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        for name in ("n_centers", "out_channels"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if not isinstance(self.epsilon, (int, float)) or not self.epsilon >= 0:
            raise ValueError(f"epsilon must be a non-negative number, got {self.epsilon!r}")
        if not isinstance(self.beta_init, (int, float)) or not self.beta_init > 0:
            raise ValueError(f"beta_init must be a positive number, got {self.beta_init!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed must be an integer, got {type(self.seed).__name__}")

    @property
    def mapped_model(self) -> nn.Module:
        """The mapped ``nn.Module`` (logits out), shared with the classifier: training either trains both."""
        return self._mapped_model

    def mapping_config(self) -> dict[str, Any]:
        """The mapping options as stored in a checkpoint's ``defence.params`` (JSON-serialisable)."""
        return {name: getattr(self, name) for name in self.mapping_params if name not in ("init", "seed")}

    def mapping_summary(self) -> list[dict[str, float]]:
        """Per block: mean width beta and the condition number of the learned distance matrix."""
        rows = []
        for block in mapping_blocks(self._mapped_model):
            with torch.no_grad():
                matrix = block.precision().double().cpu()
                eig = torch.linalg.eigvalsh((matrix + matrix.T) / 2).abs()
                rows.append(
                    {
                        "in_channels": float(block.in_channels),
                        "beta_mean": float(block.beta.mean()),
                        "condition": float(eig.max() / eig.min().clamp_min(1e-30)),
                    }
                )
        return rows

    def predict_labels(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Predicted class indices (argmax of :meth:`predict`)."""
        return np.asarray(self.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size)).argmax(1)

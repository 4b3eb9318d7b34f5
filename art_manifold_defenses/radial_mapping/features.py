"""Feature-space analysis of paper 001, Table 2: how compact and separable the penultimate features are
(:func:`feature_analysis`, re-exported by :mod:`art_manifold_defenses.radial_mapping`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_mutual_info_score,
    calinski_harabasz_score,
    completeness_score,
    homogeneity_score,
    silhouette_score,
)
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..utils import check_images, check_labels, resolve_device

__all__ = ["feature_analysis", "extract_features"]


def _last_linear_name(model: nn.Module) -> str:
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError("the model has no nn.Linear layer; pass layer=<module name> whose output to analyse")
    return names[-1]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    x: Any,
    *,
    layer: str | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = "cpu",
    verbose: bool = False,
) -> np.ndarray:
    """Flattened features of ``x``: the *input* of the last ``nn.Linear`` (penultimate features) when
    ``layer`` is None, else the *output* of the named module. Returns (N, D) float32.

    Paper: Taghanaki et al. 2019 (paper 001), Table 2 and Fig. 4 (feature-space analysis);
    feature extraction.
    """
    x_np = check_images(x, "x", clip_values=None)
    dev = resolve_device(device)
    modules = dict(model.named_modules())
    use_input = layer is None
    name = _last_linear_name(model) if layer is None else layer
    if name not in modules:
        raise ValueError(
            f"layer {name!r} is not a module of the model; choose one of {[n for n in modules if n][:20]}..."
        )
    captured: list[Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        captured.append((inputs[0] if use_input else output).detach().flatten(1).float().cpu())

    handle = modules[name].register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(x_np), batch_size), desc="features", disable=not verbose, leave=False):
            model(torch.from_numpy(x_np[start : start + batch_size]).to(dev))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured).numpy()


def feature_analysis(
    model: nn.Module,
    x: Any,
    y: Any,
    layer: str | None = None,
    *,
    n_clusters: int | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = "cpu",
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, Any]:
    """Silhouette, Calinski-Harabasz, mutual information, homogeneity and completeness of a model's features
    (paper 001, Table 2, computed with scikit-learn).

    The features (penultimate by default, see :func:`extract_features`) are clustered by k-means
    (``n_clusters`` defaults to the number of classes in ``y``; k-means++ seeded with ``seed``). Silhouette
    and Calinski-Harabasz measure the compactness and separation of those clusters without labels; adjusted
    mutual information, homogeneity and completeness compare the clusters with the true labels. Higher is
    better for all five. The paper does not say which clustering it scored; this choice is documented here and
    in the returned ``"clustering"``.
    """
    features = extract_features(model, x, layer=layer, batch_size=batch_size, device=device, verbose=verbose)
    n_classes = int(np.asarray(y).max()) + 1 if len(np.asarray(y)) else 0
    labels = check_labels(y, len(features), max(n_classes, 1), "y")
    k = n_clusters if n_clusters is not None else len(np.unique(labels))
    if not isinstance(k, int) or k < 2 or k >= len(features):
        raise ValueError(
            f"n_clusters must be an integer in [2, {len(features) - 1}] (2 <= k < number of samples), got "
            f"{k!r}"
        )
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features)
    if len(np.unique(clusters)) < 2:
        raise ValueError(
            "all features fell into one cluster (constant features?); the cluster scores are undefined"
        )
    return {
        "silhouette": float(silhouette_score(features, clusters)),
        "calinski_harabasz": float(calinski_harabasz_score(features, clusters)),
        "mutual_information": float(adjusted_mutual_info_score(labels, clusters)),
        "homogeneity": float(homogeneity_score(labels, clusters)),
        "completeness": float(completeness_score(labels, clusters)),
        "n_samples": int(len(features)),
        "feature_dim": int(features.shape[1]),
        "layer": layer if layer is not None else f"input of {_last_linear_name(model)}",
        "clustering": f"k-means, k={k}, seed={seed}",
    }

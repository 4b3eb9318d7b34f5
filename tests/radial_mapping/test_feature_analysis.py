"""Paper 001's Table 2 scores of penultimate features, and the feature-analysis subcommand."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.checkpoint import save_checkpoint
from art_manifold_defenses.models import build_model
from art_manifold_defenses.radial_mapping import extract_features, feature_analysis
from art_manifold_defenses.radial_mapping.cli import add_subcommands


def _clustered(n_per_class: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.random((3, 1, 4, 4))
    x = np.concatenate(
        [np.clip(c + rng.normal(0, 0.02, (n_per_class, 1, 4, 4)) * (1 / separation), 0, 1) for c in centres]
    )
    return x.astype(np.float32), np.repeat(np.arange(3), n_per_class)


def test_well_separated_features_score_high_and_labels_matter() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = _clustered(40, separation=1.0)
    scores = feature_analysis(model, x, y)
    assert scores["silhouette"] > 0.6 and scores["homogeneity"] > 0.95 and scores["completeness"] > 0.95
    assert scores["mutual_information"] > 0.95 and scores["calinski_harabasz"] > 100
    assert scores["feature_dim"] == 16 and scores["n_samples"] == 120
    shuffled = np.random.default_rng(1).permutation(y)
    assert feature_analysis(model, x, shuffled)["homogeneity"] < 0.3
    noisy_x, _ = _clustered(40, separation=0.1)
    assert feature_analysis(model, noisy_x, y)["silhouette"] < scores["silhouette"]


def test_named_layer_and_errors() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = _clustered(10, 1.0)
    assert extract_features(model, x, layer="1").shape == (30, 5)
    assert extract_features(model, x).shape == (30, 5)  # input of the last Linear
    with pytest.raises(ValueError, match="not a module"):
        feature_analysis(model, x, y, layer="9")
    with pytest.raises(ValueError, match="n_clusters"):
        feature_analysis(model, x, y, n_clusters=1)
    with pytest.raises(ValueError, match="labels"):
        feature_analysis(model, x, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        feature_analysis(model, np.full_like(x, np.nan), y)


def test_feature_analysis_subcommand(tmp_path, data_root: str, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    path = save_checkpoint(
        build_model("cleverhans_cnn"),
        tmp_path / "model.pt",
        architecture={"name": "cleverhans_cnn"},
        dataset="mnist-embedded",
    )
    parser = argparse.ArgumentParser()
    commands = add_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "feature-analysis",
            "--checkpoint",
            str(path),
            "--data-root",
            data_root,
            "--n",
            "60",
            "--out",
            str(tmp_path / "fa.json"),
            "--quiet",
        ]
    )
    assert commands[args.command](args) == 0
    result = json.loads((tmp_path / "fa.json").read_text())
    assert result["n_samples"] == 60 and result["feature_dim"] == 32
    assert set(result) >= {
        "silhouette",
        "calinski_harabasz",
        "mutual_information",
        "homogeneity",
        "completeness",
    }
    assert "silhouette" in capsys.readouterr().out

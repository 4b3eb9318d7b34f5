"""Checkpoint round trip, sidecar, defence registry, refusal of pickled code and of mismatched
architectures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from art_manifold_defenses.checkpoint import load_checkpoint, read_metadata, register_defence, save_checkpoint
from art_manifold_defenses.models import build_model


def test_round_trip_rebuilds_from_sidecar(tmp_path: Path) -> None:
    model = build_model("tramer_a").eval()
    arch = {"name": "tramer_a", "in_channels": 1, "num_classes": 10, "input_size": 28}
    path = save_checkpoint(
        model, tmp_path / "m" / "model.pt", architecture=arch, dataset="mnist", extra={"acc": 0.5}
    )
    meta = read_metadata(path)
    assert meta["architecture"] == arch and meta["dataset"] == "mnist" and meta["extra"]["acc"] == 0.5
    assert "package_version" in meta and meta["defence"] is None
    loaded, meta2 = load_checkpoint(path)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))
    assert not loaded.training and meta2 == meta


class _Scaled(nn.Module):
    def __init__(self, base: nn.Module, factor: float) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("factor", torch.tensor(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * self.factor


def test_defended_model_is_rebuilt_through_the_registry(tmp_path: Path) -> None:
    register_defence("test-scaled", lambda base, params: _Scaled(base, params["factor"]))
    model = _Scaled(build_model("wong_small"), 2.0).eval()
    path = save_checkpoint(
        model,
        tmp_path / "model.pt",
        architecture={"name": "wong_small"},
        defence={"name": "test-scaled", "params": {"factor": 2.0}},
    )
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, _Scaled) and meta["defence"]["params"] == {"factor": 2.0}
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))


def test_unknown_defence_is_a_clear_error(tmp_path: Path) -> None:
    path = save_checkpoint(
        build_model("wong_small"),
        tmp_path / "model.pt",
        architecture={"name": "wong_small"},
        defence={"name": "no-such-defence", "params": {}},
    )
    with pytest.raises(ValueError, match="no-such-defence"):
        load_checkpoint(path)


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(
        build_model("wong_small"), tmp_path / "model.pt", architecture={"name": "wong_small"}
    )
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(path, model=build_model("cw_mnist"))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["architecture"] = {"name": "tramer_a"}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="tramer_a"):
        load_checkpoint(path)


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this would run on load",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"weight": _Payload()}, path)
    (tmp_path / "model.json").write_text(json.dumps({"architecture": {"name": "wong_small"}}))
    with pytest.raises(ValueError, match="refusing"):
        load_checkpoint(path)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({}, tmp_path / "lonely.pt")
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_checkpoint(tmp_path / "lonely.pt")
    with pytest.raises(ValueError, match="name"):
        save_checkpoint(build_model("wong_small"), tmp_path / "x.pt", architecture={})

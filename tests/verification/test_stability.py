"""Provable ReLU stability shares and the epoch-end monitor."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.training import train
from art_manifold_defenses.verification import StabilityMonitor, stable_relu_fraction


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)
    ).eval()


def test_stability_shrinks_with_eps_and_is_complete_at_zero() -> None:
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0)).numpy()
    model = _net()
    at_zero = stable_relu_fraction(model, x, 0.0)
    assert at_zero["stable"] == pytest.approx(1.0)  # a ball of radius 0 fixes every ReLU
    shares = [stable_relu_fraction(model, x, eps, bounds="ibp")["stable"] for eps in (0.01, 0.1, 0.5)]
    assert shares[0] >= shares[1] >= shares[2] and shares[2] < 1.0
    result = stable_relu_fraction(model, x, 0.1, bounds="crown")
    assert result["relus"] == 20 and result["images"] == 5
    for layer in result["layers"]:
        assert layer["active"] + layer["inactive"] + layer["unstable"] == pytest.approx(1.0)
    assert result["stable"] >= shares[1]  # crown is at least as tight as ibp
    with pytest.raises(ValueError, match="bounds"):
        stable_relu_fraction(model, x, 0.1, bounds="milp")
    with pytest.raises(ValueError, match="eps"):
        stable_relu_fraction(model, x, -1.0)


def test_monitor_records_every_epoch() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    monitor = StabilityMonitor(x, 0.05, max_images=4)
    model = _net()
    history = train(model, x, y, epochs=2, batch_size=32, verbose=False, on_epoch_end=monitor)
    assert len(monitor.history) == 2
    assert all(0.0 <= h["stable"] <= 1.0 for h in monitor.history)
    assert history is not None
    model.train()
    monitor(SimpleNamespace(model=model, epoch=7), record := {})
    assert (
        model.training and record["stable_relus"] == monitor.history[-1]["stable"]
    )  # mode restored, value recorded
    assert monitor.history[-1]["epoch"] == 7
    with pytest.raises(ValueError, match="max_images"):
        StabilityMonitor(x, 0.05, max_images=0)

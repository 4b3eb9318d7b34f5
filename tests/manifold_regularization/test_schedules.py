"""Appendix B schedules as functions of the epoch."""

from __future__ import annotations

import pytest

from art_manifold_defenses.manifold_regularization import (
    ManifoldRegularizationSchedule,
    PiecewiseLinear,
    constant_schedule,
    paper_schedule,
)


def test_piecewise_linear_interpolates_and_is_constant_outside() -> None:
    curve = PiecewiseLinear([(0, 0.0), (10, 1.0), (20, 1.0), (30, 0.0)])
    assert curve(-5) == 0.0
    assert curve(5) == pytest.approx(0.5)
    assert curve(15) == 1.0
    assert curve(27.5) == pytest.approx(0.25)
    assert curve(100) == 0.0
    assert curve.scaled(x=0.1, y=2.0)(0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        PiecewiseLinear([(1, 0.0), (0, 1.0)])
    with pytest.raises(ValueError, match="at least one"):
        PiecewiseLinear([])


def test_cifar10_paper_schedule_values() -> None:
    s = paper_schedule("cifar10", epochs=100)
    assert s.learning_rate is not None
    assert [s.learning_rate(t) for t in (0, 20, 40, 80, 90, 100)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.005, 0.0025, 0.0]
    )
    assert [s.epsilon(t) for t in (0, 10, 22.5, 35, 99)] == pytest.approx(
        [2 / 255, 2 / 255, 5 / 255, 8 / 255, 8 / 255]
    )
    assert [s.gamma_intrinsic(t) for t in (0, 20, 50, 80, 100)] == pytest.approx([0.8, 0.8, 4.4, 8.0, 8.0])
    assert [s.gamma_hamming(t) for t in (10, 80)] == pytest.approx([2400.0, 24000.0])


def test_presets_and_stretching_to_fewer_epochs() -> None:
    mnist = paper_schedule("mnist", epochs=10)
    assert mnist.epsilon(0) == pytest.approx(0.075) and mnist.epsilon(3.5) == pytest.approx(0.3)
    assert mnist.learning_rate is not None and mnist.learning_rate(4) == pytest.approx(0.1)
    verification = paper_schedule("verification", epochs=100)
    assert verification.gamma_intrinsic(0) == pytest.approx(0.4) and verification.gamma_hamming(
        80
    ) == pytest.approx(90000)
    custom = paper_schedule(
        "cifar10", epochs=100, epsilon=0.5, gamma_intrinsic=1.0, gamma_hamming=10.0, ramp_factor=1.0
    )
    assert (
        custom.epsilon(50) == 0.5 and custom.gamma_intrinsic(90) == 1.0 and custom.gamma_hamming(90) == 10.0
    )
    values = mnist.at(5.0)
    assert set(values) == {"epsilon", "gamma_intrinsic", "gamma_hamming", "lr"}


def test_constant_and_custom_schedules() -> None:
    s = constant_schedule(epsilon=0.2, gamma_intrinsic=1.0, gamma_hamming=3.0)
    assert s.at(0.0) == s.at(57.3) == {"epsilon": 0.2, "gamma_intrinsic": 1.0, "gamma_hamming": 3.0}
    custom = ManifoldRegularizationSchedule(
        epsilon=lambda t: 0.01 * t, gamma_intrinsic=1.0, gamma_hamming=0.0, learning_rate=0.3
    )
    assert custom.at(5.0) == {"epsilon": 0.05, "gamma_intrinsic": 1.0, "gamma_hamming": 0.0, "lr": 0.3}
    assert custom.describe()["learning_rate"] == [(0.0, 0.3)]
    with pytest.raises(ValueError, match="finite and >= 0"):
        ManifoldRegularizationSchedule(epsilon=lambda t: -1.0, gamma_intrinsic=1.0, gamma_hamming=1.0).at(0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "imagenet"}, "preset"),
        ({"epochs": 0}, "epochs"),
        ({"lr_peak": -0.1}, "lr_peak"),
        ({"epsilon": -1.0}, "epsilon"),
    ],
)
def test_bad_schedule_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paper_schedule(**kwargs)
    with pytest.raises(ValueError, match="gamma_hamming"):
        ManifoldRegularizationSchedule(epsilon=0.1, gamma_intrinsic=1.0, gamma_hamming=None)  # type: ignore[arg-type]

"""Training schedules of Jin & Rinard (appendix B), as functions of the (fractional) epoch.

Every quantity that the paper ramps -- the learning rate, the radius eps, and the weights gamma_I and gamma_H
-- is a :class:`PiecewiseLinear` function of training progress. :func:`paper_schedule` builds the paper's
recipes for a 100-epoch run and stretches their breakpoints to any other number of epochs, so a short run
keeps the same shape. Any callable ``progress -> value`` (or a constant) can replace any of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ._params import _check_non_negative

__all__ = [
    "PRESET_MOMENTUM",
    "ManifoldRegularizationSchedule",
    "PRESETS",
    "PiecewiseLinear",
    "constant_schedule",
    "paper_schedule",
    "preset_momentum",
]

ScheduleValue = Callable[[float], float]


class PiecewiseLinear:
    """Linear interpolation between ``(progress, value)`` knots, constant before the first and after the last.

    Paper: Jin & Rinard 2020 (paper 003), Appendix B (its schedules are piecewise linear); a
    schedule helper.

    Args:
        knots: at least one ``(x, y)`` pair with non-decreasing, finite ``x`` and finite ``y``.
    """

    def __init__(self, knots: Sequence[tuple[float, float]]) -> None:
        pairs = [(float(a), float(b)) for a, b in knots]
        if not pairs:
            raise ValueError("knots must hold at least one (progress, value) pair")
        if not all(math.isfinite(a) and math.isfinite(b) for a, b in pairs):
            raise ValueError(f"knots must be finite, got {pairs}")
        if any(b[0] < a[0] for a, b in zip(pairs, pairs[1:], strict=False)):
            raise ValueError(f"knot positions must be non-decreasing, got {[a for a, _ in pairs]}")
        self.knots = pairs

    def __call__(self, progress: float) -> float:
        t = float(progress)
        if t <= self.knots[0][0]:
            return self.knots[0][1]
        for (x0, y0), (x1, y1) in zip(self.knots, self.knots[1:], strict=False):
            if t <= x1:
                return y1 if x1 == x0 else y0 + (y1 - y0) * (t - x0) / (x1 - x0)
        return self.knots[-1][1]

    def scaled(self, *, x: float = 1.0, y: float = 1.0) -> PiecewiseLinear:
        """The same curve with positions multiplied by ``x`` and values by ``y``."""
        return PiecewiseLinear([(a * x, b * y) for a, b in self.knots])

    def __repr__(self) -> str:
        return f"PiecewiseLinear({self.knots})"


def _required(value: float | ScheduleValue | None, name: str) -> ScheduleValue:
    schedule = _as_schedule(value, name)
    if schedule is None:
        raise ValueError(f"{name} must be given (a callable progress -> value or a number)")
    return schedule


def _as_schedule(value: float | ScheduleValue | None, name: str) -> ScheduleValue | None:
    if value is None:
        return None
    if callable(value):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"{name} must be a callable progress -> value or a finite number >= 0, got {value!r}"
        )
    return PiecewiseLinear([(0.0, float(value))])


class ManifoldRegularizationSchedule:
    """Per-batch values of the training hyper-parameters as functions of progress (fractional epoch).

    Paper: Jin & Rinard 2020 (paper 003), Appendix B (eps, gamma_I, gamma_H of eq. 15 and the learning rate
    over training).

    Each argument is a callable ``progress -> value`` or a constant number (>= 0).

    Attributes:
        epsilon: radius of the resampled eps-ball.
        gamma_intrinsic: weight gamma_I of the intrinsic term.
        gamma_hamming: weight gamma_H of the Hamming term.
        learning_rate: the optimizer's learning rate, written into every parameter group before each step
            (``None``: the optimizer's own learning rate is left alone).
    """

    def __init__(
        self,
        epsilon: float | ScheduleValue,
        gamma_intrinsic: float | ScheduleValue,
        gamma_hamming: float | ScheduleValue,
        learning_rate: float | ScheduleValue | None = None,
    ) -> None:
        self.epsilon: ScheduleValue = _required(epsilon, "epsilon")
        self.gamma_intrinsic: ScheduleValue = _required(gamma_intrinsic, "gamma_intrinsic")
        self.gamma_hamming: ScheduleValue = _required(gamma_hamming, "gamma_hamming")
        self.learning_rate: ScheduleValue | None = _as_schedule(learning_rate, "learning_rate")
        #: the :func:`paper_schedule` preset this schedule was built from (``None``: built by hand); it picks
        #: the default momentum (:func:`preset_momentum`)
        self.preset: str | None = None

    def at(self, progress: float) -> dict[str, float]:
        """All values at ``progress``: keys ``epsilon``, ``gamma_intrinsic``, ``gamma_hamming`` (and
        ``lr``)."""
        values = {
            "epsilon": float(self.epsilon(progress)),
            "gamma_intrinsic": float(self.gamma_intrinsic(progress)),
            "gamma_hamming": float(self.gamma_hamming(progress)),
        }
        if self.learning_rate is not None:
            values["lr"] = float(self.learning_rate(progress))
        for key, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"schedule gave {key}={value} at progress {progress}; values must be finite and >= 0"
                )
        return values

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description (knots of piecewise-linear parts, ``repr`` of anything else)."""
        out: dict[str, Any] = {}
        for name in ("epsilon", "gamma_intrinsic", "gamma_hamming", "learning_rate"):
            value = getattr(self, name)
            out[name] = (
                value.knots
                if isinstance(value, PiecewiseLinear)
                else (None if value is None else repr(value))
            )
        return out


#: The paper's recipes (appendix B) for a 100-epoch run: (eps_max, gamma_I start, gamma_H start).
PRESETS: dict[str, tuple[float, float, float]] = {
    "cifar10": (8 / 255, 0.8, 2400.0),  # PreActResNet18
    "verification": (8 / 255, 0.4, 9000.0),  # small CNN for exact verification (CIFAR-10)
    "mnist": (0.3, 0.8, 2400.0),  # C&W MNIST net: "same schedules ... except that eps scales to 0.3"
}

#: SGD momentum of each preset's default optimizer. The paper says "SGD" and follows Maini et al.'s learning
#: rate (peak 0.1) without naming a momentum. CIFAR-10 presets: Maini et al.'s 0.9. MNIST: 0 -- with 0.9,
#: C&W's net (no batch normalisation) diverged at the schedule's peak (measured: quick reproduction, epoch 4
#: of 10, the gradient norm went 67 -> 1,109 -> 4.3e6 in three steps and the loss became non-finite; resumed
#: from the same epoch-3 state with momentum 0 it trained on, 97.5% training accuracy after epoch 5). Peak 0.1
#: without momentum is also the effective step of C&W's own recipe for this net (SGD 0.01, momentum 0.9).
PRESET_MOMENTUM: dict[str, float] = {"cifar10": 0.9, "verification": 0.9, "mnist": 0.0}

#: momentum for a schedule that names no preset (a hand-built :class:`ManifoldRegularizationSchedule`)
DEFAULT_MOMENTUM = 0.9


def preset_momentum(schedule: Any) -> float:
    """The default SGD momentum for ``schedule``: a preset name or a schedule built by :func:`paper_schedule`
    gets :data:`PRESET_MOMENTUM` of its preset, anything else :data:`DEFAULT_MOMENTUM`.

    Paper: Jin & Rinard 2020 (paper 003), Appendix B names SGD and Maini et al.'s learning rate but no
    momentum.
    """
    preset = schedule if isinstance(schedule, str) else getattr(schedule, "preset", None)
    return PRESET_MOMENTUM.get(preset, DEFAULT_MOMENTUM) if isinstance(preset, str) else DEFAULT_MOMENTUM


def paper_schedule(
    preset: str = "cifar10",
    *,
    epochs: int = 100,
    lr_peak: float = 0.1,
    epsilon: float | None = None,
    gamma_intrinsic: float | None = None,
    gamma_hamming: float | None = None,
    ramp_factor: float = 10.0,
) -> ManifoldRegularizationSchedule:
    """The schedules of appendix B, with the 100-epoch breakpoints stretched to ``epochs``.

    Paper: Jin & Rinard 2020 (paper 003), Appendix B.

    * learning rate (Maini et al. 2019): 0 -> ``lr_peak`` (epochs 0-40) -> 0.005 (80) -> 0 (100);
    * eps: ``eps/4`` until epoch 10, linear to ``eps`` at epoch 35 (CIFAR-10: 2/255 -> 8/255; MNIST: the same
      shape scaled to 0.3, i.e. 0.075 -> 0.3), then fixed;
    * gamma_I and gamma_H: their start value until epoch 20, linear up to ``ramp_factor`` (10) times it at
      epoch 80.

    Args:
        preset: ``"cifar10"`` (PreActResNet18: gamma_I 0.8, gamma_H 2400), ``"verification"`` (small CNN: 0.4,
            9000) or ``"mnist"`` (eps 0.3; gamma as CIFAR-10).
        epochs: length of the run (the breakpoints are scaled by ``epochs / 100``).
        epsilon, gamma_intrinsic, gamma_hamming: override the preset's final eps and the start weights.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    for name, value in (("lr_peak", lr_peak), ("ramp_factor", ramp_factor)):
        _check_non_negative(value, name)
    eps_max, g_i, g_h = PRESETS[preset]
    eps_max = eps_max if epsilon is None else epsilon
    g_i = g_i if gamma_intrinsic is None else gamma_intrinsic
    g_h = g_h if gamma_hamming is None else gamma_hamming
    for name, value in (("epsilon", eps_max), ("gamma_intrinsic", g_i), ("gamma_hamming", g_h)):
        _check_non_negative(value, name)
    stretch = epochs / 100.0
    lr_final_knee = 0.005 if lr_peak >= 0.005 else lr_peak
    schedule = ManifoldRegularizationSchedule(
        epsilon=PiecewiseLinear([(0, eps_max / 4), (10, eps_max / 4), (35, eps_max)]).scaled(x=stretch),
        gamma_intrinsic=PiecewiseLinear([(0, g_i), (20, g_i), (80, g_i * ramp_factor)]).scaled(x=stretch),
        gamma_hamming=PiecewiseLinear([(0, g_h), (20, g_h), (80, g_h * ramp_factor)]).scaled(x=stretch),
        learning_rate=PiecewiseLinear([(0, 0.0), (40, lr_peak), (80, lr_final_knee), (100, 0.0)]).scaled(
            x=stretch
        ),
    )
    schedule.preset = preset
    return schedule


def constant_schedule(
    *, epsilon: float, gamma_intrinsic: float, gamma_hamming: float, learning_rate: float | None = None
) -> ManifoldRegularizationSchedule:
    """No ramps: every value constant (``learning_rate=None`` keeps the optimizer's own).

    Paper: Jin & Rinard 2020 (paper 003), eq. 15 with fixed eps and gammas; the no-ramp
    alternative to the Appendix B schedules.
    """
    return ManifoldRegularizationSchedule(
        epsilon=epsilon,
        gamma_intrinsic=gamma_intrinsic,
        gamma_hamming=gamma_hamming,
        learning_rate=learning_rate,
    )

"""Sound bounds on every ReLU's pre-activation over an l-inf ball intersected with [0, 1].

* :func:`interval_bounds` -- interval bound propagation (IBP; Gowal et al. 2018, arXiv:1810.12715).
* :func:`linear_relaxation_bounds` -- CROWN-style back-substitution of linear ReLU relaxations (Zhang
  et al. 2018, arXiv:1811.00866; upper line ``u (z - l) / (u - l)``, lower line ``z`` if ``u >= -l`` else
  ``0``).
* :func:`lp_bounds` (in :mod:`.lp_tightening`) -- per-neuron LP over the triangle relaxation, as MIPVerify's
  ``tightening_algorithm = lp`` used by Xiao et al. (2019) and paper 003.

Each method starts from the previous one and keeps the tighter of the two bounds, so it is never looser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .network import ReluNetwork

__all__ = [
    "NetworkBounds",
    "input_box",
    "interval_bounds",
    "linear_relaxation_bounds",
    "margin_lower_bounds",
]


@dataclass
class NetworkBounds:
    """Bounds ``lower[k] <= z_k <= upper[k]`` on the pre-activation of hidden layer ``k`` for all inputs in
    the box ``[input_lower, input_upper]``; ``method`` names the algorithm that produced them.

    Paper: Tjeng et al. 2019, eq. 5 (the bounds ``l <= z <= u`` its big-M ReLU encoding needs), as used by Jin
    & Rinard 2020 (paper 003), Table 2; a container.
    """

    input_lower: np.ndarray
    input_upper: np.ndarray
    lower: list[np.ndarray]
    upper: list[np.ndarray]
    method: str
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def active(self, k: int) -> np.ndarray:
        """Mask of the ReLUs of layer ``k`` that are provably active (``lower >= 0``)."""
        return self.lower[k] >= 0

    def inactive(self, k: int) -> np.ndarray:
        """Mask of the ReLUs of layer ``k`` that are provably inactive (``upper <= 0``)."""
        return self.upper[k] <= 0

    def unstable(self, k: int) -> np.ndarray:
        """Mask of the ReLUs of layer ``k`` whose sign is undecided (``lower < 0 < upper``): one binary each
        in the MILP."""
        return (self.lower[k] < 0) & (self.upper[k] > 0)

    def stable_counts(self) -> list[dict[str, int]]:
        """Per ReLU layer: numbers of provably active, provably inactive and unstable ReLUs."""
        return [
            {
                "active": int(self.active(k).sum()),
                "inactive": int(self.inactive(k).sum()),
                "unstable": int(self.unstable(k).sum()),
            }
            for k in range(len(self.lower))
        ]

    @property
    def unstable_count(self) -> int:
        """Total number of unstable ReLUs (the binaries of the MILP)."""
        return int(sum(self.unstable(k).sum() for k in range(len(self.lower))))

    @property
    def relu_count(self) -> int:
        return int(sum(len(lo) for lo in self.lower))

    def copy(self, method: str | None = None) -> NetworkBounds:
        return NetworkBounds(
            self.input_lower.copy(),
            self.input_upper.copy(),
            [lo.copy() for lo in self.lower],
            [up.copy() for up in self.upper],
            method or self.method,
            self.seconds,
            dict(self.extra),
        )


def input_box(
    x: np.ndarray, eps: float, clip_values: tuple[float, float] = (0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """The l-inf ball of radius ``eps`` around one flattened image, intersected with ``clip_values``
    (float64).

    Paper: Jin & Rinard 2020 (paper 003), eq. 8 (the l-inf ball ``||x' - x|| <= eps``) intersected with the
    pixel range; no other equation.
    """
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    return np.maximum(flat - eps, clip_values[0]), np.minimum(flat + eps, clip_values[1])


def interval_bounds(network: ReluNetwork, input_lower: np.ndarray, input_upper: np.ndarray) -> NetworkBounds:
    """Interval bound propagation: ``W c + b +- |W| r`` layer by layer (exact for the first layer).

    Paper: interval bound propagation of Gowal et al. 2018, the first bounds for the MILP of Tjeng et al. 2019
    (eq. 5) used in Jin & Rinard 2020 (paper 003), Table 2.
    """
    lower_in, upper_in = np.asarray(input_lower, np.float64), np.asarray(input_upper, np.float64)
    if lower_in.shape != upper_in.shape or np.any(lower_in > upper_in):
        raise ValueError(
            "input_lower and input_upper must have the same shape and input_lower <= input_upper"
        )
    lowers, uppers = [], []
    lo, hi = lower_in, upper_in
    for layer in network.layers[:-1]:
        center, radius = (hi + lo) / 2.0, (hi - lo) / 2.0
        mid = layer.weight @ center + layer.bias
        spread = abs(layer.weight) @ radius
        z_lo, z_hi = mid - spread, mid + spread
        lowers.append(z_lo)
        uppers.append(z_hi)
        lo, hi = np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)
    return NetworkBounds(lower_in, upper_in, lowers, uppers, "ibp")


def _relaxation(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes of the upper and lower linear ReLU bounds and the upper line's intercept, per neuron."""
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    width = np.where(unstable, upper - lower, 1.0)
    slope_up = np.where(active, 1.0, np.where(unstable, upper / width, 0.0))
    intercept_up = np.where(unstable, -slope_up * lower, 0.0)
    slope_low = np.where(active, 1.0, np.where(unstable, (upper >= -lower).astype(np.float64), 0.0))
    return slope_up, slope_low, intercept_up


def backsubstitute_upper(
    network: ReluNetwork, bounds: NetworkBounds, layer: int, coefficients: np.ndarray, constant: np.ndarray
) -> np.ndarray:
    """Upper bound of ``coefficients @ z_layer + constant`` over the input box, where ``z_layer`` is the
    output of ``network.layers[layer]`` and the ReLUs before it are replaced by their linear relaxations
    (bounds of layers ``< layer`` are used)."""
    lam = np.asarray(coefficients, dtype=np.float64)
    const = np.asarray(constant, dtype=np.float64).copy()
    for j in range(layer, -1, -1):
        affine = network.layers[j]
        const += lam @ affine.bias
        lam = np.asarray((affine.weight.T @ lam.T).T)
        if j == 0:
            break
        slope_up, slope_low, intercept_up = _relaxation(bounds.lower[j - 1], bounds.upper[j - 1])
        positive = np.maximum(lam, 0.0)
        negative = np.minimum(lam, 0.0)
        const += positive @ intercept_up
        lam = positive * slope_up + negative * slope_low
    center = (bounds.input_upper + bounds.input_lower) / 2.0
    radius = (bounds.input_upper - bounds.input_lower) / 2.0
    return const + lam @ center + np.abs(lam) @ radius


def linear_relaxation_bounds(
    network: ReluNetwork,
    input_lower: np.ndarray,
    input_upper: np.ndarray,
    *,
    initial: NetworkBounds | None = None,
    chunk_size: int = 1024,
) -> NetworkBounds:
    """CROWN-style bounds: for every still-unstable ReLU, back-substitute both of its bounds to the input box
    through the linear relaxations of all earlier ReLUs; keep the tighter of these and the ``initial``
    (default IBP) bounds.

    Paper: CROWN of Zhang et al. 2018, tightening the bounds for the big-M MILP of Tjeng et al. 2019 (eq. 5)
    used in Jin & Rinard 2020 (paper 003), Table 2.
    """
    bounds = (initial or interval_bounds(network, input_lower, input_upper)).copy(method="crown")
    for k in range(1, network.num_hidden):
        rows = np.flatnonzero(bounds.unstable(k))
        weight = network.layers[k].weight
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            n = len(chunk)
            picks = np.zeros((2 * n, weight.shape[0]))
            picks[np.arange(n), chunk] = 1.0
            picks[n + np.arange(n), chunk] = -1.0
            # work on layer k's output directly: coefficients over z_k are the unit rows above
            ub = _upper_of_pre_activation(network, bounds, k, picks)
            bounds.upper[k][chunk] = np.minimum(bounds.upper[k][chunk], ub[:n])
            bounds.lower[k][chunk] = np.maximum(bounds.lower[k][chunk], -ub[n:])
        _propagate_monotone(bounds, k)
    return bounds


def _upper_of_pre_activation(
    network: ReluNetwork, bounds: NetworkBounds, k: int, picks: np.ndarray
) -> np.ndarray:
    return backsubstitute_upper(network, bounds, k, picks, np.zeros(len(picks)))


def _propagate_monotone(bounds: NetworkBounds, k: int) -> None:
    """Guard against round-off making ``lower > upper`` on (nearly) fixed neurons."""
    bad = bounds.lower[k] > bounds.upper[k]
    if np.any(bad):
        mid = (bounds.lower[k][bad] + bounds.upper[k][bad]) / 2.0
        bounds.lower[k][bad] = mid
        bounds.upper[k][bad] = mid


def margin_lower_bounds(
    network: ReluNetwork, bounds: NetworkBounds, label: int, *, linear: bool = True
) -> np.ndarray:
    """Lower bounds of the margins ``logit[label] - logit[j]`` for every class ``j`` (``+inf`` at
    ``j = label``).

    Paper: Tjeng et al. 2019 / Zhang et al. 2018 (CROWN) margin bounds that can prove a class before the eq. 5
    MILP; used for Jin & Rinard 2020 (paper 003), Table 2.

    ``linear=True`` back-substitutes through the ReLU relaxations (CROWN); ``False`` uses intervals only."""
    out_layer = network.num_hidden
    classes = network.num_classes
    coefficients = -np.eye(classes)[label][None, :] + np.eye(classes)  # rows: -(e_label - e_j)
    coefficients = np.delete(coefficients, label, axis=0)
    if linear:
        upper = backsubstitute_upper(network, bounds, out_layer, coefficients, np.zeros(classes - 1))
    else:
        if out_layer == 0:
            lo, hi = bounds.input_lower, bounds.input_upper
        else:
            lo, hi = np.maximum(bounds.lower[-1], 0.0), np.maximum(bounds.upper[-1], 0.0)
        row = np.asarray((network.layers[-1].weight.T @ coefficients.T).T)
        center, radius = (hi + lo) / 2.0, (hi - lo) / 2.0
        upper = (
            np.asarray(row @ center + np.abs(row) @ radius).reshape(-1)
            + coefficients @ network.layers[-1].bias
        )
    result = np.full(classes, np.inf)
    result[np.arange(classes) != label] = -upper
    return result

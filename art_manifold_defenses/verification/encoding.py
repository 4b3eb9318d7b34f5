"""Mixed-integer encoding of a ReLU network over an input box (Tjeng, Xiao & Tedrake 2019, arXiv:1711.07356,
eq. 5).

For a ReLU ``a = max(z, 0)`` with pre-activation bounds ``l <= z <= u``:

* provably inactive (``u <= 0``): ``a = 0`` -- the neuron is dropped;
* provably active (``l >= 0``): ``a = z`` -- one equality;
* unstable (``l < 0 < u``): a binary ``d`` and the big-M constraints
  ``a >= 0``, ``a >= z``, ``a <= u d``, ``a <= z - l (1 - d)``.

Relaxing ``d`` to ``[0, 1]`` gives the triangle relaxation (the LP used for bound tightening). Only the
neurons that feed the requested targets are encoded (their "cone of influence"), which keeps per-neuron LPs of
conv layers small. Variables are post-activations (and the input pixels); pre-activations are substituted,
never materialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint

from .bounds import NetworkBounds
from .network import ReluNetwork

__all__ = ["Encoding", "encode"]


@dataclass
class Encoding:
    """Variables, bounds and constraints of the (relaxed or mixed-integer) program.

    ``input_features``/``input_vars``: which input pixels are variables and their indices; ``last_features``/
    ``last_vars``: the features of the layer feeding ``network.layers[target_layer]`` (input pixels if it is
    0) and their variable indices. ``binaries``: number of integer variables."""

    lower: np.ndarray
    upper: np.ndarray
    integrality: np.ndarray
    matrix: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    input_features: np.ndarray
    input_vars: np.ndarray
    last_features: np.ndarray
    last_vars: np.ndarray
    binaries: int

    @property
    def num_vars(self) -> int:
        return len(self.lower)

    def objective(self, network: ReluNetwork, target_layer: int, row: np.ndarray) -> tuple[np.ndarray, float]:
        """Objective vector and constant for ``row @ z_target_layer`` (``row`` dense over the layer's
        outputs)."""
        affine = network.layers[target_layer]
        coefficients = np.asarray(affine.weight.T @ row).reshape(-1)
        c = np.zeros(self.num_vars)
        c[self.last_vars] = coefficients[self.last_features]
        return c, float(row @ affine.bias)

    def scipy_bounds(self) -> Bounds:
        return Bounds(self.lower, self.upper)

    def constraints(self, extra: list[LinearConstraint] | None = None) -> list[LinearConstraint]:
        out = [LinearConstraint(self.matrix, self.row_lower, self.row_upper)] if self.matrix.shape[0] else []
        return out + list(extra or [])


@dataclass
class _RowBuilder:
    """Rows ``a_i [- (W a_prev)_i] [+ d_coef_i d_i]`` for a selection of one layer's neurons, as a COO
    block."""

    minus_w: sp.coo_matrix  # -W restricted to the layer's needed rows, columns = global variable indices
    a_vars: np.ndarray
    d_vars: np.ndarray
    n_cols: int

    def build(
        self, selection: np.ndarray, *, include_w: bool, d_coef: np.ndarray | None = None
    ) -> sp.coo_matrix:
        idx = np.flatnonzero(selection)
        local = np.full(len(selection), -1)
        local[idx] = np.arange(len(idx))
        parts_r: list[np.ndarray] = [np.arange(len(idx))]
        parts_c: list[np.ndarray] = [self.a_vars[idx]]
        parts_v: list[np.ndarray] = [np.ones(len(idx))]
        if include_w:
            keep = selection[self.minus_w.row]
            parts_r.append(local[self.minus_w.row[keep]])
            parts_c.append(self.minus_w.col[keep])
            parts_v.append(self.minus_w.data[keep])
        if d_coef is not None:
            parts_r.append(np.arange(len(idx)))
            parts_c.append(self.d_vars[idx])
            parts_v.append(d_coef[idx])
        data = (np.concatenate(parts_v), (np.concatenate(parts_r), np.concatenate(parts_c)))
        return sp.coo_matrix(data, shape=(len(idx), self.n_cols))


def _needed_features(
    network: ReluNetwork, bounds: NetworkBounds, target_layer: int, targets: np.ndarray
) -> list[np.ndarray]:
    """For every layer feeding ``target_layer`` (index -1 = input), the sorted features its targets depend on;
    provably inactive ReLUs are excluded (their output is 0)."""
    needed: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * (target_layer + 1)
    rows = np.asarray(targets, dtype=np.int64)
    for j in range(target_layer, -1, -1):
        cols = np.unique(network.layers[j].weight[rows].indices)
        if j > 0:
            cols = cols[~bounds.inactive(j - 1)[cols]]
        needed[j] = cols  # features of the layer feeding layer j (hidden layer j-1, or the input when j = 0)
        rows = cols
    return needed


@dataclass
class _Program:
    """The variables and constraint rows of an :class:`Encoding` as they are added, layer by layer."""

    lower: list[np.ndarray]
    upper: list[np.ndarray]
    integrality: list[np.ndarray]
    num_vars: int
    rows_i: list[np.ndarray] = field(default_factory=list)
    rows_j: list[np.ndarray] = field(default_factory=list)
    rows_v: list[np.ndarray] = field(default_factory=list)
    row_lo: list[np.ndarray] = field(default_factory=list)
    row_hi: list[np.ndarray] = field(default_factory=list)
    n_rows: int = 0
    binaries: int = 0

    def add_vars(self, lower: np.ndarray, upper: np.ndarray, integrality: np.ndarray) -> np.ndarray:
        """New variables with these bounds; returns their indices."""
        self.lower.append(lower)
        self.upper.append(upper)
        self.integrality.append(integrality)
        indices = self.num_vars + np.arange(len(lower))
        self.num_vars += len(lower)
        return indices

    def add_rows(self, block: sp.coo_matrix, lo: np.ndarray, hi: np.ndarray) -> None:
        """Constraint rows ``lo <= block @ vars <= hi``."""
        self.rows_i.append(block.row + self.n_rows)
        self.rows_j.append(block.col)
        self.rows_v.append(block.data)
        self.row_lo.append(lo)
        self.row_hi.append(hi)
        self.n_rows += block.shape[0]

    def matrix(self) -> sp.csr_matrix:
        if not self.rows_i:
            return sp.csr_matrix((0, self.num_vars))
        data = (np.concatenate(self.rows_v), (np.concatenate(self.rows_i), np.concatenate(self.rows_j)))
        return sp.csr_matrix(data, shape=(self.n_rows, self.num_vars))


def _encode_layer(
    program: _Program,
    network: ReluNetwork,
    bounds: NetworkBounds,
    j: int,
    features: np.ndarray,
    prev_features: np.ndarray,
    prev_vars: np.ndarray,
    *,
    integer: bool,
) -> np.ndarray:
    """Add the needed neurons ``features`` of hidden layer ``j`` (never provably inactive) to ``program``:
    their post-activations ``a``, a binary ``d`` per unstable one, and the rows of the module docstring;
    returns the variables ``a``."""
    l_all, u_all = bounds.lower[j][features], bounds.upper[j][features]
    active = l_all >= 0
    unstable = ~active
    m = len(features)
    n_unstable = int(unstable.sum())
    a_vars = program.add_vars(np.maximum(l_all, 0.0), np.maximum(u_all, 0.0), np.zeros(m))
    d_vars = np.full(m, -1)
    d_vars[unstable] = program.add_vars(
        np.zeros(n_unstable), np.ones(n_unstable), np.full(n_unstable, 1.0 if integer else 0.0)
    )
    program.binaries += n_unstable
    # -W a_prev restricted to the needed rows/columns, as (local row, global var) triplets
    sub = network.layers[j].weight[features][:, prev_features].tocoo()
    bias = network.layers[j].bias[features]
    minus_w = sp.coo_matrix((-sub.data, (sub.row, prev_vars[sub.col])), shape=(m, program.num_vars))

    rows = _RowBuilder(minus_w, a_vars, d_vars, program.num_vars)
    # active: a - W a_prev = b
    program.add_rows(rows.build(active, include_w=True), bias[active], bias[active])
    # unstable: a - W a_prev >= b
    program.add_rows(rows.build(unstable, include_w=True), bias[unstable], np.full(n_unstable, np.inf))
    # unstable: a - u d <= 0
    program.add_rows(
        rows.build(unstable, include_w=False, d_coef=-u_all),
        np.full(n_unstable, -np.inf),
        np.zeros(n_unstable),
    )
    # unstable: a - W a_prev - l d <= b - l
    program.add_rows(
        rows.build(unstable, include_w=True, d_coef=-l_all),
        np.full(n_unstable, -np.inf),
        bias[unstable] - l_all[unstable],
    )
    return a_vars


def encode(
    network: ReluNetwork,
    bounds: NetworkBounds,
    target_layer: int,
    targets: np.ndarray | None = None,
    *,
    integer: bool = True,
) -> Encoding:
    """Encode the network up to (not including) ``network.layers[target_layer]``, restricted to what
    ``targets`` (output indices of that layer; default all) depend on. ``integer=False`` relaxes the binaries
    (LP)."""
    if targets is None:
        targets = np.arange(network.layers[target_layer].out_features)
    needed = _needed_features(network, bounds, target_layer, targets)
    input_features = needed[0]
    n_in = len(input_features)
    program = _Program(
        lower=[bounds.input_lower[input_features]],
        upper=[bounds.input_upper[input_features]],
        integrality=[np.zeros(n_in)],
        num_vars=n_in,
    )
    prev_features, prev_vars = input_features, np.arange(n_in)
    for j in range(target_layer):
        features = needed[j + 1]  # neurons of hidden layer j that are needed (never provably inactive)
        prev_vars = _encode_layer(
            program, network, bounds, j, features, prev_features, prev_vars, integer=integer
        )
        prev_features = features
    return Encoding(
        lower=np.concatenate(program.lower),
        upper=np.concatenate(program.upper),
        integrality=np.concatenate(program.integrality),
        matrix=program.matrix(),
        row_lower=np.concatenate(program.row_lo) if program.row_lo else np.empty(0),
        row_upper=np.concatenate(program.row_hi) if program.row_hi else np.empty(0),
        input_features=input_features,
        input_vars=np.arange(n_in),
        last_features=prev_features,
        last_vars=prev_vars,
        binaries=program.binaries,
    )

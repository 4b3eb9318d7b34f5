"""Option names of the verifier, without importing torch or scipy: ``amd verify`` offers them as choices when
the ``amd`` command builds its parser."""

from __future__ import annotations

__all__ = ["BOUND_METHODS"]

#: Bound tightening before the MILP: interval bound propagation, CROWN-style linear relaxation, per-neuron
#: LPs.
BOUND_METHODS = ("ibp", "crown", "lp")

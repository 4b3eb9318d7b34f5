"""What :func:`~.runner.evaluate` will run, settled before any work: its arguments validated and resolved into
a :class:`_Run` (model and surrogates on the device, checked data, suite, EoT/vote/repeat settings with their
defaults, this process's share of the batches, the run's fingerprint, the ``out_dir`` check), and the
:class:`_Plan` of each attack (AutoAttack ``standard`` made ``rand`` for a stochastic model, the model wrapped
in :class:`~.eot.BPDA` and :class:`~.eot.EoT` for gradient-based attacks; Athalye et al. 2018,
https://arxiv.org/abs/1802.00420).

The defaults are re-exported by :mod:`.runner`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..fingerprint import make_fingerprint
from ..utils import check_images, check_labels, forward_checked, resolve_device
from ._run_identity import _fingerprint_arrays, _fingerprint_model
from ._run_model import _as_module, _attribute
from ._run_threat import BOX_TOLERANCE, NORM_TOLERANCE
from .attacks import ATTACKS, AttackSpec
from .eot import BPDA, EoT
from .storage import _check_out_dir, _clear_out_dir

#: EoT passes per gradient evaluation for a stochastic model (Athalye et al. 2018 use tens of samples).
DEFAULT_EOT_SAMPLES = 16
#: Stochastic passes whose majority vote scores one input of a stochastic model.
DEFAULT_VOTES = 9
#: Independent attack runs on a stochastic model; a point is robust only if it survives all of them.
DEFAULT_REPEATS = 3

AttackFunction = Callable[..., np.ndarray]


# ------------------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------------------
def _check_count(name: str, value: Any, minimum: int = 1, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}"
        )
    return int(value)


def _resolve_suite(suite: Any, norm: str | None, eps: float | None) -> list[Any]:
    if isinstance(suite, str):
        from .suites import get_suite

        specs: list[Any] = list(get_suite(suite, norm=norm, eps=eps))
    elif isinstance(suite, AttackSpec):
        specs = [suite]
    elif isinstance(suite, Sequence) and not isinstance(suite, (bytes, bytearray)):
        specs = [
            s if isinstance(s, AttackSpec) else AttackSpec.from_dict(s) if isinstance(s, Mapping) else s
            for s in suite
        ]
        for s in specs:
            if not isinstance(s, AttackSpec):
                raise TypeError(f"suite entries must be AttackSpec or dicts, got {type(s).__name__}")
    else:
        raise TypeError(
            f"suite must be a suite name, an AttackSpec or a list of them, got {type(suite).__name__}"
        )
    if not specs:
        raise ValueError("suite is empty: give at least one AttackSpec")
    labels = [s.label for s in specs]
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise ValueError(f"suite has duplicate attack labels {duplicates}; give them distinct `name`s")
    return specs


def _bpda_surrogate(module: nn.Module, device: torch.device) -> nn.Module | None:
    """The model's ``bpda_surrogate`` (read through thin wrappers), checked and moved to ``device``."""
    bpda_surrogate = _attribute(module, "bpda_surrogate", None)
    if bpda_surrogate is not None and not isinstance(bpda_surrogate, nn.Module):
        raise TypeError(
            f"model.bpda_surrogate must be an nn.Module or None, got {type(bpda_surrogate).__name__}"
        )
    return None if bpda_surrogate is None else bpda_surrogate.to(device).eval()


# ------------------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------------------
@dataclass
class _Run:
    """Everything :func:`~.runner.evaluate` resolved from its arguments before the clean pass."""

    module: nn.Module
    surrogate: nn.Module | None  # source model of transfer attacks
    bpda_surrogate: nn.Module | None
    x: np.ndarray
    y: np.ndarray
    specs: list[AttackSpec]
    attack_fn: AttackFunction
    device: torch.device
    seed: int
    batch_size: int
    num_classes: int
    stochastic: bool
    eot_k: int
    votes: int
    repeats: int
    rank: int
    size: int
    out_path: Path | None
    verbose: bool
    raise_errors: bool
    context: dict[str, Any] = dataclasses.field(default_factory=dict)  # what resume files must match
    fingerprint: dict[str, Any] = dataclasses.field(default_factory=dict)  # the context and the suite

    @property
    def my_batches(self) -> list[int]:
        """The batches of this process: dealt round-robin over the ranks."""
        return [b for b in range(math.ceil(len(self.x) / self.batch_size)) if b % self.size == self.rank]

    def settings(self) -> dict[str, Any]:
        """The ``settings`` of the record."""
        return {
            "device": str(self.device),
            "batch_size": self.batch_size,
            "eot_samples": self.eot_k if self.stochastic else None,
            "votes": self.votes,
            "repeats": self.repeats,
            "stochastic": self.stochastic,
            "bpda": self.bpda_surrogate is not None,
            "norm_tolerance": NORM_TOLERANCE,
            "box_tolerance": BOX_TOLERANCE,
            "fingerprint": self.fingerprint,
        }

    def fill_context(self) -> None:
        """Fingerprint the run: hashes of the model, the data and the transfer source, and the settings."""
        self.context = {
            "model": _fingerprint_model(self.module),
            "data": _fingerprint_arrays(self.x, self.y),
            "seed": self.seed,
            "eot_samples": self.eot_k,
            "votes": self.votes,
            "repeats": self.repeats,
            "stochastic": self.stochastic,
            "bpda": self.bpda_surrogate is not None,
            "transfer_source": None if self.surrogate is None else _fingerprint_model(self.surrogate),
            "batch_size": self.batch_size,
        }
        self.fingerprint = make_fingerprint(
            "evaluate", **self.context, suite=[spec.to_dict() for spec in self.specs]
        )

    def open_out_dir(self, overwrite: bool) -> None:
        """Before any work: clear ``out_dir`` (``overwrite``) or refuse a folder of another run at once."""
        if self.out_path is None:
            return
        from .. import distributed

        if overwrite and self.rank == 0:
            _clear_out_dir(self.out_path)
        distributed.barrier()
        _check_out_dir(self.out_path, self.context, self.fingerprint)


def _prepare(
    model: Any,
    x: Any,
    y: Any,
    suite: Any,
    *,
    device: str | torch.device,
    seed: int,
    batch_size: int,
    out_dir: str | os.PathLike[str] | None,
    surrogate_model: Any,
    eot_samples: int | None,
    votes: int | None,
    repeats: int | None,
    norm: str | None,
    eps: float | None,
    attack_fn: AttackFunction,
    overwrite: bool,
    verbose: bool,
    raise_errors: bool,
) -> _Run:
    """Validate the arguments of :func:`~.runner.evaluate` (errors name the argument), resolve the defaults,
    fingerprint the run and check ``out_dir``."""
    dev = resolve_device(device)
    module = _as_module(model, "model").to(dev).eval()
    surrogate = (
        None if surrogate_model is None else _as_module(surrogate_model, "surrogate_model").to(dev).eval()
    )
    x_arr = check_images(x, "x")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    batch = int(_check_count("batch_size", batch_size, allow_none=False) or 1)
    eot_samples = _check_count("eot_samples", eot_samples)
    votes = _check_count("votes", votes)
    repeats = _check_count("repeats", repeats)
    specs = _resolve_suite(suite, norm, eps)
    stochastic = bool(_attribute(module, "stochastic", False))
    bpda_surrogate = _bpda_surrogate(module, dev)
    with torch.no_grad():
        num_classes = int(forward_checked(module, x_arr[:1], "x", device=dev).shape[1])
    y_arr = check_labels(y, len(x_arr), num_classes, "y")
    from .. import distributed

    rank, size = (distributed.rank(), distributed.world_size()) if distributed.is_distributed() else (0, 1)
    run = _Run(
        module=module,
        surrogate=surrogate,
        bpda_surrogate=bpda_surrogate,
        x=x_arr,
        y=y_arr,
        specs=specs,
        attack_fn=attack_fn,
        device=dev,
        seed=int(seed),
        batch_size=batch,
        num_classes=num_classes,
        stochastic=stochastic,
        eot_k=DEFAULT_EOT_SAMPLES if eot_samples is None else eot_samples,
        votes=(DEFAULT_VOTES if stochastic else 1) if votes is None else votes,
        repeats=(DEFAULT_REPEATS if stochastic else 1) if repeats is None else repeats,
        rank=rank,
        size=size,
        out_path=None if out_dir is None else Path(out_dir),
        verbose=verbose,
        raise_errors=raise_errors,
    )
    run.fill_context()
    run.open_out_dir(overwrite)
    return run


# ------------------------------------------------------------------------------------------------------------
# the plan of one attack
# ------------------------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    spec: Any
    attacked_model: nn.Module
    eot_samples: int | None
    bpda: bool
    note: str | None


def _plan(
    spec: Any, model: nn.Module, *, stochastic: bool, surrogate: nn.Module | None, eot_samples: int
) -> _Plan:
    note = None
    if stochastic and spec.library == "autoattack" and spec.attack == "standard":
        accepted = ATTACKS[("autoattack", "rand")].defaults_for(spec.norm)
        dropped = sorted(k for k in spec.params if k not in accepted)
        params = {k: v for k, v in spec.params.items() if k in accepted}
        if "eot_iter" in accepted and "eot_iter" not in params and eot_samples > 1:
            params["eot_iter"] = eot_samples  # the same EoT budget as every other gradient attack of the run
        spec = dataclasses.replace(spec, attack="rand", params=params)
        note = (
            "AutoAttack 'standard' replaced by 'rand' (EoT version, eot_iter "
            f"{params.get('eot_iter', 'default')}) "
            "for a stochastic model"
        )
        if dropped:
            note += f"; parameters without a 'rand' counterpart dropped: {dropped}"
    own_eot = spec.library == "autoattack" and spec.attack == "rand"
    gradient_based = not spec.gradient_free and spec.library != "transfer"
    attacked: nn.Module = model
    bpda = surrogate is not None and gradient_based
    if bpda:
        attacked = BPDA(attacked, surrogate)
    use_eot = stochastic and gradient_based and not own_eot and eot_samples > 1
    if use_eot:
        attacked = EoT(attacked, samples=eot_samples)
    return _Plan(spec, attacked.eval(), eot_samples if use_eot else None, bpda, note)

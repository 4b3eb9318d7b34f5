"""Attack specifications, the registry of supported attacks and :func:`run_attack`, the one entry point that
runs any attack of ART, Foolbox 3, CleverHans 4, AutoAttack (torchattacks) or a transfer attack on a PyTorch
model.

An attack is described by an :class:`AttackSpec` (library, attack, norm, epsilon, library parameters); the
registry :data:`ATTACKS` lists every supported ``(library, attack)`` pair with its norms, its kind
(gradient-based, score-based, decision-based, noise, transfer, ensemble), the loss it optimises
(:data:`LOSSES`; ``AttackSpec.margin_loss`` and ``AttackSpec.cross_entropy`` say whether it counts as a
margin-loss or a cross-entropy attack for the suites and the audit) and its default parameters.
:func:`run_attack` validates the spec, runs the library adapter (``adapters_<library>.py``) batch by batch and
returns float32 adversarial examples in ``[0, 1]`` that respect the threat model:

* fixed-epsilon attacks (PGD, FGSM, APGD, Square, ...) are trusted to stay in the ball; a violation within
  numerical round-off (``<= 1e-3`` relative) is projected back, a larger one is returned untouched so the
  runner flags it;
* minimisation attacks (C&W, EAD, DeepFool, Boundary, HopSkipJump, salt-and-pepper) run unbounded; with a
  finite ``eps`` every point whose perturbation exceeds ``eps`` is replaced by its clean input
  (``out_of_budget="clean"``, the default: the point then counts as not broken) or projected onto the ball
  (``out_of_budget="project"``). With ``eps=None`` the raw minimal adversarial is returned (for median-norm
  statistics).

Default parameters are strong but affordable on a CPU; every one of them can be overridden through
``spec.params`` (the names are the library's own keyword arguments, listed in :data:`ATTACKS`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..utils import check_images, check_labels, resolve_device
from .attack_registry import (
    _ROUND_OFF,
    ATTACKS,
    KINDS,
    LIBRARIES,
    LOSSES,
    NORMS,
    AttackInfo,
    _valid_pairs,
    normalise_norm,
)

__all__ = [
    "ATTACKS",
    "AttackInfo",
    "AttackSpec",
    "BatchAttack",
    "KINDS",
    "LIBRARIES",
    "LOSSES",
    "NORMS",
    "enforce_budget",
    "perturbation_norms",
    "run_attack",
]

BatchAttack = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""What an adapter's ``build_attack`` returns: ``(x_batch float32, y_batch int64) -> adversarial batch``."""


# ------------------------------------------------------------------------------------------------------------
# spec
# ------------------------------------------------------------------------------------------------------------
def _json_safe(value: Any, where: str) -> Any:
    """A JSON-safe copy of ``value`` (tuples -> lists, numpy scalars -> Python); other objects raise
    ``TypeError``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} must hold JSON-safe values (numbers, strings, lists, dicts), got {type(value).__name__}"
    )


class FrozenParams(dict):  # type: ignore[type-arg]
    """A read-only ``dict`` (JSON-serialisable, picklable, deep-copyable) holding an :class:`AttackSpec`'s
    params."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("AttackSpec.params is read-only; build a new spec (dataclasses.replace) instead")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenParams, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True))


@dataclass(frozen=True)
class AttackSpec:
    """One attack: library, attack name, threat model (norm, eps) and library parameters.

    :param library: one of :data:`LIBRARIES`.
    :param attack: an attack of that library (see :data:`ATTACKS`).
    :param norm: ``"linf"``, ``"l2"`` or ``"l1"`` (``np.inf``/``2``/``1`` are accepted and normalised).
    :param eps: the budget; ``None`` only for minimisation attacks (unbounded, raw minimal adversarials).
    :param params: library keyword arguments overriding :data:`ATTACKS` defaults (JSON-safe values).
    :param name: display name; :attr:`label` falls back to a readable unique label.

    Invalid fields raise ``ValueError`` at construction, listing the valid values.
    """

    library: str
    attack: str
    norm: str = "linf"
    eps: float | None = 0.3
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.library, str) or not isinstance(self.attack, str):
            raise TypeError("library and attack must be strings")
        object.__setattr__(self, "library", self.library.strip().lower())
        object.__setattr__(self, "attack", self.attack.strip().lower())
        object.__setattr__(self, "norm", normalise_norm(self.norm))
        if self.eps is not None:
            if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float, np.integer, np.floating)):
                raise TypeError(f"eps must be a number or None, got {type(self.eps).__name__}")
            if not math.isfinite(float(self.eps)) or float(self.eps) <= 0:
                raise ValueError(
                    f"eps must be a finite number > 0 (or None for minimisation attacks), got {self.eps!r}"
                )
            object.__setattr__(self, "eps", float(self.eps))
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params must be a mapping, got {type(self.params).__name__}")
        object.__setattr__(self, "params", FrozenParams(_json_safe(dict(self.params), "params")))
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"name must be a string or None, got {type(self.name).__name__}")
        self.validate()

    # -- registry
    # ----------------------------------------------------------------------------------------------------
    @property
    def info(self) -> AttackInfo:
        """The registry entry of this attack."""
        return ATTACKS[(self.library, self.attack)]

    def validate(self) -> AttackInfo:
        """Check library, attack, norm, eps and parameter names against :data:`ATTACKS`; return the registry
        entry."""
        if self.library not in LIBRARIES:
            raise ValueError(f"library must be one of {list(LIBRARIES)}, got {self.library!r}")
        if self.library == "transfer":
            info = ATTACKS[("transfer", "transfer")]
            if self.attack != "transfer":
                raise ValueError(
                    "a transfer spec has attack='transfer' (the base attack goes in params['base']), got "
                    f"{self.attack!r}"
                )
            unknown = sorted(set(self.params) - {"base"})
            if unknown:
                raise ValueError(f"unknown params {unknown} for transfer; valid params: ['base']")
            self.base_spec()
            return info
        if (self.library, self.attack) not in ATTACKS:
            raise ValueError(
                f"unknown attack {self.attack!r} for library {self.library!r}; valid: "
                f"{_valid_pairs(self.library)}"
            )
        info = ATTACKS[(self.library, self.attack)]
        if self.norm not in info.norms:
            raise ValueError(
                f"{self.library}/{self.attack} supports norms {list(info.norms)}, got {self.norm!r}"
            )
        if self.eps is None and not info.minimisation:
            raise ValueError(
                f"eps=None (unbounded) is only valid for minimisation attacks; {self.library}/{self.attack} "
                "needs a budget"
            )
        info.resolve_params(self.norm, self.params)
        return info

    def base_spec(self) -> AttackSpec:
        """For a transfer spec: the attack run on the surrogate (same norm and eps); other specs return
        ``self``."""
        if self.library != "transfer":
            return self
        base = self.params.get("base") or {"library": "art", "attack": "pgd"}
        if not isinstance(base, Mapping) or "library" not in base or "attack" not in base:
            raise ValueError(
                "params['base'] must be a dict with 'library' and 'attack' (and optionally 'params')"
            )
        unknown = sorted(set(base) - {"library", "attack", "params", "norm", "eps"})
        if unknown:
            raise ValueError(
                f"unknown keys {unknown} in params['base']; valid: ['attack', 'eps', 'library', 'norm', "
                "'params']"
            )
        if str(base["library"]).lower() == "transfer":
            raise ValueError("params['base'] cannot itself be a transfer attack")
        for key in ("norm", "eps"):
            if (
                key in base
                and base[key] != getattr(self, key)
                and not (key == "norm" and normalise_norm(base[key]) == self.norm)
            ):
                raise ValueError(
                    f"params['base'][{key!r}]={base[key]!r} differs from the transfer spec's "
                    f"{key}={getattr(self, key)!r}"
                )
        return AttackSpec(
            str(base["library"]), str(base["attack"]), self.norm, self.eps, dict(base.get("params") or {})
        )

    # -- audit properties
    # --------------------------------------------------------------------------------------------
    @property
    def gradient_free(self) -> bool:
        """The attack never uses the attacked model's gradient (score/decision-based, noise, transfer)."""
        return self.info.gradient_free

    @property
    def black_box(self) -> bool:
        """The attack only queries the attacked model (or a surrogate, for transfer)."""
        return self.info.black_box

    @property
    def minimisation(self) -> bool:
        """The attack minimises the perturbation (C&W, EAD, DeepFool, Boundary, HopSkipJump,
        salt-and-pepper)."""
        if self.library == "transfer":
            return self.base_spec().minimisation
        return self.info.minimisation

    @property
    def one_step(self) -> bool:
        """A single gradient step (FGSM/FGM)."""
        return self.info.one_step

    @property
    def margin_loss(self) -> bool:
        """A white-box attack with a margin or DLR loss, AutoAttack included (:attr:`AttackInfo.margin_loss`).

        A transfer attack is never one, whatever its base attack: its loss is computed on the surrogate, not
        on the attacked model.
        """
        return self.library != "transfer" and self.info.margin_loss

    @property
    def cross_entropy(self) -> bool:
        """An iterative fixed-budget white-box cross-entropy attack, AutoAttack included
        (:attr:`AttackInfo.cross_entropy`); never a transfer attack."""
        return self.library != "transfer" and self.info.cross_entropy

    # -- naming and serialisation
    # ------------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """``name`` when given, else e.g. ``"art/pgd linf eps=0.3 {max_iter=100}"`` (unique per spec)."""
        if self.name:
            return self.name
        eps = "unbounded" if self.eps is None else f"eps={self.eps:g}"
        text = f"{self.library}/{self.attack} {self.norm} {eps}"
        if self.params:
            text += " " + json.dumps(dict(self.params), sort_keys=True, separators=(",", "=")).replace(
                '"', ""
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``from_dict`` inverts it)."""
        return {
            "library": self.library,
            "attack": self.attack,
            "norm": self.norm,
            "eps": self.eps,
            "params": _json_safe(dict(self.params), "params"),
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackSpec:
        """Build a spec from :meth:`to_dict` output (unknown keys raise ``ValueError``)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"library", "attack", "norm", "eps", "params", "name"})
        if unknown:
            raise ValueError(f"unknown AttackSpec fields {unknown}")
        return cls(
            library=data["library"],
            attack=data["attack"],
            norm=data.get("norm", "linf"),
            eps=data.get("eps", 0.3),
            params=dict(data.get("params") or {}),
            name=data.get("name"),
        )

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


# ------------------------------------------------------------------------------------------------------------
# threat-model helpers
# ------------------------------------------------------------------------------------------------------------
def perturbation_norms(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-example ``norm`` of ``x_adv - x`` (float64, shape ``(N,)``)."""
    delta = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    norm = normalise_norm(norm)
    if norm == "linf":
        return np.abs(delta).max(axis=1) if delta.shape[1] else np.zeros(len(x))
    if norm == "l2":
        return np.sqrt((delta**2).sum(axis=1))
    return np.abs(delta).sum(axis=1)


def _project(x_adv: np.ndarray, x: np.ndarray, norm: str, eps: float, rows: np.ndarray) -> np.ndarray:
    """Move ``rows`` of ``x_adv`` into the ``eps``-ball around ``x`` (linf: clipping; l2/l1: radial
    scaling)."""
    out = x_adv.copy()
    if not rows.any():
        return out
    delta = out[rows].astype(np.float64) - x[rows]
    if norm == "linf":
        delta = np.clip(delta, -eps, eps)
    else:
        norms = perturbation_norms(out[rows], x[rows], norm)
        scale = np.minimum(1.0, eps * (1 - 1e-6) / np.maximum(norms, 1e-12))
        delta = delta * scale.reshape(-1, *([1] * (delta.ndim - 1)))
    out[rows] = np.clip(x[rows] + delta, 0.0, 1.0).astype(np.float32)
    return out


def enforce_budget(
    x_adv: np.ndarray,
    x: np.ndarray,
    *,
    norm: str,
    eps: float | None,
    minimisation: bool,
    out_of_budget: str = "clean",
) -> np.ndarray:
    """Make ``x_adv`` a valid float32 batch in ``[0, 1]`` and apply the budget policy described in the module
    doc.

    Rows containing NaN/Inf are replaced by the clean input (with a ``RuntimeWarning``). For a fixed-epsilon
    attack, overshoots up to ``1e-3`` relative (round-off) are projected; larger ones are kept, for the runner
    to flag.
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.asarray(x_adv, dtype=np.float32).reshape(x.shape).copy()
    bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if bad.any():
        warnings.warn(
            f"{int(bad.sum())} adversarial examples contained NaN/Inf; their clean inputs are returned",
            RuntimeWarning,
            stacklevel=2,
        )
        out[bad] = x[bad]
    out = np.clip(out, 0.0, 1.0)
    if eps is None:
        return out
    norms = perturbation_norms(out, x, norm)
    over = norms > eps
    if not over.any():
        return out
    if minimisation:
        if out_of_budget == "clean":
            out[over] = x[over]
            return out
        return _project(out, x, norm, eps, over)
    return _project(out, x, norm, eps, over & (norms <= eps * (1 + _ROUND_OFF) + 1e-7))


# ------------------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python, numpy and torch (CPU and CUDA) for the block, restoring the previous global RNG states
    after."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextlib.contextmanager
def attack_mode(*models: nn.Module | None, device: torch.device) -> Iterator[None]:
    """Move ``models`` to ``device``, put them in eval mode and freeze their parameters (attacks only need
    input gradients); the training flags and ``requires_grad`` flags are restored on exit."""
    modes: list[tuple[nn.Module, bool]] = []
    grads: list[tuple[nn.Parameter, bool]] = []
    for model in models:
        if model is None:
            continue
        model.to(device)
        modes.extend((m, m.training) for m in model.modules())
        grads.extend((p, p.requires_grad) for p in model.parameters())
    try:
        for model in models:
            if model is not None:
                model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield
    finally:
        for m, flag in modes:
            m.train(flag)
        for p, flag in grads:
            p.requires_grad_(flag)


def _num_classes(model: nn.Module, x: np.ndarray, device: torch.device) -> int:
    with torch.no_grad():
        out = model(torch.from_numpy(x[:1]).to(device))
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return logits of shape (N, num_classes >= 2), got {shape}")
    return int(out.shape[1])


def _load_adapter(library: str) -> Callable[..., BatchAttack]:
    module = importlib.import_module(f"{__package__}.adapters_{library}")
    builder: Callable[..., BatchAttack] = module.build_attack
    return builder


def run_attack(
    spec: AttackSpec,
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    batch_size: int = 128,
    surrogate_model: nn.Module | None = None,
    verbose: bool = False,
) -> np.ndarray:
    """Run ``spec`` on ``model`` and return adversarial examples (float32, shape of ``x``, inside ``[0, 1]``).

    :param spec: the attack (validated first: unknown library/attack/norm/params raise ``ValueError``).
    :param model: a ``nn.Module`` returning logits (already wrapped with
    :class:`~.eot.EoT`/:class:`~.eot.BPDA` by the
        caller when needed). It is moved to ``device``, attacked in eval mode with frozen parameters, and its
        training/``requires_grad`` flags are restored afterwards.
    :param x: images ``(N, C, H, W)`` in ``[0, 1]``; :param y: int labels ``(N,)`` (or one-hot).
    :param device: torch device for the attack (``"cpu"``, ``"cuda"``, ...).
    :param seed: seeds Python, numpy and torch (global states are restored afterwards) and the libraries' own
    seeds.
    :param batch_size: images per attack call (one progress-bar step each).
    :param surrogate_model: the model the adversarials are crafted on for ``library="transfer"``.
    :param verbose: show a tqdm bar over batches.
    """
    if not isinstance(spec, AttackSpec):
        raise TypeError(f"spec must be an AttackSpec, got {type(spec).__name__}")
    info = spec.validate()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    x = check_images(x, "x")
    dev = resolve_device(device)

    if spec.library == "transfer":
        if surrogate_model is None:
            raise ValueError(
                "a transfer attack needs surrogate_model (the model the adversarials are crafted on)"
            )
        if not isinstance(surrogate_model, nn.Module):
            raise TypeError(
                f"surrogate_model must be a torch.nn.Module, got {type(surrogate_model).__name__}"
            )
        return run_attack(
            spec.base_spec(),
            surrogate_model,
            x,
            y,
            device=dev,
            seed=seed,
            batch_size=batch_size,
            verbose=verbose,
        )

    params = info.resolve_params(spec.norm, spec.params)
    out_of_budget = params.pop("out_of_budget", "clean")
    x_adv = np.empty_like(x)
    with attack_mode(model, device=dev), seeded(int(seed)):
        nb_classes = _num_classes(model, x, dev)
        labels = check_labels(y, len(x), nb_classes, "y")
        build = _load_adapter(spec.library)
        attack = build(
            spec.attack,
            model,
            norm=spec.norm,
            eps=spec.eps,
            params=params,
            device=dev,
            nb_classes=nb_classes,
            input_shape=tuple(x.shape[1:]),
            batch_size=batch_size,
            seed=int(seed),
        )
        starts = range(0, len(x), batch_size)
        for start in tqdm(starts, desc=spec.label, disable=not verbose, unit="batch"):
            xb, yb = x[start : start + batch_size], labels[start : start + batch_size]
            x_adv[start : start + len(xb)] = np.asarray(attack(xb, yb), dtype=np.float32).reshape(xb.shape)
    return enforce_budget(
        x_adv, x, norm=spec.norm, eps=spec.eps, minimisation=info.minimisation, out_of_budget=out_of_budget
    )

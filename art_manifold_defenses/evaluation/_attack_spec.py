"""The attack specification: :class:`AttackSpec` (library, attack, threat model and library parameters,
validated against the registry :data:`~.attack_registry.ATTACKS`) and :class:`FrozenParams`, the read-only
dict holding its parameters. Re-exported by :mod:`.attacks`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .attack_registry import ATTACKS, LIBRARIES, AttackInfo, _valid_pairs, normalise_norm

__all__ = ["AttackSpec", "FrozenParams"]


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

"""What the attack registry is made of: :class:`AttackInfo` (one supported ``(library, attack)`` pair), the
vocabularies it uses (:data:`LIBRARIES`, :data:`NORMS`, :data:`KINDS`, :data:`LOSSES`), :func:`normalise_norm`
and :class:`Registrar`, which the per-library tables (``_registry_art``, ``_registry_others``) use to add
their entries. :mod:`.attack_registry` assembles the tables into :data:`~.attack_registry.ATTACKS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["AttackInfo", "KINDS", "LIBRARIES", "LOSSES", "NORMS", "Registrar", "normalise_norm"]

LIBRARIES = ("art", "foolbox", "cleverhans", "autoattack", "transfer")
NORMS = ("linf", "l2", "l1")
KINDS = ("gradient", "score", "decision", "noise", "transfer", "ensemble")
_BLACK_BOX_KINDS = frozenset({"score", "decision", "noise", "transfer"})
_WHITE_BOX_KINDS = frozenset({"gradient", "ensemble"})
#: The objectives an attack of the registry can optimise (``AttackInfo.loss``; ``None`` = no loss).
LOSSES = ("cross-entropy", "margin", "dlr", "ensemble")
#: Losses that count as a margin loss for :attr:`AttackInfo.margin_loss` (AutoAttack's ensemble contains
#: APGD-DLR).
_MARGIN_LOSSES = frozenset({"margin", "dlr", "ensemble"})
_NORM_ALIASES: dict[str, str] = {
    "linf": "linf",
    "inf": "linf",
    "l_inf": "linf",
    "infinity": "linf",
    "np.inf": "linf",
    "l2": "l2",
    "2": "l2",
    "2.0": "l2",
    "l1": "l1",
    "1": "l1",
    "1.0": "l1",
}
#: Harness-level parameters handled here, not passed to the library.
_OUT_OF_BUDGET = ("clean", "project")
#: Relative tolerance under which a fixed-epsilon attack's overshoot is treated as round-off and projected
#: back.
_ROUND_OFF = 1e-3
#: Norm tuples shared by many registry entries.
_ALL = ("linf", "l2", "l1")
_LINF_L2 = ("linf", "l2")


@dataclass(frozen=True)
class AttackInfo:
    """One supported ``(library, attack)`` pair.

    :param norms: threat models the adapter supports.
    :param kind: ``"gradient"`` (white-box), ``"score"`` (queries logits), ``"decision"`` (queries labels),
        ``"noise"`` (random search), ``"transfer"`` (crafted on a surrogate) or ``"ensemble"`` (AutoAttack).
    :param minimisation: the attack minimises the perturbation instead of working in a fixed ball.
    :param one_step: a single-step attack (FGSM/FGM).
    :param defaults: default parameters per norm (library keyword arguments; ``None`` = derived from ``eps``
    or the
        step count, as the description says).
    :param description: the attack, its reference and how derived defaults are computed.
    :param loss: the objective the attack optimises, one of :data:`LOSSES`: ``"cross-entropy"``, ``"margin"``
    (the
        C&W logit margin ``max_{j != y} z_j - z_y``, or a variant of it: C&W, EAD, Square, SPSA), ``"dlr"``
        (the difference-of-logits ratio of APGD-DLR, a scale-invariant margin), ``"ensemble"`` (AutoAttack:
        APGD-CE plus APGD-DLR or targeted DLR, so both a cross-entropy and a margin loss) or ``None`` (no
        loss: noise, decision-based search, DeepFool's linearised boundary step, transfer).
    """

    library: str
    attack: str
    norms: tuple[str, ...]
    kind: str
    description: str
    defaults: Mapping[str, Mapping[str, Any]]
    minimisation: bool = False
    one_step: bool = False
    loss: str | None = None

    @property
    def black_box(self) -> bool:
        """Uses no gradient of the attacked model (score/decision-based, noise or transfer)."""
        return self.kind in _BLACK_BOX_KINDS

    @property
    def gradient_free(self) -> bool:
        """Same set as :attr:`black_box`: the attack never differentiates the attacked model."""
        return self.kind in _BLACK_BOX_KINDS

    @property
    def margin_loss(self) -> bool:
        """A white-box attack that maximises a margin or DLR loss (the issue's "margin-loss attack").

        Carlini et al. 2019, App. A (a cross-entropy attack alone can fail where the softmax saturates or the
        logits are rescaled; evaluate with a margin loss too) and Croce & Hein 2020 (APGD-DLR, AutoAttack); no
        equation. True for gradient-based attacks with loss ``"margin"`` or ``"dlr"`` (C&W, EAD, APGD-DLR) and
        for AutoAttack (loss ``"ensemble"``, which contains APGD-DLR or APGD-T). Gradient-free attacks
        (Square, SPSA) use a margin too but do not count: they are the gradient-free checks, not the strongest
        white-box attack.
        """
        return self.kind in _WHITE_BOX_KINDS and self.loss in _MARGIN_LOSSES

    @property
    def cross_entropy(self) -> bool:
        """An iterative white-box attack that maximises the cross-entropy in a fixed ball (PGD, BIM, MIM,
        APGD-CE, SLIDE) or AutoAttack (its first attack is APGD-CE); one-step and minimisation attacks do not
        count."""
        return (
            self.kind in _WHITE_BOX_KINDS
            and self.loss in ("cross-entropy", "ensemble")
            and not self.one_step
            and not self.minimisation
        )

    def defaults_for(self, norm: str) -> dict[str, Any]:
        """The default parameters for ``norm`` (a fresh dict)."""
        return dict(self.defaults.get(norm, self.defaults.get("*", {})))

    def resolve_params(self, norm: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults for ``norm`` updated with ``params``; unknown names raise ``ValueError`` listing the valid
        ones."""
        resolved = self.defaults_for(norm)
        valid = set(resolved)
        if self.minimisation:
            valid.add("out_of_budget")
            resolved.setdefault("out_of_budget", "clean")
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ValueError(
                f"unknown params {unknown} for {self.library}/{self.attack} ({norm}); valid params: "
                f"{sorted(valid)}"
            )
        resolved.update(params)
        if self.minimisation and resolved["out_of_budget"] not in _OUT_OF_BUDGET:
            raise ValueError(
                f"params['out_of_budget'] must be one of {_OUT_OF_BUDGET}, got {resolved['out_of_budget']!r}"
            )
        return resolved


class Registrar:
    """Adds :class:`AttackInfo` entries to ``table`` (a registry dict keyed by ``(library, attack)``); called
    with the fields of one entry, ``defaults`` holding the parameters of every norm and ``per_norm`` the
    overrides of one norm."""

    def __init__(self, table: dict[tuple[str, str], AttackInfo]) -> None:
        self.table = table

    def __call__(
        self,
        library: str,
        attack: str,
        norms: tuple[str, ...],
        kind: str,
        description: str,
        defaults: Mapping[str, Any] | None = None,
        *,
        per_norm: Mapping[str, Mapping[str, Any]] | None = None,
        minimisation: bool = False,
        one_step: bool = False,
        loss: str | None = None,
    ) -> None:
        if loss is not None and loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES} or None, got {loss!r}")
        table: dict[str, Mapping[str, Any]] = {"*": MappingProxyType(dict(defaults or {}))}
        for norm, values in (per_norm or {}).items():
            table[norm] = MappingProxyType({**(defaults or {}), **values})
        self.table[(library, attack)] = AttackInfo(
            library, attack, norms, kind, description, MappingProxyType(table), minimisation, one_step, loss
        )


def normalise_norm(norm: Any) -> str:
    """``"linf"``, ``"l2"`` or ``"l1"`` from the usual spellings (``np.inf``, ``2``, ``"Linf"``,
    ``"inf"``...)."""
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        key = "linf" if math.isinf(norm) else str(float(norm))
    elif isinstance(norm, str):
        key = norm.strip().lower()
    else:
        raise TypeError(f"norm must be a string such as 'linf', 'l2' or 'l1', got {type(norm).__name__}")
    if key not in _NORM_ALIASES:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    return _NORM_ALIASES[key]

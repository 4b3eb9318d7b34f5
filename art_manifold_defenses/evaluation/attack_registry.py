"""The registry of supported attacks: :data:`ATTACKS` maps every ``(library, attack)`` pair of ART, Foolbox 3,
CleverHans 4, AutoAttack (torchattacks) and the transfer attack to its :class:`AttackInfo` -- norms, kind
(gradient-based, score-based, decision-based, noise, transfer, ensemble), the loss it optimises
(:data:`LOSSES`), its default parameters and a description citing its paper. Data only; :mod:`.attacks`
validates specs against it and runs them.
"""

from __future__ import annotations

from ._attack_info import _ALL as _ALL
from ._attack_info import _BLACK_BOX_KINDS as _BLACK_BOX_KINDS
from ._attack_info import _LINF_L2 as _LINF_L2
from ._attack_info import _MARGIN_LOSSES as _MARGIN_LOSSES
from ._attack_info import _NORM_ALIASES as _NORM_ALIASES
from ._attack_info import _OUT_OF_BUDGET as _OUT_OF_BUDGET
from ._attack_info import _ROUND_OFF as _ROUND_OFF
from ._attack_info import _WHITE_BOX_KINDS as _WHITE_BOX_KINDS
from ._attack_info import KINDS, LIBRARIES, LOSSES, NORMS, AttackInfo, Registrar, normalise_norm
from ._registry_art import ART_ATTACKS
from ._registry_others import OTHER_ATTACKS

__all__ = ["ATTACKS", "AttackInfo", "KINDS", "LIBRARIES", "LOSSES", "NORMS", "normalise_norm"]

#: Every supported ``(library, attack)`` pair: ART (``_registry_art``), then Foolbox, CleverHans, AutoAttack
#: and transfer (``_registry_others``).
ATTACKS: dict[tuple[str, str], AttackInfo] = {**ART_ATTACKS, **OTHER_ATTACKS}
#: Adds an entry to :data:`ATTACKS` (the per-library tables register into their own dicts).
_register = Registrar(ATTACKS)


def _valid_pairs(library: str) -> list[str]:
    return sorted(attack for lib, attack in ATTACKS if lib == library)

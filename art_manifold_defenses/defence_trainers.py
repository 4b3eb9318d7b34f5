"""Deprecated view kept for importers of :data:`DEFENCE_TRAINERS`
(``art_manifold_defenses.cli.DEFENCE_TRAINERS`` is the same dict): ``--defense`` name -> the defence's ``cli``
module, whose ``add_train_arguments`` and ``train_from_args`` are thin adapters over its record.

Derived from :data:`art_manifold_defenses.defences.DEFENCES` and ``ALIASES``, which ``amd train``,
``amd demo`` and checkpoint loading read; nothing reads this table any more.
"""

from __future__ import annotations

from .defences import defence_names, get_defence

__all__ = ["DEFENCE_TRAINERS"]

#: ``--defense`` name (aliases included) -> module path providing ``add_train_arguments`` and
#: ``train_from_args``.
DEFENCE_TRAINERS: dict[str, str] = {name: f"{get_defence(name).package}.cli" for name in defence_names()}

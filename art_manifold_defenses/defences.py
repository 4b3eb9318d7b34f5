"""The five defences: :data:`DEFENCES` (name -> :class:`~art_manifold_defenses.defence_record.Defence`) and
the one table of other names, :data:`ALIASES`.

``amd train --defense`` (its choices and flags), ``amd demo``, ``amd reproduce`` and checkpoint loading all
read this list. Adding a defence touches only its own folder (a ``defence.py`` exporting ``DEFENCE``) and the
tuple below. No torch or ART is imported here or by the ``defence.py`` modules (see
:mod:`art_manifold_defenses.defence_record`).
"""

from __future__ import annotations

from typing import Any

from .defence_record import Defence
from .fpd.defence import DEFENCE as FPD
from .manifold_regularization.defence import DEFENCE as MANIFOLD_REGULARIZATION
from .radial_mapping.defence import DEFENCE as RADIAL_MAPPING
from .rbf_reconstruction.defence import DEFENCE as RBF_CNN
from .smoothing.defence import DEFENCE as STN

__all__ = [
    "ALIASES",
    "DEFENCES",
    "Defence",
    "alias_overrides",
    "defence_names",
    "get_defence",
    "resolve_defence",
]

#: Canonical name -> defence, in the order of the papers.
DEFENCES: dict[str, Defence] = {
    d.name: d for d in (RBF_CNN, RADIAL_MAPPING, FPD, MANIFOLD_REGULARIZATION, STN)
}

#: Every other name a defence is known by -> (canonical name, ``Config`` fields it sets). Read by
#: ``amd train --defense`` (``rbf-cnn-plus`` is ``rbf-cnn --rbf-plus``) and by checkpoint loading (sidecars
#: that name a defence ``smoothing`` were written by earlier versions for what is now ``stn``).
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "rbf-cnn-plus": ("rbf-cnn", {"plus": True}),
    "smoothing": ("stn", {}),
}


def resolve_defence(name: str) -> tuple[Defence, dict[str, Any]]:
    """``(defence, config overrides)`` for a canonical name or an alias; ``KeyError`` naming the known
    names."""
    if name in DEFENCES:
        return DEFENCES[name], {}
    if name in ALIASES:
        target, overrides = ALIASES[name]
        return DEFENCES[target], dict(overrides)
    raise KeyError(f"unknown defence {name!r}; known: {defence_names()}")


def get_defence(name: str) -> Defence:
    """The defence called ``name`` (canonical or alias)."""
    return resolve_defence(name)[0]


def alias_overrides(name: str, target: str) -> dict[str, Any]:
    """The ``Config`` fields that ``name`` sets when it is an alias of ``target`` (``{}`` otherwise)."""
    if name in ALIASES and ALIASES[name][0] == target:
        return dict(ALIASES[name][1])
    return {}


def defence_names(*, aliases: bool = True) -> list[str]:
    """The sorted names of the listed defences, with their aliases unless ``aliases=False``."""
    names = set(DEFENCES)
    if aliases:
        names |= {alias for alias, (target, _) in ALIASES.items() if target in DEFENCES}
    return sorted(names)

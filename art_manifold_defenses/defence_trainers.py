"""Where ``amd train --defense NAME`` finds each defence: :data:`DEFENCE_TRAINERS`.

A small table of its own so that the ``amd`` command (:mod:`art_manifold_defenses.cli`) and ``amd demo``
(:mod:`art_manifold_defenses.demo`), which trains through the same modules, both read it without importing each
other. ``art_manifold_defenses.cli.DEFENCE_TRAINERS`` is this same dict.
"""

from __future__ import annotations

__all__ = ["DEFENCE_TRAINERS"]

#: ``--defense`` name -> module path providing ``add_train_arguments`` and ``train_from_args``.
DEFENCE_TRAINERS: dict[str, str] = {
    "rbf-cnn": "art_manifold_defenses.rbf_reconstruction.cli",
    "rbf-cnn-plus": "art_manifold_defenses.rbf_reconstruction.cli",
    "radial-mapping": "art_manifold_defenses.radial_mapping.cli",
    "fpd": "art_manifold_defenses.fpd.cli",
    "manifold-reg": "art_manifold_defenses.manifold_regularization.cli",
    "stn": "art_manifold_defenses.smoothing.cli",
}

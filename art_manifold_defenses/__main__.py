"""``python -m art_manifold_defenses`` runs the ``amd`` command (also under ``torchrun``)."""

import sys

from .cli import main

sys.exit(main())

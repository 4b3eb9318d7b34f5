"""Writing a matplotlib figure: :func:`save_figure` (the PNG figures of :mod:`.evaluation.report` and
:mod:`.smoothing.outputs`). matplotlib is imported by the caller, which chose the backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["save_figure"]


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int) -> Path:
    """Lay ``fig`` out tightly, write it to ``path`` (its folder created if missing) at ``dpi``, close it and
    return the path."""
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out

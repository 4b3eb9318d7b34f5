"""Reading certification TSVs: their rows and fingerprint, certified accuracy at a list of radii, the
summary of a file (:func:`summarize_certification`) and its rewrite in Cohen et al.'s format
(:func:`write_cohen_tsv`). Re-exported by :mod:`.outputs`."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..fingerprint import read_tsv
from ..utils import write_text_atomic
from .choices import DEFAULT_RADII


def read_certify_tsv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a certification TSV (complete lines only: a line cut by a kill is ignored; the fingerprint
    line is skipped, see :func:`read_certify_fingerprint`).

    Paper: Li et al. 2019 (paper 004), Section 6.1 / Cohen et al. 2019 certification output; a
    TSV reader.
    """
    return read_tsv(path)[2]


def read_certify_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The fingerprint line of a certification TSV (``None`` for a file of an older version without one): the
    model hash and the settings of :func:`certification_fingerprint`.

    Paper: Li et al. 2019 (paper 004), Section 6.1 certification output; a TSV reader.
    """
    return read_tsv(path)[0]


def certified_accuracy(
    radius: Any, correct: Any, radii: Sequence[float] = DEFAULT_RADII
) -> dict[float, float]:
    """Fraction of images that are correctly classified and certified at each radius ``r`` (``radius >= r``
    and ``radius > 0``; a zero radius means abstention).

    Paper: Li et al. 2019 (paper 004), Section 6.1 (the accuracy lower bound of Fig. 1 and Table 1), and the
    certified accuracy of Cohen et al. 2019.
    """
    rad = np.asarray(radius, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if rad.shape != ok.shape or rad.ndim != 1 or rad.size == 0:
        raise ValueError("radius and correct must be 1-D arrays of the same, non-zero length")
    return {float(r): float(np.mean(ok & (rad > 0) & (rad >= r))) for r in radii}


#: Columns of Cohen et al.'s ``certify.py`` output, which their ``analyze.py`` reads
#: (``pd.read_csv(path, sep="\t")``).
COHEN_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")


def write_cohen_tsv(
    path: str | os.PathLike[str], out: str | os.PathLike[str], *, bound: str = "cohen"
) -> Path:
    """Rewrite a certification TSV of this package in the format of Cohen et al.'s ``certify.py``: a header
    ``idx label predict radius correct time`` and one row per image, ``predict`` -1 and ``radius`` 0.0 for an
    abstention, ``time`` as ``H:MM:SS.ffffff`` (radii with 6 significant digits where Cohen's code writes 3,
    so that no radius rounds across a threshold); ``radius`` is the row's ``radius_<bound>`` (default Cohen's,
    the radius of their CERTIFY). Their ``analyze.py`` reads the result as it reads their own files.

    Paper: Cohen et al. 2019, Section 3.2 (CERTIFY) and the output format of their code; a file writer.

    Raises:
        ValueError: ``path`` holds no ``radius_<bound>`` column or no row.
    """
    rows = read_certify_tsv(path)
    if not rows:
        raise ValueError(f"{path} holds no certified image")
    column = f"radius_{bound}"
    if column not in rows[0]:
        have = sorted(c[len("radius_") :] for c in rows[0] if c.startswith("radius_"))
        raise ValueError(f"bound must be one of the bounds in {path}: {have}, got {bound!r}")
    lines = ["\t".join(COHEN_COLUMNS)]
    for row in rows:
        predict = int(row["prediction"])
        radius = float(row[column]) if predict >= 0 else 0.0
        elapsed = str(datetime.timedelta(seconds=float(row["seconds"])))
        lines.append(
            f"{row['idx']}\t{row['label']}\t{predict}\t{radius:.6g}\t{int(row['correct'])}\t{elapsed}"
        )
    return write_text_atomic(out, "\n".join(lines) + "\n")


def summarize_certification(
    path: str | os.PathLike[str], radii: Sequence[float] = DEFAULT_RADII
) -> dict[str, Any]:
    """Summary of a certification TSV: number of images, mode, smoothed accuracy, abstention rate, certified
    accuracy at ``radii`` per bound, median radius of the correct images per bound, mean seconds and samples
    (forward passes) per image beside the fixed mode's ``n0 + n`` (``fixed_samples_per_image``), the settings
    (the file's fingerprint, :func:`certification_fingerprint`) and, for the decision mode, ``decision``: the
    tested radius, the certified accuracy at it and the rates of the three answers. (In the decision mode the
    per-bound table uses each row's largest certified radius, valid but not sampled for radii beyond the
    tested one.)

    Paper: Li et al. 2019 (paper 004), Section 6.1 and Table 1 (certified bound with its accuracy); no
    equation: a summary of a certification TSV.
    """
    fingerprint, _, rows = read_tsv(path)
    if not rows:
        raise ValueError(f"{path} holds no certified image")
    bounds = [c[len("radius_") :] for c in rows[0] if c.startswith("radius_")]
    correct = np.array([int(r["correct"]) for r in rows], dtype=bool)
    prediction = np.array([int(r["prediction"]) for r in rows])
    settings = fingerprint or {}
    mode = str(settings.get("mode", "fixed"))
    fixed_cost = int(settings["n0"]) + int(settings["n"]) if "n" in settings and "n0" in settings else None
    if "samples" in rows[0]:
        samples_per_image: float | None = float(np.mean([int(r["samples"]) for r in rows]))
    else:  # fixed mode: every row spent n0 + n
        samples_per_image = None if fixed_cost is None else float(fixed_cost)
    summary: dict[str, Any] = {
        "images": len(rows),
        "mode": mode,
        "smoothed_accuracy": float(correct.mean()),
        "abstain_rate": float((prediction < 0).mean()),
        "seconds_per_image": float(np.mean([float(r["seconds"]) for r in rows])),
        "samples_per_image": samples_per_image,
        "fixed_samples_per_image": fixed_cost,
        "certified_accuracy": {},
        "median_radius_correct": {},
    }
    if mode == "decision":
        decision = np.array([r["decision"] for r in rows])
        summary["decision"] = {
            "radius": float(settings.get("radius", float("nan"))),
            "certified_accuracy": float(np.mean((decision == "certified") & correct)),
            **{name: float(np.mean(decision == name)) for name in ("certified", "not_certified", "abstain")},
        }
    for b in bounds:
        rad = np.array([float(r[f"radius_{b}"]) for r in rows])
        summary["certified_accuracy"][b] = {
            f"{r:g}": v for r, v in certified_accuracy(rad, correct, radii).items()
        }
        summary["median_radius_correct"][b] = float(np.median(rad[correct])) if correct.any() else 0.0
    if fingerprint is not None:
        summary["settings"] = fingerprint
    return summary

"""Certification outputs: a TSV row per image (flushed as it goes, resumable), summaries of certified accuracy
at a list of radii per bound, certified-accuracy-vs-radius plots, and the bound-comparison figure (Li et al.,
App. A).

A certification TSV starts with its fingerprint line (``# amd-fingerprint {...}``: the model's hash and every
setting that changes a row, see :mod:`art_manifold_defenses.fingerprint`), then the header; every row carries
a hash of its image. A resume checks both, so a table never mixes two models, two settings or two data sets.
"""

from __future__ import annotations

import csv
import datetime
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from ..costs import report_estimate
from ..fingerprint import (
    image_hashes,
    make_fingerprint,
    model_hash,
    overwrite_hint,
    read_tsv,
    resume_tsv,
    start_tsv,
)
from ..utils import check_labels, write_atomic, write_text_atomic
from .bounds import cohen_radius, pixeldp_radius, renyi_radius
from .certification import certify_batch, resolve_bounds
from .choices import DEFAULT_N0, DEFAULT_RADII, DEFAULT_SAMPLES, INTERVALS

if TYPE_CHECKING:
    from .estimator import RenyiSmoothingPyTorch

__all__ = [
    "DEFAULT_RADII",
    "MODES",
    "certification_fingerprint",
    "certification_settings",
    "certified_accuracy",
    "certify_sharded",
    "certify_to_tsv",
    "plot_bound_comparison",
    "plot_certified_accuracy",
    "read_certify_fingerprint",
    "read_certify_tsv",
    "summarize_certification",
    "write_cohen_tsv",
]


#: The three certification modes of a TSV: ``fixed`` (CERTIFY), ``adaptive`` (input-specific sizes),
#: ``decision``.
MODES = ("fixed", "adaptive", "decision")


def _columns(bounds: Sequence[str], mode: str = "fixed") -> list[str]:
    """TSV columns of a mode. The fixed mode keeps the columns of earlier versions (every row spends
    ``n0 + n`` samples, stated by the fingerprint), so its files still resume; the other modes add ``samples``
    per row."""
    if mode == "decision":
        return [
            "idx",
            "label",
            "prediction",
            "decision",
            f"radius_{bounds[0]}",
            "correct",
            "seconds",
            "samples",
            "rounds",
            "count_top",
            "count_second",
            "p_lower",
            "p_upper",
            "image_hash",
        ]
    extra = ["samples"] if mode == "adaptive" else []
    return [
        "idx",
        "label",
        "prediction",
        *[f"radius_{b}" for b in bounds],
        "correct",
        "seconds",
        "count_top",
        "count_second",
        "p1_lower",
        "p2_upper",
        "cohen_p_lower",
        *extra,
        "image_hash",
    ]


def _mode_bounds(bound: str | None, radius: float | None, samples: str) -> tuple[str, tuple[str, ...]]:
    """The mode of a certification run and its bounds (the decision mode decides for one bound, default
    Cohen)."""
    if samples not in ("fixed", "adaptive"):
        raise ValueError(f"samples must be 'fixed' or 'adaptive', got {samples!r}")
    if radius is None:
        return samples, resolve_bounds("all" if bound is None else bound)
    if samples != "fixed":
        raise ValueError("radius (decision mode) and samples='adaptive' are two different modes: pass one")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0 <= float(radius) < np.inf:
        raise ValueError(f"radius must be a finite radius >= 0, got {radius!r}")
    chosen = "cohen" if bound is None else bound
    if chosen not in ("cohen", "renyi", "pixeldp"):
        raise ValueError(
            f"bound must be 'cohen', 'renyi' or 'pixeldp' in the decision mode (one bound), got {bound!r}"
        )
    return "decision", (chosen,)


#: What a refusal to resume a certification TSV offers.
_HINT = overwrite_hint("resume=False")


def _legacy_settings_path(path: Path) -> Path:
    """The settings sidecar of earlier versions (removed when a file is started afresh)."""
    return path.with_name(path.name + ".settings.json")


@dataclass(frozen=True)
class _Run:
    """A certification run's checked inputs and the fingerprint its TSV rows are written under."""

    mode: str
    bounds: tuple[str, ...]
    x: np.ndarray
    labels: np.ndarray
    idx: np.ndarray
    hashes: list[str]
    alpha: float
    fingerprint: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        return _columns(self.bounds, self.mode)

    @property
    def expected(self) -> dict[int, tuple[int, str]]:
        """Index -> (label, image hash) of every image of the run (what a finished row must match)."""
        return {int(i): (int(lab), h) for i, lab, h in zip(self.idx, self.labels, self.hashes, strict=True)}


def _prepare_run(
    estimator: RenyiSmoothingPyTorch,
    x: Any,
    y: Any,
    indices: Any,
    *,
    n: int,
    n0: int,
    alpha: float | None,
    bound: str | None,
    interval: str,
    batch_size: int,
    seed: int,
    radius: float | None,
    samples: str,
    max_radius_loss: float,
    first_round: int,
    growth: float,
) -> _Run:
    """Check the inputs and settings of :func:`certify_to_tsv` / :func:`certify_sharded` (errors name the
    argument) and compute the run's fingerprint."""
    mode, bounds = _mode_bounds(bound, radius, samples)
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if mode == "decision" and interval != "clopper-pearson":
        raise ValueError(f"interval must be 'clopper-pearson' in the decision mode, got {interval!r}")
    x_np = estimator._check_x(x)
    labels = check_labels(y, len(x_np), estimator.nb_classes, "y")
    idx = np.arange(len(x_np)) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.shape != (len(x_np),):
        raise ValueError(f"indices must have one entry per image ({len(x_np)}), got shape {idx.shape}")
    alpha_value = float(estimator.alpha if alpha is None else alpha)
    mode_settings = _mode_settings(
        mode, radius=radius, max_radius_loss=max_radius_loss, first_round=first_round, growth=growth
    )
    fingerprint = certification_fingerprint(
        estimator,
        n=n,
        n0=n0,
        alpha=alpha_value,
        bounds=bounds,
        interval=interval,
        batch_size=batch_size,
        seed=seed,
        **mode_settings,
    )
    return _Run(mode, bounds, x_np, labels, idx, image_hashes(x_np), alpha_value, fingerprint)


def certify_to_tsv(
    estimator: RenyiSmoothingPyTorch,
    x: Any,
    y: Any,
    path: str | os.PathLike[str],
    *,
    n: int = DEFAULT_SAMPLES,
    n0: int = DEFAULT_N0,
    alpha: float | None = None,
    bound: str | None = None,
    interval: str = "clopper-pearson",
    batch_size: int = 1000,
    seed: int = 0,
    indices: Sequence[int] | np.ndarray | None = None,
    resume: bool = True,
    verbose: bool = True,
    max_images: int | None = None,
    radius: float | None = None,
    samples: str = "fixed",
    max_radius_loss: float = 0.05,
    first_round: int = 100,
    growth: float = 2.0,
) -> Path:
    """Certify ``x`` with ``estimator`` and append one TSV row per image to ``path`` as it goes.

    Paper: Li et al. 2019 (paper 004), Algorithm 1 for every image (and the Cohen et al. 2019 / PixelDP bounds
    on the same counts); a per-image TSV writer.

    Columns: ``idx, label, prediction, radius_<bound>..., correct, seconds, count_top, count_second, p1_lower,
    p2_upper, cohen_p_lower``. Images are processed in chunks of ``max(1, batch_size // (n0 + n))`` (a row is
    written as soon as its chunk is done); the noise of each image is seeded from ``(seed, its index)``
    (:func:`~art_manifold_defenses.smoothing.sampling.image_seed`), so a row depends neither on the chunking
    nor on which process certifies it, and a run killed and restarted with ``resume=True`` skips the rows
    already written and produces the same rows as an uninterrupted run. The first line of the file is its
    fingerprint (:func:`certification_fingerprint`: the model's hash and every setting that changes a row) and
    every row holds a hash of its image (``image_hash``): a resume with another model, other settings, a file
    without a fingerprint (an older version) or a finished row whose image or label differs from this run's
    raises :class:`~art_manifold_defenses.fingerprint.FingerprintMismatchError` (a ``ValueError``) naming what
    differs; ``resume=False`` starts the file afresh.

    Modes (:meth:`~.estimator.RenyiSmoothingPyTorch.certify`): fixed ``n`` (default, CERTIFY; ``bound``
    default ``"all"``), ``samples="adaptive"`` (input-specific sizes, Chen et al. 2022; a ``samples`` column)
    and ``radius=r`` (the decision mode, Voráček & Hein 2024; one bound, default ``"cohen"``; ``n`` is the
    cap; columns ``idx, label, prediction, decision, radius_<bound>, correct, seconds, samples, rounds,
    count_top, count_second, p_lower, p_upper``, where ``decision`` is ``certified``, ``not_certified`` or
    ``abstain`` at ``r`` and ``radius_<bound>`` the largest radius certified over the rounds run). The
    adaptive and decision modes process ``max(1, batch_size // first_round)`` images per chunk, with the same
    per-image noise seeding; their settings are part of the fingerprint.

    Args:
        n, n0, alpha: estimation samples, selection samples and failure probability per image; the defaults
            (:data:`~.choices.DEFAULT_SAMPLES`, :data:`~.choices.DEFAULT_N0` and the estimator's ``alpha``,
            default :data:`~.choices.DEFAULT_ALPHA`) are those of
            :meth:`~.estimator.RenyiSmoothingPyTorch.certify` and ``amd certify``; Cohen et al.'s setting is
            ``n=100_000`` (cost: ``docs/costs.md``).
        indices: dataset index of each row of ``x`` (default ``0..N-1``), written in the ``idx`` column.
        max_images: stop after certifying this many new images (a budget for a time-limited job; rerunning
            resumes).
        radius, samples, max_radius_loss, first_round, growth: the mode and its settings (see above).

    The ``seconds`` column is the wall time of the chunk divided by its number of images (the only column that
    differs between two runs with the same settings).
    """
    run = _prepare_run(
        estimator,
        x,
        y,
        indices,
        n=n,
        n0=n0,
        alpha=alpha,
        bound=bound,
        interval=interval,
        batch_size=batch_size,
        seed=seed,
        radius=radius,
        samples=samples,
        max_radius_loss=max_radius_loss,
        first_round=first_round,
        growth=growth,
    )
    mode, bounds, x_np, labels, idx = run.mode, run.bounds, run.x, run.labels, run.idx
    alpha_value, fingerprint, hashes = run.alpha, run.fingerprint, run.hashes
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1
    ):
        raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")
    stop_after = int(max_images) if max_images is not None else 0
    path = Path(path)
    if not resume:
        _legacy_settings_path(path).unlink(missing_ok=True)
    finished = resume_tsv(path, fingerprint, run.columns, resume=resume, hint=_HINT, expected=run.expected)
    done = {int(row["idx"]) for row in finished}

    if mode == "fixed":
        chunk = max(1, int(batch_size) // (int(n0) + int(n)))
    else:
        chunk = estimator._images_per_chunk(int(batch_size), int(first_round))
    starts = range(0, len(x_np), chunk)
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        bar = tqdm(
            total=len(x_np), desc="certify" if mode == "fixed" else f"certify ({mode})", disable=not verbose
        )
        bar.update(sum(1 for i in idx if int(i) in done))
        chunks_run, first_seconds = 0, 0.0
        for start in starts:
            todo = [j for j in range(start, min(start + chunk, len(x_np))) if int(idx[j]) not in done]
            if not todo:
                continue
            began = time.perf_counter()
            if mode == "decision":
                assert radius is not None
                result = estimator.certify_decision(
                    x_np[todo],
                    float(radius),
                    n,
                    batch_size,
                    n0=n0,
                    alpha=alpha_value,
                    bound=bounds[0],
                    first_round=first_round,
                    growth=growth,
                    seed=int(seed),
                    indices=idx[todo],
                )
                seconds = (time.perf_counter() - began) / len(todo)
                for i, j in enumerate(todo):
                    writer.writerow(
                        [
                            int(idx[j]),
                            int(labels[j]),
                            int(result.prediction[i]),
                            result.decision[i],
                            f"{result.radius[i]:.6f}",
                            int(result.prediction[i] == labels[j]),
                            f"{seconds:.6f}",
                            int(result.samples[i]),
                            int(result.rounds[i]),
                            int(result.count_top[i]),
                            int(result.count_second[i]),
                            f"{result.p_lower[i]:.8f}",
                            f"{result.p_upper[i]:.8f}",
                            hashes[j],
                        ]
                    )
            else:
                if mode == "adaptive":
                    selection, estimation, sizes = estimator.certify_adaptive_counts(
                        x_np[todo],
                        n,
                        batch_size,
                        n0=n0,
                        alpha=alpha_value,
                        max_radius_loss=max_radius_loss,
                        first_round=first_round,
                        seed=int(seed),
                        indices=idx[todo],
                    )
                    spent = [[int(n0) + int(v)] for v in sizes]  # the adaptive mode's ``samples`` column
                else:
                    selection, estimation = estimator.certify_counts(
                        x_np[todo], n, batch_size, n0=n0, seed=int(seed), indices=idx[todo]
                    )
                    spent = [
                        [] for _ in todo
                    ]  # the fixed mode has no ``samples`` column (n0 + n for every row)
                top, radii, p1, p2, p_a = certify_batch(
                    selection,
                    estimation,
                    sigma=estimator.sigma,
                    alpha=alpha_value,
                    bounds=bounds,
                    interval=interval,
                )
                seconds = (time.perf_counter() - began) / len(selection)
                for i, j in enumerate(todo):
                    est = np.sort(estimation[i])[::-1]
                    pred = int(top[i]) if any(radii[b][i] > 0 for b in bounds) else -1
                    writer.writerow(
                        [
                            int(idx[j]),
                            int(labels[j]),
                            pred,
                            *[f"{radii[b][i]:.6f}" for b in bounds],
                            int(pred == labels[j]),
                            f"{seconds:.6f}",
                            int(est[0]),
                            int(est[1]),
                            f"{p1[i]:.8f}",
                            f"{p2[i]:.8f}",
                            f"{p_a[i]:.8f}",
                            *spent[i],
                            hashes[j],
                        ]
                    )
            handle.flush()
            bar.update(len(todo))
            chunks_run += 1
            if (
                chunks_run == 2
            ):  # the second chunk's seconds per image times the images left (the first: a warm-up)
                left = sum(1 for j in range(start + chunk, len(x_np)) if int(idx[j]) not in done)
                if max_images is not None:
                    left = min(left, stop_after - len(todo))
                if left > 0:
                    report_estimate(
                        f"certifying {left} more images ({mode}, n={n}, n0={n0})",
                        seconds * left,
                        f"the second chunk of {len(todo)} took {seconds:.2f} s per image, the first (a "
                        f"warm-up) {first_seconds:.2f} s",
                        verbose=verbose,
                    )
            elif chunks_run == 1:
                first_seconds = seconds
            stop_after -= len(todo)
            if max_images is not None and stop_after <= 0:
                break
        bar.close()
    return path


def _mode_settings(
    mode: str, *, radius: float | None, max_radius_loss: float, first_round: int, growth: float
) -> dict[str, Any]:
    """The settings of the adaptive and decision modes that change a row (none for the fixed mode, whose
    fingerprint stays that of earlier versions)."""
    if mode == "adaptive":
        return {"mode": mode, "max_radius_loss": float(max_radius_loss), "first_round": int(first_round)}
    if mode == "decision":
        assert radius is not None
        return {
            "mode": mode,
            "radius": float(radius),
            "first_round": int(first_round),
            "growth": float(growth),
        }
    return {}


def certification_settings(
    estimator: RenyiSmoothingPyTorch,
    *,
    n: int,
    n0: int,
    alpha: float,
    bounds: Sequence[str],
    interval: str,
    batch_size: int,
    seed: int,
    **mode: Any,
) -> dict[str, Any]:
    """The settings a certification TSV is written with (part of its fingerprint, reported by the summary);
    ``mode``: the adaptive or decision mode's settings (``mode``, ``radius``, ``max_radius_loss``,
    ``first_round``, ``growth``)."""
    return {
        "n": int(n),
        "n0": int(n0),
        "alpha": float(alpha),
        "sigma": estimator.sigma,
        "bounds": list(bounds),
        "interval": interval,
        "batch_size": int(batch_size),
        "seed": int(seed),
        **mode,
    }


def certification_fingerprint(estimator: RenyiSmoothingPyTorch, **settings: Any) -> dict[str, Any]:
    """The fingerprint of a certification TSV: :func:`certification_settings` (``settings`` are its keyword
    arguments), the number of classes, and the hashes of the base model (module types and state dict) and of
    every preprocessing module of the estimator (the class names of the others).
    """
    preprocessing = [
        model_hash(op) if isinstance(op, nn.Module) else type(op).__name__
        for op in estimator.active_preprocessing
    ]
    return make_fingerprint(
        "certify",
        model=model_hash(estimator.user_model),
        preprocessing=preprocessing,
        nb_classes=int(estimator.nb_classes),
        **certification_settings(estimator, **settings),
    )


def _rank_path(out_dir: Path, rank: int) -> Path:
    return out_dir / f"certify.rank{rank}.tsv"


def _finished_rows(
    paths: Sequence[Path],
    fingerprint: Mapping[str, Any],
    columns: Sequence[str],
    expected: Mapping[int, tuple[int, str]],
) -> list[dict[str, str]]:
    """Complete rows of the certification TSVs among ``paths`` that exist; a file of another run (fingerprint,
    columns or the image of a row) raises
    :class:`~art_manifold_defenses.fingerprint.FingerprintMismatchError`."""
    rows: list[dict[str, str]] = []
    for p in paths:
        if p.is_file():
            rows.extend(resume_tsv(p, fingerprint, columns, resume=True, hint=_HINT, expected=expected))
    return rows


def _write_tsv_atomic(
    path: Path, fingerprint: Mapping[str, Any], columns: Sequence[str], rows: Sequence[Mapping[str, str]]
) -> None:
    def write(tmp: Path) -> None:
        start_tsv(tmp, fingerprint, columns)
        with tmp.open("a", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            for row in rows:
                writer.writerow([row[c] for c in columns])

    write_atomic(path, write, suffix=".merging")


def certify_sharded(
    estimator: RenyiSmoothingPyTorch,
    x: Any,
    y: Any,
    out_dir: str | os.PathLike[str],
    *,
    n: int = DEFAULT_SAMPLES,
    n0: int = DEFAULT_N0,
    alpha: float | None = None,
    bound: str | None = None,
    interval: str = "clopper-pearson",
    batch_size: int = 1000,
    seed: int = 0,
    indices: Sequence[int] | np.ndarray | None = None,
    resume: bool = True,
    verbose: bool = True,
    max_images: int | None = None,
    radius: float | None = None,
    samples: str = "fixed",
    max_radius_loss: float = 0.05,
    first_round: int = 100,
    growth: float = 2.0,
) -> Path:
    """Certify ``x`` across the processes of a ``torchrun`` job (or in one process) into
    ``out_dir/certify.tsv``.

    Positions are dealt round-robin over ranks (:func:`~art_manifold_defenses.distributed.shard`); rank ``r``
    appends its rows to ``out_dir/certify.rank{r}.tsv`` (flushed row by row, :func:`certify_to_tsv`) and skips
    every index already present in ``certify.tsv`` or in any ``certify.rank*.tsv`` (resume, also with another
    number of processes). Rank 0 then gathers the rows of every rank, merges them with the finished ones,
    sorted by index and one row per index, into ``certify.tsv`` (atomically, its fingerprint line first); the
    rank files are removed. Each image's noise is seeded from ``(seed, index)``, so ``certify.tsv`` is the
    same whatever the number of processes, except for the ``seconds`` column (timing). A single process is the
    case ``world_size == 1``. Every file is checked as :func:`certify_to_tsv` checks its own (fingerprint, and
    the image of every finished row this run also certifies), so a folder holding another model's or other
    settings' rows is refused, never merged.

    Args:
        out_dir: output folder (shared by all processes for resume across nodes; rank 0 writes
            ``certify.tsv``).
        resume: ``False`` deletes ``certify.tsv`` and every ``certify.rank*.tsv`` first.
        max_images: each process stops after certifying this many new images (rerun to continue).
        Other arguments: as :func:`certify_to_tsv` (all three modes: fixed, ``samples="adaptive"``,
        ``radius=r``).

    Returns:
        The path of ``certify.tsv`` (on every rank, once rank 0 has written it).
    """
    from .. import distributed

    run = _prepare_run(
        estimator,
        x,
        y,
        indices,
        n=n,
        n0=n0,
        alpha=alpha,
        bound=bound,
        interval=interval,
        batch_size=batch_size,
        seed=seed,
        radius=radius,
        samples=samples,
        max_radius_loss=max_radius_loss,
        first_round=first_round,
        growth=growth,
    )
    x_np, labels, idx, alpha_value, fingerprint = run.x, run.labels, run.idx, run.alpha, run.fingerprint
    if len(np.unique(idx)) != len(idx):
        raise ValueError("indices must be distinct: each image is one row of certify.tsv")
    columns, expected = run.columns, run.expected
    rank, size = distributed.rank(), distributed.world_size()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged = out / "certify.tsv"
    own = _rank_path(out, rank)
    if not resume and rank == 0:
        for p in [merged, *out.glob("certify.rank*.tsv")]:
            p.unlink(missing_ok=True)
            _legacy_settings_path(p).unlink(missing_ok=True)
    distributed.barrier()  # nobody reads the folder before rank 0 has cleared it

    # every rank checks every file (so all of them refuse together); its own rows are skipped by
    # certify_to_tsv too
    existing = [merged, *sorted(out.glob("certify.rank*.tsv"))]
    done = {int(r["idx"]) for r in _finished_rows(existing, fingerprint, columns, expected)}
    distributed.barrier()  # every rank knows what is finished before anyone writes
    mine = distributed.shard(len(x_np), rank_index=rank, size=size)
    todo = np.array([j for j in mine if int(idx[j]) not in done], dtype=np.int64)
    if len(todo):
        certify_to_tsv(
            estimator,
            x_np[todo],
            labels[todo],
            own,
            n=n,
            n0=n0,
            alpha=alpha_value,
            bound=bound,
            interval=interval,
            batch_size=batch_size,
            seed=seed,
            indices=idx[todo],
            resume=True,
            verbose=verbose and rank == 0,
            max_images=max_images,
            radius=radius,
            samples=samples,
            max_radius_loss=max_radius_loss,
            first_round=first_round,
            growth=growth,
        )
    gathered = distributed.gather_objects(_finished_rows([own], fingerprint, columns, expected), dst=0)
    if rank == 0:
        assert gathered is not None
        finished = _finished_rows(
            [merged, *sorted(out.glob("certify.rank*.tsv"))], fingerprint, columns, expected
        )
        by_index: dict[int, dict[str, str]] = {}
        for row in [*finished, *(r for part in gathered for r in part)]:
            by_index.setdefault(int(row["idx"]), row)
        _write_tsv_atomic(merged, fingerprint, columns, [by_index[i] for i in sorted(by_index)])
        _legacy_settings_path(merged).unlink(missing_ok=True)
    distributed.barrier()  # certify.tsv holds every row: the rank files can go
    stale = [own] if rank != 0 else [own, *out.glob("certify.rank*.tsv")]
    for p in stale:
        p.unlink(missing_ok=True)
        _legacy_settings_path(p).unlink(missing_ok=True)
    distributed.barrier()
    return merged


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


def plot_certified_accuracy(
    tsvs: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    bounds: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Certified accuracy vs radius, one line per (TSV, bound); ``tsvs`` maps a label (e.g. ``"sigma=0.7"``)
    to a certification TSV, or is a single TSV.

    Paper: Li et al. 2019 (paper 004), Fig. 1 (accuracy lower bounds vs attack size, with PixelDP), and Cohen
    et al. 2019's certified-accuracy curves; a plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = {"": tsvs} if isinstance(tsvs, (str, os.PathLike)) else dict(tsvs)
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"renyi": "-", "cohen": "--", "pixeldp": ":"}
    for label, tsv in sources.items():
        rows = read_certify_tsv(tsv)
        correct = np.array([int(r["correct"]) for r in rows], dtype=bool)
        names = [c[len("radius_") :] for c in rows[0] if c.startswith("radius_")] if rows else []
        for b in (
            names if bounds is None else [b for b in bounds if f"radius_{b}" in (rows[0] if rows else {})]
        ):
            rad = np.array([float(r[f"radius_{b}"]) for r in rows])
            grid = np.linspace(0, max(float(rad.max()) * 1.05, 0.1), 200)
            acc = [float(np.mean(correct & (rad > 0) & (rad >= g))) for g in grid]
            ax.plot(grid, acc, styles.get(b, "-"), label=f"{label} {b}".strip())
    ax.set_xlabel("l2 radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_bound_comparison(
    out_path: str | os.PathLike[str],
    *,
    sigma: float = 1.0,
    p2_values: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.3),
) -> Path:
    """The comparison of Li et al.'s appendix A (Fig. 4), extended with Cohen et al.: the radius of each bound
    over ``p1`` for several ``p2`` (one panel per ``p2``), at noise ``sigma``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(p2_values), figsize=(3.2 * len(p2_values), 3.2), sharey=True, squeeze=False
    )
    for ax, p2 in zip(axes[0], p2_values, strict=True):
        p1 = np.linspace(
            max(p2, 0.1 - p2) + 1e-3, 1.0 - p2 - 1e-4, 300
        )  # valid top-two pairs: p1 + p2 >= 0.2
        ax.plot(p1, renyi_radius(p1, p2, sigma), "r-", label="Rényi (Li et al.)")
        ax.plot(p1, pixeldp_radius(p1, p2, sigma), "b:", label="PixelDP")
        ax.plot(p1, cohen_radius(p1, sigma, np.full_like(p1, p2)), "k--", label="Cohen et al.")
        ax.set_title(f"p2 = {p2:g}")
        ax.set_xlabel("p1")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"certified l2 radius (sigma = {sigma:g})")
    axes[0][0].legend(fontsize=7)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out

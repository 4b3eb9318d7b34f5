"""Certification outputs: a TSV row per image (flushed as it goes, resumable), summaries of certified accuracy
at a list of radii per bound, certified-accuracy-vs-radius plots, and the bound-comparison figure (Li et al.,
App. A).

A certification TSV starts with its fingerprint line (``# amd-fingerprint {...}``: the model's hash and every
setting that changes a row, see :mod:`art_manifold_defenses.fingerprint`), then the header; every row carries
a hash of its image. A resume checks both, so a table never mixes two models, two settings or two data sets.

This module holds the entry points :func:`certify_to_tsv` (one process) and :func:`certify_sharded` (the
processes of a ``torchrun`` job), which share one certify loop (:func:`._certify_rows.write_rows`); the
run's settings, columns and fingerprint live in :mod:`._certify_run`, the readers and summaries in
:mod:`._certify_summary`, the figures in :mod:`._certify_plots` (all re-exported here).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..fingerprint import resume_tsv, start_tsv
from ..utils import write_atomic
from ._certify_plots import plot_bound_comparison, plot_certified_accuracy
from ._certify_rows import write_rows
from ._certify_run import _HINT as _HINT
from ._certify_run import MODES, certification_fingerprint, certification_settings
from ._certify_run import _columns as _columns
from ._certify_run import _legacy_settings_path as _legacy_settings_path
from ._certify_run import _mode_bounds as _mode_bounds
from ._certify_run import _mode_settings as _mode_settings
from ._certify_run import _prepare_run as _prepare_run
from ._certify_run import _Run as _Run
from ._certify_summary import COHEN_COLUMNS as COHEN_COLUMNS
from ._certify_summary import (
    certified_accuracy,
    read_certify_fingerprint,
    read_certify_tsv,
    summarize_certification,
    write_cohen_tsv,
)
from .choices import DEFAULT_N0, DEFAULT_RADII, DEFAULT_SAMPLES

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
    return _certify_into(estimator, run, path, resume=resume, verbose=verbose, max_images=max_images)


def _certify_into(
    estimator: RenyiSmoothingPyTorch,
    run: _Run,
    path: str | os.PathLike[str],
    *,
    resume: bool,
    verbose: bool,
    max_images: int | None,
) -> Path:
    """The certify loop of one process: resume (or start) the TSV at ``path`` under the run's fingerprint and
    append a row for every image of ``run`` it does not hold yet (:func:`certify_to_tsv`; each rank of
    :func:`certify_sharded` runs it on its own share and file)."""
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1
    ):
        raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")
    path = Path(path)
    if not resume:
        _legacy_settings_path(path).unlink(missing_ok=True)
    finished = resume_tsv(
        path, run.fingerprint, run.columns, resume=resume, hint=_HINT, expected=run.expected
    )
    done = {int(row["idx"]) for row in finished}
    write_rows(estimator, run, path, done, verbose=verbose, max_images=max_images)
    return path


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
    if len(np.unique(run.idx)) != len(run.idx):
        raise ValueError("indices must be distinct: each image is one row of certify.tsv")
    columns, expected = run.columns, run.expected
    rank, size = distributed.rank(), distributed.world_size()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged = out / "certify.tsv"
    own = _rank_path(out, rank)
    if not resume and rank == 0:
        _remove_tsvs([merged, *out.glob("certify.rank*.tsv")])
    distributed.barrier()  # nobody reads the folder before rank 0 has cleared it

    # every rank checks every file (so all of them refuse together); its own rows are skipped by
    # _certify_into too
    existing = [merged, *sorted(out.glob("certify.rank*.tsv"))]
    done = {int(r["idx"]) for r in _finished_rows(existing, run.fingerprint, columns, expected)}
    distributed.barrier()  # every rank knows what is finished before anyone writes
    mine = distributed.shard(len(run.x), rank_index=rank, size=size)
    todo = np.array([j for j in mine if int(run.idx[j]) not in done], dtype=np.int64)
    if len(todo):
        _certify_into(
            estimator,
            run.subset(todo),
            own,
            resume=True,
            verbose=verbose and rank == 0,
            max_images=max_images,
        )
    gathered = distributed.gather_objects(_finished_rows([own], run.fingerprint, columns, expected), dst=0)
    if rank == 0:
        assert gathered is not None
        _merge_rows(merged, run.fingerprint, columns, expected, [r for part in gathered for r in part])
    distributed.barrier()  # certify.tsv holds every row: the rank files can go
    _remove_tsvs([own] if rank != 0 else [own, *out.glob("certify.rank*.tsv")])
    distributed.barrier()
    return merged


def _merge_rows(
    merged: Path,
    fingerprint: Mapping[str, Any],
    columns: Sequence[str],
    expected: Mapping[int, tuple[int, str]],
    gathered: Sequence[dict[str, str]],
) -> None:
    """Rank 0 of :func:`certify_sharded`: write ``merged`` (atomically) with the finished rows of every
    certification TSV of its folder and the rows ``gathered`` from the ranks, sorted by index, one row per
    index."""
    finished = _finished_rows(
        [merged, *sorted(merged.parent.glob("certify.rank*.tsv"))], fingerprint, columns, expected
    )
    by_index: dict[int, dict[str, str]] = {}
    for row in [*finished, *gathered]:
        by_index.setdefault(int(row["idx"]), row)
    _write_tsv_atomic(merged, fingerprint, columns, [by_index[i] for i in sorted(by_index)])
    _legacy_settings_path(merged).unlink(missing_ok=True)


def _remove_tsvs(paths: Sequence[Path]) -> None:
    """Remove the certification TSVs ``paths`` and their settings sidecars of earlier versions."""
    for p in paths:
        p.unlink(missing_ok=True)
        _legacy_settings_path(p).unlink(missing_ok=True)

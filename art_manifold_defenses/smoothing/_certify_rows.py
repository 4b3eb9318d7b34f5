"""The certify loop shared by :func:`~.outputs.certify_to_tsv` and :func:`~.outputs.certify_sharded`: the
images of a run are certified chunk by chunk (in the run's mode) and each chunk's TSV rows are appended and
flushed as soon as it is done, with a cost estimate after the second chunk."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from ..costs import report_estimate
from .certification import certify_batch

if TYPE_CHECKING:
    from ._certify_run import _Run
    from .estimator import RenyiSmoothingPyTorch
    from .sequential import DecisionResult


class _Counts(NamedTuple):
    """A certified chunk of the fixed or adaptive mode (:func:`~.certification.certify_batch` on its counts);
    ``spent``: the ``samples`` column of each row (empty in the fixed mode)."""

    estimation: np.ndarray
    spent: list[list[int]]
    top: np.ndarray
    radii: dict[str, np.ndarray]
    p1: np.ndarray
    p2: np.ndarray
    p_a: np.ndarray


def write_rows(
    estimator: RenyiSmoothingPyTorch,
    run: _Run,
    path: Path,
    done: set[int],
    *,
    verbose: bool,
    max_images: int | None,
) -> None:
    """Certify every image of ``run`` whose index is not in ``done`` and append its row to the TSV at
    ``path`` (chunk by chunk, flushed after each); stop after ``max_images`` new images."""
    stop_after = int(max_images) if max_images is not None else 0
    chunk = _chunk_size(estimator, run)
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        bar = tqdm(
            total=len(run.x),
            desc="certify" if run.mode == "fixed" else f"certify ({run.mode})",
            disable=not verbose,
        )
        bar.update(sum(1 for i in run.idx if int(i) in done))
        chunks_run, first_seconds = 0, 0.0
        for start in range(0, len(run.x), chunk):
            todo = [j for j in range(start, min(start + chunk, len(run.x))) if int(run.idx[j]) not in done]
            if not todo:
                continue
            rows, seconds = _chunk_rows(estimator, run, todo)
            for row in rows:
                writer.writerow(row)
            handle.flush()
            bar.update(len(todo))
            chunks_run += 1
            # the second chunk's seconds per image times the images left (the first: a warm-up)
            if chunks_run == 2:
                left = sum(1 for j in range(start + chunk, len(run.x)) if int(run.idx[j]) not in done)
                if max_images is not None:
                    left = min(left, stop_after - len(todo))
                _report_left(run, left, len(todo), seconds, first_seconds, verbose=verbose)
            elif chunks_run == 1:
                first_seconds = seconds
            stop_after -= len(todo)
            if max_images is not None and stop_after <= 0:
                break
        bar.close()


def _chunk_size(estimator: RenyiSmoothingPyTorch, run: _Run) -> int:
    """Images certified together: those whose ``n0 + n`` samples fill a batch (fixed mode), or as many as
    fill a batch in the first round (adaptive and decision modes)."""
    s = run.sampling
    if run.mode == "fixed":
        return max(1, int(s.batch_size) // (int(s.n0) + int(s.n)))
    return estimator._images_per_chunk(int(s.batch_size), int(s.first_round))


def _report_left(
    run: _Run, left: int, chunk_images: int, seconds: float, first_seconds: float, *, verbose: bool
) -> None:
    """Report the estimated time of the ``left`` images still to certify, from the second chunk's speed."""
    if left > 0:
        s = run.sampling
        report_estimate(
            f"certifying {left} more images ({run.mode}, n={s.n}, n0={s.n0})",
            seconds * left,
            f"the second chunk of {chunk_images} took {seconds:.2f} s per image, the first (a "
            f"warm-up) {first_seconds:.2f} s",
            verbose=verbose,
        )


def _chunk_rows(
    estimator: RenyiSmoothingPyTorch, run: _Run, todo: list[int]
) -> tuple[list[list[Any]], float]:
    """Certify the images at positions ``todo``: their TSV rows and the wall time per image."""
    began = time.perf_counter()
    if run.mode == "decision":
        result = _decide(estimator, run, todo)
        seconds = (time.perf_counter() - began) / len(todo)
        return _decision_rows(run, todo, result, seconds), seconds
    counts = _count_certificates(estimator, run, todo)
    seconds = (time.perf_counter() - began) / len(counts.estimation)
    return _count_rows(run, todo, counts, seconds), seconds


def _decide(estimator: RenyiSmoothingPyTorch, run: _Run, todo: list[int]) -> DecisionResult:
    """The decision mode on the images at ``todo``."""
    s = run.sampling
    assert s.radius is not None
    return estimator.certify_decision(
        run.x[todo],
        float(s.radius),
        s.n,
        s.batch_size,
        n0=s.n0,
        alpha=run.alpha,
        bound=run.bounds[0],
        first_round=s.first_round,
        growth=s.growth,
        seed=int(s.seed),
        indices=run.idx[todo],
    )


def _decision_rows(run: _Run, todo: list[int], result: DecisionResult, seconds: float) -> list[list[Any]]:
    """The decision mode's TSV rows of the images at ``todo``."""
    rows = []
    for i, j in enumerate(todo):
        rows.append(
            [
                int(run.idx[j]),
                int(run.labels[j]),
                int(result.prediction[i]),
                result.decision[i],
                f"{result.radius[i]:.6f}",
                int(result.prediction[i] == run.labels[j]),
                f"{seconds:.6f}",
                int(result.samples[i]),
                int(result.rounds[i]),
                int(result.count_top[i]),
                int(result.count_second[i]),
                f"{result.p_lower[i]:.8f}",
                f"{result.p_upper[i]:.8f}",
                run.hashes[j],
            ]
        )
    return rows


def _count_certificates(estimator: RenyiSmoothingPyTorch, run: _Run, todo: list[int]) -> _Counts:
    """The fixed or adaptive mode on the images at ``todo``: counts and the certificates of every bound."""
    s = run.sampling
    spent: list[list[int]]
    if run.mode == "adaptive":
        selection, estimation, sizes = estimator.certify_adaptive_counts(
            run.x[todo],
            s.n,
            s.batch_size,
            n0=s.n0,
            alpha=run.alpha,
            max_radius_loss=s.max_radius_loss,
            first_round=s.first_round,
            seed=int(s.seed),
            indices=run.idx[todo],
        )
        spent = [[int(s.n0) + int(v)] for v in sizes]  # the adaptive mode's ``samples`` column
    else:
        selection, estimation = estimator.certify_counts(
            run.x[todo], s.n, s.batch_size, n0=s.n0, seed=int(s.seed), indices=run.idx[todo]
        )
        spent = [[] for _ in todo]  # the fixed mode has no ``samples`` column (n0 + n for every row)
    top, radii, p1, p2, p_a = certify_batch(
        selection,
        estimation,
        sigma=estimator.sigma,
        alpha=run.alpha,
        bounds=run.bounds,
        interval=s.interval,
    )
    return _Counts(estimation, spent, top, radii, p1, p2, p_a)


def _count_rows(run: _Run, todo: list[int], counts: _Counts, seconds: float) -> list[list[Any]]:
    """The fixed or adaptive mode's TSV rows of the images at ``todo``."""
    estimation, spent, top, radii, p1, p2, p_a = counts
    rows = []
    for i, j in enumerate(todo):
        est = np.sort(estimation[i])[::-1]
        pred = int(top[i]) if any(radii[b][i] > 0 for b in run.bounds) else -1
        rows.append(
            [
                int(run.idx[j]),
                int(run.labels[j]),
                pred,
                *[f"{radii[b][i]:.6f}" for b in run.bounds],
                int(pred == run.labels[j]),
                f"{seconds:.6f}",
                int(est[0]),
                int(est[1]),
                f"{p1[i]:.8f}",
                f"{p2[i]:.8f}",
                f"{p_a[i]:.8f}",
                *spent[i],
                run.hashes[j],
            ]
        )
    return rows

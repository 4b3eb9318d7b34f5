"""The batch-wise work of :func:`~.runner.evaluate`: the evaluation set cut into batches of ``batch_size``
consecutive images, the clean pass and each attack run batch by batch on this process's batches (a finished
batch saved, and reused on resume, under ``out_dir/attacks/<attack>/batch-*.json``), and the merge of every
rank's batches into one result over the whole set.

Only points classified correctly on the clean input are attacked, as in AutoAttack (Croce & Hein 2020); every
adversarial example is checked against its threat model and a violating one is scored on its clean input
(Carlini et al. 2019, https://arxiv.org/abs/1902.06705).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..utils import set_seed
from ._run_identity import _run_seed, _stable_seed
from ._run_model import _score
from ._run_plan import AttackFunction, _Plan, _Run
from ._run_threat import threat_model_violations
from .attacks import perturbation_norms
from .results import AttackResult
from .storage import _batch_path, _load_part, _part_to_dict, _save_part


def _batch(b: int, batch_size: int) -> slice:
    """Positions of batch ``b`` of the evaluation set: ``[b * batch_size, (b + 1) * batch_size)``."""
    return slice(b * batch_size, (b + 1) * batch_size)


def _merge_clean(gathered: list[Any] | None, n: int, batch_size: int) -> np.ndarray:
    assert gathered is not None
    clean = np.zeros(n, dtype=bool)
    for parts in gathered:
        for b, ok in parts.items():
            clean[_batch(int(b), batch_size)] = ok
    return clean


def _merge_parts(
    plan: _Plan,
    gathered: Sequence[Mapping[int, Mapping[str, Any]]],
    clean_correct: np.ndarray,
    *,
    repeats: int,
) -> AttackResult:
    """The attack result over the whole evaluation set from the per-batch parts of every rank."""
    parts = {int(b): p for per_rank in gathered for b, p in per_rank.items()}
    errors = [p["error"] for _, p in sorted(parts.items()) if "error" in p]
    if errors:
        return AttackResult(
            spec=plan.spec,
            correct=clean_correct.copy(),
            seconds=0.0,
            norms=np.full(len(clean_correct), math.nan),
            note=plan.note,
            error=str(errors[0]),
        )
    ordered = [parts[b] for b in sorted(parts)]
    correct = (
        np.concatenate([np.asarray(p["correct"], dtype=bool) for p in ordered])
        if ordered
        else clean_correct.copy()
    )
    norms = np.array(
        [math.nan if v is None else float(v) for p in ordered for v in p["norms"]], dtype=np.float64
    )
    if len(correct) != len(clean_correct) or len(norms) != len(clean_correct):
        raise RuntimeError(
            f"{plan.spec.label}: merged {len(correct)} of {len(clean_correct)} points (a batch is missing)"
        )
    violations = sorted(int(i) for p in ordered for i in p["violation_indices"])
    return AttackResult(
        spec=plan.spec,
        correct=correct,
        seconds=float(sum(p["seconds"] for p in ordered)),
        norms=norms,
        violations=len(violations),
        violation_indices=violations,
        repeats=repeats,
        eot_samples=plan.eot_samples,
        bpda=plan.bpda,
        attacked=int(sum(p["attacked"] for p in ordered)),
        note=plan.note,
    )


def _run_one(
    plan: _Plan,
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    clean_correct: np.ndarray,
    *,
    attack_fn: AttackFunction,
    seed: int,
    repeats: int,
    votes: int,
    device: torch.device,
    batch_size: int,
    num_classes: int,
    surrogate_model: nn.Module | None,
    verbose: bool,
    batch_index: int = 0,
) -> AttackResult:
    """Attack the clean-correct points of one batch of the evaluation set (batch ``batch_index``), ``repeats``
    times; repeat ``r`` is seeded from ``(seed, spec, r, batch_index)`` (:func:`_run_seed`)."""
    spec = plan.spec
    n = len(x)
    index = np.flatnonzero(clean_correct)
    correct = clean_correct.copy()
    norms = np.full(n, math.nan)
    violation_set: set[int] = set()
    started = time.perf_counter()
    for repeat in range(repeats if len(index) else 0):
        run_seed = _run_seed(seed, spec, repeat, batch_index)
        set_seed(run_seed)
        x_sub, y_sub = x[index], y[index]
        adv = attack_fn(
            spec,
            plan.attacked_model,
            x_sub,
            y_sub,
            device=device,
            seed=run_seed,
            batch_size=batch_size,
            surrogate_model=surrogate_model,
            verbose=verbose,
        )
        adv = np.asarray(adv.detach().cpu().numpy() if isinstance(adv, torch.Tensor) else adv)
        if adv.shape != x_sub.shape:
            raise ValueError(
                f"{spec.label} returned adversarials of shape {adv.shape}, expected {x_sub.shape}"
            )
        bad = threat_model_violations(x_sub, adv, spec.norm, spec.eps)
        violation_set.update(int(i) for i in index[bad])
        adv = np.where(bad.reshape((-1,) + (1,) * (adv.ndim - 1)), x_sub, np.nan_to_num(adv)).astype(
            np.float32
        )
        ok = _score(
            model,
            adv,
            y_sub,
            votes=votes,
            seed=_stable_seed(run_seed, "score"),
            device=device,
            batch_size=batch_size,
            num_classes=num_classes,
        )
        correct[index] &= ok
        broken = ~ok
        if broken.any():
            dist = perturbation_norms(adv[broken], x_sub[broken], spec.norm)
            where = index[broken]
            norms[where] = np.fmin(norms[where], dist)
    return AttackResult(
        spec=spec,
        correct=correct,
        seconds=time.perf_counter() - started,
        norms=norms,
        violations=len(violation_set),
        violation_indices=sorted(violation_set),
        repeats=repeats,
        eot_samples=plan.eot_samples,
        bpda=plan.bpda,
        attacked=int(len(index)),
        note=plan.note,
    )


def _clean_pass(run: _Run) -> np.ndarray:
    """Which points the model classifies correctly without attack (a majority vote of ``run.votes`` passes),
    scored batch by batch on this process's batches and gathered on every process."""
    from .. import distributed

    parts = {
        b: _score(
            run.module,
            run.x[_batch(b, run.batch_size)],
            run.y[_batch(b, run.batch_size)],
            votes=run.votes,
            seed=_stable_seed(run.seed, "clean", b),
            device=run.device,
            batch_size=run.batch_size,
            num_classes=run.num_classes,
        )
        for b in run.my_batches
    }
    gathered = distributed.gather_objects(parts)
    merged = _merge_clean(gathered, len(run.x), run.batch_size) if run.rank == 0 else None
    correct = distributed.broadcast_object(merged)
    assert correct is not None
    return correct  # type: ignore[no-any-return]


def _attack_batches(
    plan: _Plan, run: _Run, clean_correct: np.ndarray, path: Path | None
) -> dict[int, dict[str, Any]]:
    """The parts of attack ``plan`` on this process's batches: each loaded from its batch file under ``path``
    when a killed run saved it, otherwise attacked (:func:`_run_one`) and saved. An attack that raises is
    recorded as an ``error`` part and its other batches are skipped (re-raised with ``run.raise_errors``)."""
    parts: dict[int, dict[str, Any]] = {}
    for b in run.my_batches:
        part_path = None if path is None else _batch_path(path, b)
        loaded = None if part_path is None else _load_part(part_path, run.context)
        if loaded is not None:
            parts[b] = loaded
            continue
        rows = _batch(b, run.batch_size)
        try:
            part = _run_one(
                plan,
                run.module,
                run.x[rows],
                run.y[rows],
                clean_correct[rows],
                attack_fn=run.attack_fn,
                seed=run.seed,
                repeats=run.repeats,
                votes=run.votes,
                device=run.device,
                batch_size=run.batch_size,
                num_classes=run.num_classes,
                surrogate_model=run.surrogate,
                verbose=run.verbose and run.rank == 0,
                batch_index=b,
            )
        except Exception as exc:  # noqa: BLE001 - recorded and flagged, see raise_errors
            if run.raise_errors:
                raise
            parts[b] = {"error": f"{type(exc).__name__}: {exc}"}
            break  # the attack is recorded as failed: its other batches would not be used
        parts[b] = _part_to_dict(part, offset=rows.start)
        if part_path is not None:
            _save_part(part_path, parts[b], run.context)
    return parts

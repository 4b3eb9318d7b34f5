"""The evaluation runner: clean accuracy, accuracy per attack, per-point worst case, threat-model checks,
resume.

:func:`evaluate` attacks one model with a suite of
:class:`~art_manifold_defenses.evaluation.attacks.AttackSpec` and returns an :class:`EvaluationResult`. What
makes it honest (Carlini et al. 2019, "On Evaluating Adversarial Robustness",
https://arxiv.org/abs/1902.06705; Athalye et al. 2018, https://arxiv.org/abs/1802.00420):

* **robust accuracy is the per-point worst case**: a point counts as robust only if it is classified correctly
  clean and under every attack of the suite, never an average over attacks;
* **every adversarial example is checked against its threat model** (finite, inside ``[0, 1]`` within
  ``1e-6``, and ``||x_adv - x|| <= eps + 1e-5`` in the attack's norm): a violating example is discarded, the
  point is scored on its clean input and the attack is flagged;
* **adaptive attacks**: a model with ``stochastic = True`` is attacked through :class:`~.eot.EoT`
  (``eot_samples`` passes, default :data:`DEFAULT_EOT_SAMPLES`) by gradient-based attacks, scored by majority
  vote of ``votes`` passes (default :data:`DEFAULT_VOTES`) and the worst of ``repeats`` independent attack
  runs (default :data:`DEFAULT_REPEATS`); a model with a ``bpda_surrogate`` module is attacked through
  :class:`~.eot.BPDA` by gradient-based attacks; AutoAttack ``standard`` becomes ``rand`` for a stochastic
  model (``rand`` runs its own EoT, so it is not wrapped again);
* the gradient-masking audit (:mod:`.audit`) runs on the results;
* results are written attack by attack to ``out_dir/attacks/*.json`` with per-point correctness, so an
  interrupted run resumes (finished attacks are skipped when model, data and settings match) and the worst
  case can be recomputed.

Only points classified correctly on the clean input are attacked (the others cannot be robust), as in
AutoAttack. Reproducibility: the evaluation set is cut into batches ``b`` of ``batch_size`` consecutive
images; the clean scoring of batch ``b`` is seeded from ``(seed, b)`` and every attack run on it from
``(seed, attack settings, repeat, b)`` (libraries draw random starts for a whole batch from the global
generator, so a per-image seed is impossible), so the result depends neither on the order of the suite nor on
how many processes share the work, only on ``batch_size``. ``evaluate`` re-seeds torch's global generator.

Scale-out: when ``torch.distributed`` is initialised with several processes (``torchrun``, see
:mod:`art_manifold_defenses.distributed`), the batches are dealt round-robin over the ranks, each rank saves
every finished batch to ``out_dir/attacks/<attack>/batch-*.json`` (resume loses at most the batch in progress)
and rank 0 merges them into the same ``attacks/*.json``, ``results.json`` and report a single process writes
(the audit runs on rank 0); every rank returns the merged :class:`EvaluationResult`.

Known limitations: majority-vote scoring of a stochastic model costs ``votes`` forwards per point and attack;
gradient-free attacks query a stochastic model directly (without EoT); an attack that raises is recorded
(``error``), flagged by the audit and left out of the worst case rather than stopping the run.

Layout: this module holds :func:`evaluate` and its per-attack step; its helpers live beside it in
``_run_plan`` (arguments, defaults, per-attack plans), ``_run_batches`` (clean pass, batch-wise attacks, merge
over ranks), ``_run_model`` (unwrapping and scoring the model), ``_run_threat`` (the threat-model check) and
``_run_identity`` (seeds, fingerprints, versions), and are re-exported here.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..utils import set_seed

# the runner's helpers live in the ``_run_*`` modules; their names stay importable from here
from ._run_batches import _attack_batches, _clean_pass, _merge_parts
from ._run_batches import _batch as _batch
from ._run_batches import _merge_clean as _merge_clean
from ._run_batches import _run_one as _run_one
from ._run_identity import _fingerprint_arrays as _fingerprint_arrays
from ._run_identity import _fingerprint_model as _fingerprint_model
from ._run_identity import _run_seed as _run_seed
from ._run_identity import _stable_seed, _versions
from ._run_model import _as_module as _as_module
from ._run_model import _attribute as _attribute
from ._run_model import _model_name
from ._run_model import _predict_classes as _predict_classes
from ._run_model import _score as _score
from ._run_plan import (
    DEFAULT_EOT_SAMPLES,
    DEFAULT_REPEATS,
    DEFAULT_VOTES,
    AttackFunction,
    _plan,
    _prepare,
    _Run,
)
from ._run_plan import _check_count as _check_count
from ._run_plan import _Plan as _Plan
from ._run_plan import _resolve_suite as _resolve_suite
from ._run_threat import BOX_TOLERANCE as BOX_TOLERANCE
from ._run_threat import NORM_TOLERANCE, threat_model_violations
from .attacks import AttackSpec, run_attack
from .audit import AuditFlag, audit, measure_determinism, measure_gradients
from .estimate import report_evaluation_estimate
from .results import AttackResult, EvaluationResult, worst_case
from .storage import _attack_path, _load_finished, _remove_parts, _save_attack

__all__ = [
    "AttackResult",
    "DEFAULT_EOT_SAMPLES",
    "DEFAULT_REPEATS",
    "DEFAULT_VOTES",
    "EvaluationResult",
    "NORM_TOLERANCE",
    "evaluate",
    "threat_model_violations",
    "worst_case",
]


def _attack(run: _Run, spec: AttackSpec, clean_correct: np.ndarray, bar: Any) -> AttackResult | None:
    """One attack of the suite on every rank: skipped (a transfer attack without a surrogate), resumed from
    its finished file in ``out_dir``, or run batch by batch and merged; the result on rank 0, None elsewhere
    or when skipped. A finished result is saved and its batch files removed."""
    from .. import distributed

    plan = _plan(
        spec, run.module, stochastic=run.stochastic, surrogate=run.bpda_surrogate, eot_samples=run.eot_k
    )
    bar.set_postfix_str(plan.spec.label)
    if plan.spec.library == "transfer" and run.surrogate is None:
        if run.rank == 0:  # stacklevel 3: the warning points at the caller of evaluate
            warnings.warn(f"{spec.label}: transfer attack skipped (no surrogate_model given)", stacklevel=3)
        return None
    path = None if run.out_path is None else _attack_path(run.out_path, plan.spec)
    finished = None if path is None or run.rank != 0 else _load_finished(path, run.context)
    if distributed.broadcast_object(finished is not None):  # rank 0 decides, so all ranks agree
        return finished
    gathered = distributed.gather_objects(_attack_batches(plan, run, clean_correct, path))
    if run.rank != 0:
        return None
    assert gathered is not None
    result = _merge_parts(plan, gathered, clean_correct, repeats=run.repeats)
    if result.error is not None:
        warnings.warn(f"{plan.spec.label} failed: {result.error}", stacklevel=3)
    elif path is not None:
        _save_attack(path, result, run.context)
        _remove_parts(path)
    return result


def _announce_estimate(run: _Run, clean_correct: np.ndarray) -> None:
    """Print the estimated cost of the attacks still to run (finished ones in ``out_path`` excluded), from a
    probe of the model's forward and backward passes on the points that will be attacked; never stops the
    evaluation."""
    todo = [
        _plan(s, run.module, stochastic=run.stochastic, surrogate=run.bpda_surrogate, eot_samples=run.eot_k)
        for s in run.specs
        if not (s.library == "transfer" and run.surrogate is None)
    ]
    todo = [
        p
        for p in todo
        if run.out_path is None or _load_finished(_attack_path(run.out_path, p.spec), run.context) is None
    ]
    attacked = np.flatnonzero(clean_correct)
    try:
        report_evaluation_estimate(
            [p.spec for p in todo],
            [p.eot_samples for p in todo],
            run.module,
            run.x[attacked],
            run.y[attacked],
            batch_size=run.batch_size,
            repeats=run.repeats,
            votes=run.votes,
            device=run.device,
            processes=run.size,
        )
    except Exception as exc:  # noqa: BLE001 - an estimate must never stop the evaluation it describes
        tqdm.write(f"estimate: unavailable ({type(exc).__name__}: {exc})")


def _audit(
    run: _Run, results: list[AttackResult], clean_correct: np.ndarray
) -> tuple[Any, Any, list[AuditFlag]]:
    """The gradient-masking audit: gradient statistics on the correctly classified points (all points when
    there is none), the determinism check, and the flags of :func:`~.audit.audit` over the attacks'
    results."""
    x = run.x
    correct_idx = np.flatnonzero(clean_correct)
    probe = correct_idx if len(correct_idx) else np.arange(len(x))
    set_seed(_stable_seed(run.seed, "audit"))
    gradient_stats = measure_gradients(
        run.module, x[probe], run.y[probe], device=run.device, batch_size=run.batch_size
    )
    determinism = measure_determinism(run.module, x, device=run.device, batch_size=run.batch_size)
    flags = audit(
        results,
        gradient_stats=gradient_stats,
        determinism=determinism,
        eot=run.stochastic and run.eot_k > 1,
        declared_stochastic=run.stochastic,
        bpda=run.bpda_surrogate is not None,
        input_dim=int(np.prod(x.shape[1:])),
    )
    return gradient_stats, determinism, flags


def evaluate(
    model: Any,
    x: Any,
    y: Any,
    suite: Any,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    batch_size: int = 128,
    out_dir: str | os.PathLike[str] | None = None,
    surrogate_model: Any = None,
    eot_samples: int | None = None,
    votes: int | None = None,
    repeats: int | None = None,
    verbose: bool = True,
    model_name: str | None = None,
    dataset: str | None = None,
    norm: str | None = None,
    eps: float | None = None,
    reported: float | None = None,
    run_audit: bool = True,
    raise_errors: bool = False,
    attack_fn: AttackFunction | None = None,
    overwrite: bool = False,
) -> EvaluationResult:
    """Evaluate ``model`` on ``(x, y)`` under every attack of ``suite`` and return an
    :class:`EvaluationResult`.

    Follows Carlini et al. 2019 ("On Evaluating Adversarial Robustness") and Athalye et al. 2018: per-point
    worst case over the suite, adaptive EoT/BPDA attacks and the gradient-masking audit.

    Args:
        model: an ``nn.Module`` returning logits, or an ART ``PyTorchClassifier`` (its all-PyTorch
            preprocessing chain and model are used). Attributes read: ``stochastic`` (bool) and
            ``bpda_surrogate`` (``nn.Module``).
        x, y: images ``(N, C, H, W)`` in ``[0, 1]`` and integer (or one-hot) labels.
        suite: a suite name (see :func:`~.suites.get_suite`, with ``norm``/``eps``), an ``AttackSpec`` or a
            list of them.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: every attack run and scoring pass is seeded from it.
        batch_size: batch size of predictions and attacks.
        out_dir: if given, one JSON per attack (resume) and ``results.json``, ``results.md``, ``curves.png``.
            Every file carries the run's fingerprint (hashes of the model and the data, seed, EoT/vote/repeat
            settings; the suite too in ``results.json``): a folder holding another run's files raises
            :class:`~art_manifold_defenses.fingerprint.FingerprintMismatchError` naming what differs.
        surrogate_model: source model of ``transfer`` attacks (they are skipped, with a warning, without one).
        eot_samples: EoT passes for a stochastic model (default :data:`DEFAULT_EOT_SAMPLES`; 1 disables EoT).
        votes: passes whose majority vote scores a stochastic model (default :data:`DEFAULT_VOTES`; 1 for a
            deterministic model).
        repeats: independent runs of each attack, worst case kept (default :data:`DEFAULT_REPEATS` for a
            stochastic model, 1 otherwise).
        verbose: progress bars.
        model_name, dataset, reported: stored in the record (``reported`` = the paper's robust accuracy,
            RobustBench).
        norm, eps: passed to :func:`~.suites.get_suite` when ``suite`` is a name.
        run_audit: run the gradient-masking audit (two extra forward passes and one backward on the clean
            points).
        raise_errors: re-raise an attack's exception instead of recording it as an ``attack_error``.
        attack_fn: the function that runs one attack (default :func:`~.attacks.run_attack`); for tests and
            custom libraries, same signature.
        overwrite: remove the files of an earlier evaluation in ``out_dir`` first instead of resuming (or
            refusing) them.

    Raises:
        ValueError / TypeError: bad images, labels, suite or options (message names the argument).
    """
    t0 = time.perf_counter()
    run = _prepare(  # validated arguments, defaults, fingerprint; a folder of another run is refused here
        model,
        x,
        y,
        suite,
        device=device,
        seed=seed,
        batch_size=batch_size,
        out_dir=out_dir,
        surrogate_model=surrogate_model,
        eot_samples=eot_samples,
        votes=votes,
        repeats=repeats,
        norm=norm,
        eps=eps,
        attack_fn=run_attack if attack_fn is None else attack_fn,
        overwrite=overwrite,
        verbose=verbose,
        raise_errors=raise_errors,
    )
    set_seed(run.seed)
    clean_correct = _clean_pass(run)  # only these points are attacked
    if verbose and run.rank == 0:  # the cost estimate, from a probe, of the attacks still to run
        _announce_estimate(run, clean_correct)
    results: list[AttackResult] = []
    bar = tqdm(run.specs, desc="attacks", unit="attack", disable=not verbose or run.rank != 0)
    for spec in bar:
        result = _attack(run, spec, clean_correct, bar)  # resumed from out_dir or run
        if result is not None:
            results.append(result)
    bar.close()
    from .. import distributed

    if run.rank != 0:  # rank 0 audits and writes the report; every rank returns its result
        received = distributed.broadcast_object(None)
        assert isinstance(received, EvaluationResult)
        return received
    gradient_stats, determinism, flags = (
        _audit(run, results, clean_correct) if run_audit else (None, None, [])
    )
    evaluation = EvaluationResult(  # its robust accuracy is the per-point worst case over `results`
        model=model_name or _model_name(run.module),
        dataset=dataset,
        n=len(run.x),
        seed=run.seed,
        clean_correct=clean_correct,
        attacks=results,
        audit_flags=flags,
        settings=run.settings(),
        gradient_stats=gradient_stats,
        determinism=determinism,
        versions=_versions(),
        seconds=time.perf_counter() - t0,
        reported=reported,
    )
    if run.out_path is not None:
        from .report import write_report

        write_report(evaluation, run.out_path)
    if run.size > 1:
        distributed.broadcast_object(evaluation)
    return evaluation
